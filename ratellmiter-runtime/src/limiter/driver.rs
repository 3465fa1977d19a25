//! Driving the engine: issuing every ticket that is due into its waiter's slot, whether
//! or not that waiter is being polled, probing the service, and clearing tickets with a
//! shared store.
//!
//! On an async runtime one task per limiter does this while calls wait (spawned by the
//! first waiter, gone when nobody waits), as tokio's semaphore assigns permits to queued
//! waiters: a ticket whose slot has come is held for the head of the line, and the next
//! caller gets the next slot, so a future nobody polls holds up only itself. Without a
//! runtime (blocking calls on plain threads) the blocking waiters drive the engine
//! themselves, the head sleeping until its slot.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::clearing::Clearing;
use super::{Shared, State};
use crate::pacer::{Issued, Outcome, ProbeId, Step};
use crate::rate_limit::RateLimitedService;
use crate::shared::SharedBudget;

/// Whether a driver task runs, and how to reach it.
#[derive(Default)]
pub(super) struct DriverState {
    running: bool,
    notify: Arc<Notify>,
}

/// What the engine asks of whoever drives it next.
pub(super) enum Drive {
    /// Nothing is due before then (unless the state changes).
    Sleep(Duration),
    /// Ask the service whether it still refuses calls.
    Probe(ProbeId, Arc<dyn RateLimitedService>),
    /// Clear this ticket with the shared store, then hand it over.
    Clear(Issued),
    /// Another driver is busy with the engine (a ticket clearing).
    Wait,
    /// Nobody waits.
    Idle,
}

impl State {
    /// Issues every ticket due at `now` into its waiter's slot, waking the waiter, and
    /// says what is next.
    pub(super) fn drive(&mut self, shared: &Shared, now: Duration) -> Drive {
        loop {
            // Shared budget: while a ticket clears with the store, nothing else issues.
            if self.budget.as_ref().is_some_and(SharedBudget::is_clearing) {
                return Drive::Wait;
            }
            match self.pacer.poll(now) {
                Step::Issued(t) => {
                    if let Some(r) = &mut self.recorder {
                        r.issued(now, &t);
                    }
                    if let Some(b) = &mut self.budget {
                        b.start_clearing();
                        return Drive::Clear(t);
                    }
                    self.hand_over(now, t);
                }
                Step::WaitUntil(at) => return Drive::Sleep(at),
                Step::QuotaExhausted { id, resets_at } => self.refuse(id, resets_at),
                // A call that ends changes the state and tells the driver.
                Step::AtCapacity => return Drive::Wait,
                Step::ProbeService(id) => match shared.prober() {
                    Some(service) => return Drive::Probe(id, service),
                    // The service is gone: fall back to probing with a call.
                    None => {
                        self.pacer.set_external_probe(false);
                        self.pacer.probe_abandoned(id);
                    }
                },
                Step::Idle => return Drive::Idle,
            }
        }
    }

    /// Gives an issued (and cleared) ticket to its waiter; a waiter that left meanwhile
    /// gives it back unused.
    pub(crate) fn hand_over(&mut self, now: Duration, t: Issued) {
        match self.slots.get_mut(&t.id) {
            Some(slot) => {
                slot.issued = Some(t);
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
            None => self.finish(now, &t, Outcome::Abandoned),
        }
    }

    /// Fails the waiting call `id`: a daily quota is spent until `resets_at`.
    pub(super) fn refuse(&mut self, id: crate::pacer::WaiterId, resets_at: Duration) {
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.refused = Some(resets_at);
            if let Some(w) = slot.waker.take() {
                w.wake();
            }
        }
    }

    /// Tells whoever drives the engine that its state changed: the driver task, or
    /// without one the head of the line (a blocking waiter sleeping until its slot).
    pub(crate) fn kick(&mut self) {
        if self.driver.running {
            self.driver.notify.notify_one();
        } else if self.pacer.waiting() > 0 {
            self.wake_head_except(None);
        }
    }

    pub(super) fn driver_running(&self) -> bool {
        self.driver.running
    }

    /// Starts the driver task on the current runtime unless one runs. Returns false
    /// when there is no runtime to run it on.
    pub(super) fn ensure_driver(&mut self, shared: &Arc<Shared>) -> bool {
        if self.driver.running {
            return true;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        self.driver.running = true;
        let notify = self.driver.notify.clone();
        runtime.spawn(run(shared.clone(), notify));
        true
    }
}

/// Marks the driver gone if its task is dropped before it ends (its runtime shut down),
/// waking every waiter so that one on a live runtime starts another.
struct Running<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = self.shared.lock();
            st.driver.running = false;
            for slot in st.slots.values_mut() {
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
            }
        }
    }
}

/// The driver task of one limiter.
async fn run(shared: Arc<Shared>, notify: Arc<Notify>) {
    let mut running = Running {
        shared: &shared,
        armed: true,
    };
    loop {
        // Made before looking at the state, so a change meanwhile is not missed.
        let changed = notify.notified();
        let now = shared.now();
        let (drive, probe_timeout) = {
            let mut st = shared.lock();
            let drive = st.drive(&shared, now);
            st.log_changes(now, shared.name.get());
            if matches!(drive, Drive::Idle) {
                st.driver.running = false;
                running.armed = false;
                return;
            }
            (drive, st.pacer.config().probe_timeout)
        };
        match drive {
            Drive::Sleep(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(shared.origin + at) => {}
                    () = changed => {}
                }
            }
            Drive::Wait | Drive::Idle => changed.await,
            Drive::Probe(id, service) => {
                // On a task of its own, so that a probe that panics only fails itself.
                let check = tokio::spawn(async move { service.is_blocked().await });
                let abort = check.abort_handle();
                match tokio::time::timeout_at(Instant::now() + probe_timeout, check).await {
                    Ok(Ok(blocked)) => shared.probe_result(id, blocked),
                    Ok(Err(e)) => {
                        tracing::error!(
                            service = shared.name(),
                            error = %e,
                            "the service probe (`is_blocked`) failed: counted as refused"
                        );
                        shared.probe_result(id, true);
                    }
                    // The engine counts it refused at its deadline.
                    Err(_) => abort.abort(),
                }
            }
            Drive::Clear(t) => {
                let mut clearing = Clearing::new(shared.clone(), t);
                let cleared = poll_fn(|cx| clearing.poll_clear(cx)).await;
                shared.cleared(cleared);
            }
        }
    }
}
