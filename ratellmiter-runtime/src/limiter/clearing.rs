//! [`Clearing`]: a ticket the local pacer issued, cleared with the shared store before
//! it is handed over (see [`crate::shared`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::Shared;
use super::waiting::block_on;
use crate::pacer::{Issued, Outcome};
use crate::rate_limit::BoxFuture;
use crate::shared::{Grant, SharedError};

/// A ticket the local pacer issued, on its way through the shared store: it asks for
/// a slot, waits for it (or through a shared pause, asking again), then is handed over.
/// Dropping it before then gives the ticket back unused.
pub(crate) struct Clearing {
    shared: Arc<Shared>,
    ticket: Option<Issued>,
    started: Instant,
    asking: Option<BoxFuture<'static, Result<Grant, SharedError>>>,
    /// After an answer: when to go (`true`) or to ask again (`false`).
    then: Option<(Instant, bool)>,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Clearing {
    pub(crate) fn new(shared: Arc<Shared>, ticket: Issued) -> Self {
        Self {
            shared,
            ticket: Some(ticket),
            started: Instant::now(),
            asking: None,
            then: None,
            sleep: None,
        }
    }

    /// Drives the clearing on an async runtime; ready with the ticket to hand over.
    pub(crate) fn poll_clear(&mut self, cx: &mut Context<'_>) -> Poll<Issued> {
        loop {
            if let Some(asking) = &mut self.asking {
                let Poll::Ready(answer) = asking.as_mut().poll(cx) else {
                    return Poll::Pending;
                };
                self.asking = None;
                let (wait, go) = self.answer(answer);
                self.then = Some((Instant::now() + wait, go));
            }
            let Some((at, go)) = self.then else {
                match self.ask() {
                    Some(asking) => self.asking = Some(asking),
                    None => return Poll::Ready(self.hand_over()),
                }
                continue;
            };
            // A slot that is due now goes at once: a timer would round up to its next
            // millisecond tick, a delay on every ticket of a saturated schedule.
            if Instant::now() < at {
                let sleep = match &mut self.sleep {
                    Some(s) => {
                        if s.deadline() != at {
                            s.as_mut().reset(at);
                        }
                        s
                    }
                    None => self.sleep.insert(Box::pin(tokio::time::sleep_until(at))),
                };
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
            }
            self.then = None;
            if go {
                return Poll::Ready(self.hand_over());
            }
        }
    }

    /// Drives the clearing on a blocking thread (the store's I/O runs on its own thread).
    pub(crate) fn clear_blocking(mut self) -> Issued {
        loop {
            let Some(asking) = self.ask() else {
                return self.hand_over();
            };
            let (wait, go) = self.answer(block_on(asking));
            std::thread::sleep(wait);
            if go {
                return self.hand_over();
            }
        }
    }

    fn ask(&mut self) -> Option<BoxFuture<'static, Result<Grant, SharedError>>> {
        let now = self.shared.now();
        let cost = self.ticket.map_or(0, |t| t.cost);
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        let budget = st.budget.as_mut()?;
        let request = budget.request(&st.pacer, now, cost)?;
        Some(budget.backend.reserve(request))
    }

    /// Applies the store's answer; says how long to wait and whether to go afterwards.
    fn answer(&mut self, answer: Result<Grant, SharedError>) -> (Duration, bool) {
        let now = self.shared.now();
        let service = self.shared.name();
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        let Some(budget) = st.budget.as_mut() else {
            return (Duration::ZERO, true);
        };
        match answer {
            Ok(Grant::Slot { wait, probe, .. }) => {
                budget.rejoin(&mut st.pacer, now, service);
                if let Some(t) = &mut self.ticket {
                    t.probe |= probe;
                }
                (wait, true)
            }
            Ok(Grant::Paused { wait }) => {
                budget.rejoin(&mut st.pacer, now, service);
                // Hold the local pacer through the shared pause, so that it restarts
                // its ramp when the pause ends, as after any hold.
                st.pacer.hold_shared(now, now + wait);
                (wait, false)
            }
            Err(e) => {
                budget.fall_back(&mut st.pacer, now, service, &e);
                (Duration::ZERO, true)
            }
        }
    }

    fn hand_over(&mut self) -> Issued {
        let mut t = self
            .ticket
            .take()
            .expect("a clearing ticket is handed over once");
        t.waited += self.started.elapsed();
        self.end_clearing();
        t
    }

    fn end_clearing(&self) {
        let mut st = self.shared.state.lock();
        if let Some(b) = &mut st.budget {
            b.end_clearing();
        }
        st.kick();
    }
}

impl Drop for Clearing {
    fn drop(&mut self) {
        if let Some(t) = self.ticket.take() {
            self.end_clearing();
            self.shared.finish(&t, Outcome::Abandoned);
        }
    }
}
