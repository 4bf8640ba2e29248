//! [`Flight`]: one fetch at a time, its outcome shared by everyone who
//! waits for it, run in a task of its own.
//!
//! The token cache and the key cache both need "whoever comes while a
//! fetch runs waits for that fetch". Running the fetch inside the first
//! caller's future ties it to that caller: when the caller is dropped (a
//! client disconnect, a timeout shorter than the fetch) the fetch is
//! aborted and the next caller starts over, so with impatient callers and
//! a slow endpoint no fetch ever finishes. Here the fetch belongs to a
//! spawned task; waiters only watch for its outcome, and any of them may
//! leave without harm.
//!
//! The slot that says "a fetch is in flight" is cleared by a guard that
//! the task owns, so it is cleared however the task ends: finished, or
//! dropped with a runtime that shut down. A flag reset only after an
//! `.await` would stay set for ever in that case.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::instrument::WithSubscriber as _;

/// One shared fetch at a time; `T` is its outcome (a `Result`).
pub(crate) struct Flight<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

struct Slot<T> {
    /// The fetch in flight: its number and where its outcome appears.
    running: Option<(u64, watch::Receiver<Option<T>>)>,
    next: u64,
}

impl<T: Clone + Send + Sync + 'static> Flight<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                running: None,
                next: 0,
            })),
        }
    }

    /// Whether a fetch is running.
    pub(crate) fn in_flight(&self) -> bool {
        self.lock().running.is_some()
    }

    /// Starts `fetch` in a task of its own unless one is running; for
    /// refreshes nobody waits for. False when none was started (one is
    /// running, or there is no runtime to run it on).
    pub(crate) fn start<Fut>(&self, fetch: impl FnOnce() -> Fut) -> bool
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut slot = self.lock();
        slot.running.is_none() && self.spawn(&mut slot, fetch).is_some()
    }

    /// The outcome of the fetch in flight, or of `fetch` started now.
    /// `None` when the fetch ended without an outcome (its runtime shut
    /// down) or there is no runtime to run it on.
    pub(crate) async fn join<Fut>(&self, fetch: impl FnOnce() -> Fut) -> Option<T>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut outcome = {
            let mut slot = self.lock();
            match &slot.running {
                Some((_, rx)) => rx.clone(),
                None => self.spawn(&mut slot, fetch)?,
            }
        };
        let seen = outcome.wait_for(Option::is_some).await.ok()?;
        seen.clone()
    }

    fn spawn<Fut>(
        &self,
        slot: &mut Slot<T>,
        fetch: impl FnOnce() -> Fut,
    ) -> Option<watch::Receiver<Option<T>>>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let id = slot.next;
        slot.next = slot.next.wrapping_add(1);
        let (tx, rx) = watch::channel(None);
        slot.running = Some((id, rx.clone()));
        let fut = fetch();
        let landed = Landed {
            slot: Arc::clone(&self.slot),
            id,
        };
        let task = async move {
            let outcome = fut.await;
            // The slot is free before anyone wakes, so a waiter that finds
            // the outcome unusable starts a new fetch rather than
            // rejoining this one.
            drop(landed);
            tx.send_replace(Some(outcome));
        };
        // The fetch logs to the scoped subscriber of whoever started it, as
        // it would have inline. Without one, the task is left to the global
        // default: pinning "no subscriber" on it would hide its events even
        // from a global subscriber set later.
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        if dispatch.is::<tracing::subscriber::NoSubscriber>() {
            runtime.spawn(task);
        } else {
            runtime.spawn(task.with_subscriber(dispatch));
        }
        Some(rx)
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Clears the slot when the fetch's task ends, however it ends.
struct Landed<T> {
    slot: Arc<Mutex<Slot<T>>>,
    id: u64,
}

impl<T> Drop for Landed<T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.running.as_ref().is_some_and(|(id, _)| *id == self.id) {
            slot.running = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiters_that_give_up_do_not_abort_the_fetch() {
        let flight = Flight::<u32>::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let fetch = || {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                7
            }
        };
        for _ in 0..20 {
            let quick = tokio::time::timeout(Duration::from_millis(2), flight.join(fetch));
            assert!(quick.await.is_err(), "gave up");
        }
        assert_eq!(flight.join(fetch).await, Some(7));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(!flight.in_flight());
    }

    #[test]
    fn a_fetch_dropped_with_its_runtime_frees_the_slot() {
        let flight = Flight::<u32>::new();
        let doomed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        doomed.block_on(async {
            assert!(flight.start(std::future::pending::<u32>));
            assert!(!flight.start(|| async { 1 }), "one at a time");
        });
        assert!(flight.in_flight());
        drop(doomed);
        assert!(!flight.in_flight(), "the guard cleared the slot");
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        assert_eq!(other.block_on(flight.join(|| async { 2 })), Some(2));
    }
}
