//! [`Clearing`]: a ticket the local pacer issued, cleared with the shared store before
//! it is handed over (see [`crate::shared`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::Shared;
use super::waiting::block_on;
use crate::pacer::{Issued, Outcome};
use crate::rate_limit::BoxFuture;
use crate::shared::{Claim, Grant, Next, SharedError};

/// A ticket the local pacer issued, on its way through the shared store: it asks for
/// a slot, waits for it and claims it (or waits through a pause, or for a place in
/// flight, and asks again), then is handed over. Dropping it before then gives the
/// ticket back unused.
pub(crate) struct Clearing {
    shared: Arc<Shared>,
    ticket: Option<Issued>,
    started: Instant,
    phase: Phase,
    sleep: Option<Pin<Box<Sleep>>>,
}

/// How a clearing ended.
pub(crate) enum Cleared {
    /// The ticket goes out.
    Go(Issued),
    /// A daily quota of the fleet is spent until then (engine time): the call fails.
    Refused(Issued, Duration),
}

enum Phase {
    Ask,
    Asking(BoxFuture<'static, Result<Grant, SharedError>>),
    Claiming(BoxFuture<'static, Result<Claim, SharedError>>),
    /// Until then, then claim (`true`) or ask again.
    Sleep(Instant, bool),
}

impl Clearing {
    pub(crate) fn new(shared: Arc<Shared>, ticket: Issued) -> Self {
        Self {
            shared,
            ticket: Some(ticket),
            started: Instant::now(),
            phase: Phase::Ask,
            sleep: None,
        }
    }

    /// Drives the clearing on an async runtime.
    pub(crate) fn poll_clear(&mut self, cx: &mut Context<'_>) -> Poll<Cleared> {
        loop {
            let next = match &mut self.phase {
                Phase::Ask => match self.ask() {
                    Some(asking) => {
                        self.phase = Phase::Asking(asking);
                        continue;
                    }
                    None => Next::Go,
                },
                Phase::Asking(asking) => {
                    let answer = ready!(asking.as_mut().poll(cx));
                    self.on_grant(answer)
                }
                Phase::Claiming(claiming) => {
                    let answer = ready!(claiming.as_mut().poll(cx));
                    self.on_claim(answer)
                }
                Phase::Sleep(at, claim) => {
                    let (at, claim) = (*at, *claim);
                    // A slot that is due now goes at once: a timer would round up to
                    // its next millisecond tick, a delay on every ticket of a
                    // saturated schedule.
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
                        ready!(sleep.as_mut().poll(cx));
                    }
                    self.phase = match claim {
                        true => match self.claim() {
                            Some(claiming) => Phase::Claiming(claiming),
                            None => return Poll::Ready(self.end(Next::Go)),
                        },
                        false => Phase::Ask,
                    };
                    continue;
                }
            };
            match next {
                Next::Claim(wait) => self.phase = Phase::Sleep(Instant::now() + wait, true),
                Next::Ask(wait) => self.phase = Phase::Sleep(Instant::now() + wait, false),
                Next::Go | Next::Refuse(_) => return Poll::Ready(self.end(next)),
            }
        }
    }

    /// Drives the clearing on a blocking thread (the store's I/O runs on its own thread).
    pub(crate) fn clear_blocking(mut self) -> Cleared {
        loop {
            let mut next = match self.ask() {
                Some(asking) => self.on_grant(block_on(asking)),
                None => Next::Go,
            };
            loop {
                match next {
                    Next::Go | Next::Refuse(_) => return self.end(next),
                    Next::Ask(wait) => {
                        std::thread::sleep(wait);
                        break;
                    }
                    Next::Claim(wait) => {
                        std::thread::sleep(wait);
                        next = match self.claim() {
                            Some(claiming) => self.on_claim(block_on(claiming)),
                            None => Next::Go,
                        };
                    }
                }
            }
        }
    }

    /// Asks the store for a slot (outside the limiter's lock), or `None` to go at once
    /// (not shared, or the store is down and not due to be asked again).
    fn ask(&mut self) -> Option<BoxFuture<'static, Result<Grant, SharedError>>> {
        let t = self.ticket.as_ref()?;
        let now = self.shared.now();
        let waited = t.waited + self.started.elapsed();
        let request = {
            let mut st = self.shared.state.lock();
            let st = &mut *st;
            st.budget.as_mut()?.request(&st.pacer, now, t, waited)?
        };
        self.shared.with_backend(|b| b.reserve(request))
    }

    fn claim(&mut self) -> Option<BoxFuture<'static, Result<Claim, SharedError>>> {
        let rpm = self.shared.state.lock().pacer.config().rpm;
        self.shared.with_backend(|b| b.claim(rpm))
    }

    fn on_grant(&mut self, answer: Result<Grant, SharedError>) -> Next {
        let now = self.shared.now();
        let service = self.shared.name();
        let wall_origin = self.shared.wall_origin_since_epoch();
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        match (st.budget.as_mut(), self.ticket.as_mut()) {
            (Some(b), Some(t)) => b.answer(&mut st.pacer, now, service, t, answer, wall_origin),
            _ => Next::Go,
        }
    }

    fn on_claim(&mut self, answer: Result<Claim, SharedError>) -> Next {
        let now = self.shared.now();
        let service = self.shared.name();
        let mut st = self.shared.state.lock();
        let st = &mut *st;
        match st.budget.as_mut() {
            Some(b) => b.claimed(&mut st.pacer, now, service, answer),
            None => Next::Go,
        }
    }

    fn end(&mut self, next: Next) -> Cleared {
        let mut t = self
            .ticket
            .take()
            .expect("a clearing ticket is handed over once");
        t.waited += self.started.elapsed();
        self.end_clearing();
        match next {
            Next::Refuse(resets_at) => Cleared::Refused(t, resets_at),
            _ => Cleared::Go(t),
        }
    }

    fn end_clearing(&self) {
        let mut st = self.shared.lock();
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
