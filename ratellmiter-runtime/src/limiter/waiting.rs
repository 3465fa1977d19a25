//! One call waiting in line: the future side of the driver, which drives the engine,
//! arms the head's timer and gives its place back when dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake, Waker};

use tokio::time::{Instant, Sleep};

use super::Shared;
use crate::pacer::{Issued, Outcome, Poll, WaiterId};
use crate::rate_limit::{BoxFuture, RateLimitedService};
use crate::shared::{Clearing, SharedBudget};

/// What a waiting call does next.
pub(super) enum Step {
    Issued(Issued),
    /// Issued by the local pacer, but the shared budget must clear it first.
    Clear(Issued),
    Sleep(Instant),
    Probe(Arc<dyn RateLimitedService>),
    Wait,
}

/// One call in the queue. Dropping it before its ticket is taken withdraws the call (or
/// gives back a ticket issued to it meanwhile), so cancellation never leaks a slot.
pub(super) struct Waiting<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) id: WaiterId,
    pub(super) probe: Option<BoxFuture<'static, bool>>,
    pub(super) sleep: Option<Pin<Box<Sleep>>>,
    /// The ticket, once issued, on its way through the shared budget.
    pub(super) clearing: Option<Clearing>,
    pub(super) done: bool,
}

impl<'a> Waiting<'a> {
    /// Call `id`, just queued.
    pub(super) fn new(shared: &'a Arc<Shared>, id: WaiterId) -> Self {
        Self {
            shared,
            id,
            probe: None,
            sleep: None,
            clearing: None,
            done: false,
        }
    }

    /// Drives the engine: issues what is due (waking those callers) and says what this
    /// call should do.
    pub(super) fn step(&mut self, waker: &Waker) -> Step {
        let now = self.shared.now();
        let mut st = self.shared.lock();
        let name = self.shared.name.get();
        let step = loop {
            if let Some(issued) = st.slots.get_mut(&self.id).and_then(|s| s.issued.take()) {
                st.slots.remove(&self.id);
                self.done = true;
                break match st.budget {
                    Some(_) => Step::Clear(issued),
                    None => Step::Issued(issued),
                };
            }
            // Shared budget: while a ticket clears with the store, nothing else issues.
            if st.budget.as_ref().is_some_and(SharedBudget::is_clearing) {
                break Step::Wait;
            }
            match st.pacer.poll(now) {
                Poll::Issued(t) => {
                    if let Some(r) = &mut st.recorder {
                        r.issued(now, &t);
                    }
                    if t.retry {
                        tracing::debug!(
                            service = name.map_or("unnamed", |n| &**n),
                            "re-issuing a rate-limited call"
                        );
                    }
                    if let Some(b) = &mut st.budget {
                        b.start_clearing();
                    }
                    let slot = st.slots.get_mut(&t.id).expect("every waiter has a slot");
                    slot.issued = Some(t);
                    if let Some(w) = slot.waker.take() {
                        w.wake();
                    }
                }
                Poll::WaitUntil(at) if st.pacer.head() == Some(self.id) => {
                    break Step::Sleep(self.shared.origin + at);
                }
                Poll::ProbeService => match self.shared.prober() {
                    Some(service) => break Step::Probe(service),
                    // The service is gone: fall back to probing with a call.
                    None => {
                        st.pacer.set_external_probe(false);
                        st.pacer.probe_abandoned();
                    }
                },
                Poll::WaitUntil(_) | Poll::AwaitProbe | Poll::Idle => break Step::Wait,
            }
        };
        if !matches!(step, Step::Issued(_))
            && let Some(slot) = st.slots.get_mut(&self.id)
            && !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            slot.waker = Some(waker.clone());
        }
        st.log_changes(now, name);
        st.wake_head_except(Some(self.id));
        step
    }

    pub(super) fn poll_issued(&mut self, cx: &mut Context<'_>) -> TaskPoll<Issued> {
        if let Some(clearing) = &mut self.clearing {
            return clearing.poll_clear(cx);
        }
        loop {
            if let Some(probe) = &mut self.probe {
                let TaskPoll::Ready(blocked) = probe.as_mut().poll(cx) else {
                    return TaskPoll::Pending;
                };
                self.probe = None;
                self.shared.probe_result(blocked);
            }
            match self.step(cx.waker()) {
                Step::Issued(t) => return TaskPoll::Ready(t),
                Step::Clear(t) => {
                    let clearing = self.clearing.insert(Clearing::new(self.shared.clone(), t));
                    return clearing.poll_clear(cx);
                }
                Step::Sleep(at) => {
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
                        return TaskPoll::Pending;
                    }
                }
                Step::Probe(service) => {
                    self.probe = Some(Box::pin(async move { service.is_blocked().await }));
                }
                Step::Wait => return TaskPoll::Pending,
            }
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let now = self.shared.now();
        let mut st = self.shared.lock();
        if self.probe.take().is_some() {
            st.pacer.probe_abandoned();
        }
        if let Some(slot) = st.slots.remove(&self.id) {
            match slot.issued {
                // Issued meanwhile but never taken: give the slot back unused.
                Some(t) => {
                    if let Some(b) = &mut st.budget {
                        b.end_clearing(); // it never started clearing
                    }
                    st.pacer.finish(now, &t, Outcome::Abandoned);
                    if let Some(r) = &mut st.recorder {
                        r.finished(now, Outcome::Abandoned);
                    }
                }
                None => {
                    st.pacer.cancel(now, self.id);
                }
            }
        }
        st.after_change(now, self.shared.name.get());
    }
}

pub(super) struct ThreadWaker(pub(super) std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs a future (a probe, a shared store's answer) to completion on this (blocking) thread.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let TaskPoll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
