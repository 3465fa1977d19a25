//! [`Locked`]: the limiter's state under its lock, emitting the metrics staged meanwhile
//! once the lock is released.

use parking_lot::MutexGuard;

use super::State;

/// The locked [`State`]; the metrics staged under the lock are emitted once it is
/// released, so a slow recorder never holds up the limiter.
pub(super) struct Locked<'a>(Option<MutexGuard<'a, State>>);

impl<'a> Locked<'a> {
    pub(super) fn new(guard: MutexGuard<'a, State>) -> Self {
        Locked(Some(guard))
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.as_ref().expect("locked until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_mut().expect("locked until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if let Some(mut st) = self.0.take() {
            let staged = st.metrics.take();
            drop(st);
            staged.emit();
        }
    }
}
