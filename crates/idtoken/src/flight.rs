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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;
use tracing::instrument::WithSubscriber as _;

/// One shared fetch at a time; `T` is its outcome (a `Result`).
pub(crate) struct Flight<T> {
    slot: Arc<Mutex<Slot<T>>>,
    /// Mirrors `slot.running.is_some()` (written under the lock), so that
    /// the token cache's warm path in the refresh window, which asks for a
    /// refresh on every call, takes no lock while one runs.
    busy: Arc<AtomicBool>,
}

struct Slot<T> {
    /// The fetch in flight: its number, the runtime its task runs on, and
    /// where its outcome appears.
    running: Option<Running<T>>,
    next: u64,
}

struct Running<T> {
    id: u64,
    runtime: tokio::runtime::Id,
    outcome: watch::Receiver<Option<T>>,
}

impl<T: Clone + Send + Sync + 'static> Flight<T> {
    pub(crate) fn new() -> Self {
        Self {
            slot: Arc::new(Mutex::new(Slot {
                running: None,
                next: 0,
            })),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether a fetch is running in a task of its own.
    pub(crate) fn in_flight(&self) -> bool {
        self.busy.load(Ordering::Acquire)
    }

    /// Starts `fetch` in a task of its own unless one is running; for
    /// refreshes nobody waits for. False when none was started (one is
    /// running, or there is no runtime to run it on).
    pub(crate) fn start<Fut>(&self, fetch: impl FnOnce() -> Fut) -> bool
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        if self.busy.load(Ordering::Acquire) {
            return false;
        }
        let slot = self.lock();
        slot.running.is_none() && self.spawn(slot, fetch).is_some()
    }

    /// The outcome of the fetch in flight; or, when none runs and `may`
    /// says yes, of `fetch` started now; else `None` at once. `may` runs
    /// under the slot's lock, so whoever it lets start is seen running by
    /// every later caller, and a fetch that just landed (its result stored
    /// before the slot is freed) is seen by `may`: no gap in which a second
    /// caller finds neither a fetch nor a reason not to start one.
    ///
    /// A fetch running on another runtime makes progress only while that
    /// runtime runs, which a runtime driven by `block_on` now and then may
    /// not do: such a fetch counts as none here, and `fetch` runs inline.
    /// `None` also when the fetch ended without an outcome (its runtime
    /// shut down) or there is no runtime.
    pub(crate) async fn join_or_start_if<Fut>(
        &self,
        may: impl FnOnce() -> bool,
        fetch: impl FnOnce() -> Fut,
    ) -> Option<T>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let here = tokio::runtime::Handle::try_current().ok()?.id();
        let joined = {
            let slot = self.lock();
            let on_this_runtime = match &slot.running {
                Some(running) if running.runtime == here => Some(running.outcome.clone()),
                _ => None,
            };
            match (on_this_runtime, slot.running.is_some()) {
                (Some(outcome), _) => Ok(outcome),
                (None, _) if !may() => return None,
                // Running on another runtime: fetch here instead.
                (None, true) => Err(fetch),
                (None, false) => Ok(self.spawn(slot, fetch)?),
            }
        };
        match joined {
            Ok(outcome) => Self::wait(outcome).await,
            Err(fetch) => Some(fetch().await),
        }
    }

    /// The outcome of the fetch in flight, or of `fetch` started now (see
    /// [`Flight::join_or_start_if`]).
    #[cfg(test)]
    pub(crate) async fn join<Fut>(&self, fetch: impl FnOnce() -> Fut) -> Option<T>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        self.join_or_start_if(|| true, fetch).await
    }

    async fn wait(mut outcome: watch::Receiver<Option<T>>) -> Option<T> {
        let seen = outcome.wait_for(Option::is_some).await.ok()?;
        seen.clone()
    }

    /// Marks a fetch as running (under the lock), then spawns it with the
    /// lock released: a runtime that is shutting down drops the task at
    /// once, and its guard takes the lock to clear the slot.
    fn spawn<Fut>(
        &self,
        mut slot: MutexGuard<'_, Slot<T>>,
        fetch: impl FnOnce() -> Fut,
    ) -> Option<watch::Receiver<Option<T>>>
    where
        Fut: Future<Output = T> + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let id = slot.next;
        slot.next = slot.next.wrapping_add(1);
        let (tx, rx) = watch::channel(None);
        slot.running = Some(Running {
            id,
            runtime: runtime.id(),
            outcome: rx.clone(),
        });
        self.busy.store(true, Ordering::Release);
        drop(slot);
        let fut = fetch();
        let landed = Landed {
            slot: Arc::clone(&self.slot),
            busy: Arc::clone(&self.busy),
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
    busy: Arc<AtomicBool>,
    id: u64,
}

impl<T> Drop for Landed<T> {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.running.as_ref().is_some_and(|r| r.id == self.id) {
            slot.running = None;
            self.busy.store(false, Ordering::Release);
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

    #[test]
    fn starting_a_fetch_while_the_runtime_shuts_down_does_not_deadlock() {
        struct StartOnDrop(Arc<Flight<u32>>);
        impl Drop for StartOnDrop {
            fn drop(&mut self) {
                let _ = self.0.start(|| async { 1 });
            }
        }
        let flight = Arc::new(Flight::<u32>::new());
        let doomed = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let guard = StartOnDrop(Arc::clone(&flight));
        doomed.block_on(async move {
            tokio::spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            tokio::task::yield_now().await;
        });
        // Shutting down drops the pending task; its guard starts a fetch on
        // the closing runtime, which drops that at once too.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(doomed);
            let _ = done.send(());
        });
        assert!(
            finished.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the runtime's shutdown deadlocked"
        );
        assert!(!flight.in_flight());
    }

    #[test]
    fn a_waiter_on_another_runtime_does_not_wait_for_an_idle_one() {
        let flight = Flight::<u32>::new();
        let idle = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // A background refresh on a runtime nobody drives afterwards.
        idle.block_on(async { assert!(flight.start(|| async { 1 })) });
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let got = other.block_on(async {
            tokio::time::timeout(Duration::from_secs(2), flight.join(|| async { 2 })).await
        });
        assert_eq!(got, Ok(Some(2)), "fetched on its own runtime");
    }

    #[tokio::test]
    async fn nothing_starts_when_the_check_under_the_lock_says_it_is_not_needed() {
        let flight = Flight::<u32>::new();
        // The caller's own check said "fetch", but by the time it holds the
        // slot's lock a fetch has landed: nothing starts.
        assert_eq!(
            flight.join_or_start_if(|| false, || async { 1 }).await,
            None
        );
        assert!(!flight.in_flight());
        assert_eq!(
            flight.join_or_start_if(|| true, || async { 2 }).await,
            Some(2)
        );
    }
}
