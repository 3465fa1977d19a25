//! One call waiting in line: the future side of the driver, which waits for the ticket
//! the driver puts in its slot and gives its place back when dropped.

use std::sync::Arc;
use std::task::{Context, Poll as TaskPoll, Wake, Waker};
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use super::clearing::Clearing;
use super::driver::Drive;
use crate::pacer::{Issued, Outcome, WaiterId};

/// One call in the queue. Dropping it before its ticket is taken withdraws the call (or
/// gives back a ticket issued to it meanwhile), so cancellation never leaks a slot.
pub(super) struct Waiting<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) id: WaiterId,
    pub(super) done: bool,
}

impl<'a> Waiting<'a> {
    /// Call `id`, just queued.
    pub(super) fn new(shared: &'a Arc<Shared>, id: WaiterId) -> Self {
        Self {
            shared,
            id,
            done: false,
        }
    }

    /// Ready with the ticket once the driver task has put it in this call's slot, or
    /// with the reset of the daily quota that failed the call.
    pub(super) fn poll_issued(
        &mut self,
        cx: &mut Context<'_>,
    ) -> TaskPoll<Result<Issued, Duration>> {
        let mut st = self.shared.lock();
        if let Some(t) = st.take_issued(self.id) {
            self.done = true;
            return TaskPoll::Ready(t);
        }
        st.register(self.id, cx.waker());
        assert!(
            st.ensure_driver(self.shared),
            "ratellmiter: an async acquire waited outside a tokio runtime; await it inside \
             one, or use the blocking acquire on a plain thread"
        );
        TaskPoll::Pending
    }

    /// Blocks this thread until the ticket comes or `deadline` passes. Without a driver
    /// task the blocking waiters drive the engine themselves.
    pub(super) fn wait_blocking(
        &mut self,
        deadline: Option<Instant>,
    ) -> Option<Result<Issued, Duration>> {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        loop {
            let now = self.shared.now();
            let mut st = self.shared.lock();
            if let Some(t) = st.take_issued(self.id) {
                self.done = true;
                return Some(t);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            st.register(self.id, &waker);
            let drive = if st.driver_running() {
                Drive::Wait
            } else {
                let drive = st.drive(self.shared, now);
                st.log_changes(now, self.shared.name.get());
                // Whoever is head now sleeps until its slot.
                st.wake_head_except(Some(self.id));
                drive
            };
            if let Some(t) = st.take_issued(self.id) {
                self.done = true;
                return Some(t);
            }
            let head = st.pacer.head() == Some(self.id);
            drop(st);
            let wake_at = match drive {
                Drive::Sleep(at) if head => Some(self.shared.origin + at),
                Drive::Sleep(_) | Drive::Wait | Drive::Idle => None,
                Drive::Probe(id, service) => {
                    let deadline = Instant::now() + self.shared.lock().pacer.config().probe_timeout;
                    let check = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        block_on_until(service.is_blocked(), Some(deadline))
                    }));
                    match check {
                        Ok(Some(blocked)) => self.shared.probe_result(id, blocked),
                        // The engine counts it refused at its deadline.
                        Ok(None) => {}
                        Err(_) => {
                            tracing::error!(
                                service = self.shared.name(),
                                "the service probe (`is_blocked`) panicked: counted as refused"
                            );
                            self.shared.probe_result(id, true);
                        }
                    }
                    continue;
                }
                Drive::Clear(t) => {
                    let cleared = Clearing::new(self.shared.clone(), t).clear_blocking();
                    self.shared.cleared(cleared);
                    continue;
                }
            };
            let wake_at = match (wake_at, deadline) {
                (Some(a), Some(d)) => Some(a.min(d)),
                (a, d) => a.or(d),
            };
            match wake_at {
                Some(at) => std::thread::park_timeout(
                    at.into_std()
                        .saturating_duration_since(std::time::Instant::now()),
                ),
                None => std::thread::park(),
            }
        }
    }
}

impl super::State {
    /// The ticket the driver left in `id`'s slot, if it came (or the reset of the
    /// daily quota that failed the call).
    fn take_issued(&mut self, id: WaiterId) -> Option<Result<Issued, Duration>> {
        let slot = self.slots.get_mut(&id)?;
        if let Some(resets_at) = slot.refused {
            self.slots.remove(&id);
            return Some(Err(resets_at));
        }
        let t = slot.issued.take()?;
        self.slots.remove(&id);
        if t.retry {
            // Here rather than in the driver: inside the waiting call's span.
            tracing::debug!("re-issuing a rate-limited call");
        }
        Some(Ok(t))
    }

    /// Keeps the waker to call when `id`'s ticket comes (or it becomes the head).
    fn register(&mut self, id: WaiterId, waker: &Waker) {
        if let Some(slot) = self.slots.get_mut(&id)
            && !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            slot.waker = Some(waker.clone());
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
        if let Some(slot) = st.slots.remove(&self.id) {
            match slot.issued {
                // Issued meanwhile but never taken: give the slot back unused.
                Some(t) => st.finish(now, &t, Outcome::Abandoned),
                None if slot.refused.is_some() => {}
                None => {
                    st.pacer.cancel(now, self.id);
                }
            }
        }
        st.after_change(now, self.shared.name.get());
        let pending = st.has_reports();
        drop(st);
        self.shared.flush_reports(pending);
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
    match block_on_until(fut, None) {
        Some(v) => v,
        None => unreachable!("no deadline"),
    }
}

/// [`block_on`] giving up at `deadline` (`None` when it passed first).
fn block_on_until<F: std::future::Future>(fut: F, deadline: Option<Instant>) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let TaskPoll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left == Duration::ZERO {
                    return None;
                }
                std::thread::park_timeout(left);
            }
            None => std::thread::park(),
        }
    }
}
