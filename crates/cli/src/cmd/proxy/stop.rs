//! Ctrl-C's word to a listener's connections: finish the request in
//! flight, then close ([`Stop`]).
//!
//! A connection checks it on every poll, so the check must cost next to
//! nothing: one atomic load, and a comparison of the task's waker with the
//! one it registered. tokio's `watch`, checked beside each connection in a
//! `select!`, took a lock on every poll: about 600 instructions a proxied
//! request (docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Whether a listener is stopping, and the wakers of the connection tasks
/// to wake when it starts to.
#[derive(Default)]
pub(super) struct Stop {
    stopping: AtomicBool,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Waker>>,
}

impl Stop {
    /// Tells every connection to finish and close, and wakes them to.
    pub(super) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for (_, waker) in self.wakers().drain() {
            waker.wake();
        }
    }

    fn wakers(&self) -> MutexGuard<'_, HashMap<u64, Waker>> {
        // Never held across a call that can panic, so never poisoned.
        self.wakers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Drives `conn` until it ends; once `stop` says so, or `idle` ends
/// first, lets it finish the request in flight (`shutdown`) and close.
pub(super) async fn until_stopped<C: Future>(
    conn: C,
    stop: Arc<Stop>,
    idle: impl Future<Output = ()>,
    shutdown: impl FnOnce(Pin<&mut C>),
) {
    let mut conn = std::pin::pin!(conn);
    let mut idle = std::pin::pin!(idle);
    let served = std::future::poll_fn(|cx| {
        if conn.as_mut().poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        idle.as_mut().poll(cx).map(|()| false)
    });
    if unless_stopped(served, stop).await != Some(true) {
        shutdown(conn.as_mut());
        conn.await;
    }
}

/// Runs `work` until it ends, or until `stop` says so, whichever comes
/// first: `None` when stopped first (then `work` is dropped).
pub(super) async fn unless_stopped<F: Future>(work: F, stop: Arc<Stop>) -> Option<F::Output> {
    let mut work = std::pin::pin!(work);
    let mut watch = Watch {
        id: stop.next_id.fetch_add(1, Ordering::Relaxed),
        stop,
        registered: None,
    };
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if watch.stopping(cx) {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One connection's registration with its [`Stop`], removed when dropped.
struct Watch {
    stop: Arc<Stop>,
    id: u64,
    /// The waker registered last, to compare without the lock.
    registered: Option<Waker>,
}

impl Watch {
    /// Whether the listener is stopping; if not, this task is woken when
    /// it starts to.
    fn stopping(&mut self, cx: &mut Context<'_>) -> bool {
        // Registered before the flag is read: a `stop` in between finds
        // the waker, or the read finds the flag set.
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            self.stop.wakers().insert(self.id, waker.clone());
            self.registered = Some(waker);
        }
        self.stop.stopping.load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if self.registered.is_some() {
            self.stop.wakers().remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A connection that stays open until told to shut down, then takes
    /// one more poll to close; counts its shutdowns.
    struct Conn {
        shutdowns: Arc<AtomicUsize>,
        closing: bool,
    }

    impl Future for Conn {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.closing {
                return Poll::Ready(());
            }
            if self.shutdowns.load(Ordering::SeqCst) > 0 {
                self.closing = true;
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn stop_shuts_every_waiting_connection_down_once_and_forgets_them() {
        let stop = Arc::new(Stop::default());
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..5 {
            let conn = Conn {
                shutdowns: shutdowns.clone(),
                closing: false,
            };
            let (stop, counted) = (stop.clone(), shutdowns.clone());
            tasks.spawn(until_stopped(
                conn,
                stop,
                std::future::pending(),
                move |_| {
                    counted.fetch_add(1, Ordering::SeqCst);
                },
            ));
        }
        // Every task has polled its connection and registered.
        while stop.wakers().len() < 5 {
            tokio::task::yield_now().await;
        }
        stop.stop();
        while tasks.join_next().await.is_some() {}
        assert_eq!(shutdowns.load(Ordering::SeqCst), 5);
        assert!(stop.wakers().is_empty());
    }

    #[tokio::test]
    async fn a_connection_that_ends_by_itself_is_not_shut_down_and_leaves_no_waker() {
        let stop = Arc::new(Stop::default());
        let shut = Arc::new(AtomicUsize::new(0));
        let counted = shut.clone();
        until_stopped(
            std::future::ready(()),
            stop.clone(),
            std::future::pending(),
            move |_| {
                counted.fetch_add(1, Ordering::SeqCst);
            },
        )
        .await;
        let pending_once = {
            let mut polled = false;
            std::future::poll_fn(move |cx| {
                if polled {
                    Poll::Ready(())
                } else {
                    polled = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
        };
        until_stopped(pending_once, stop.clone(), std::future::pending(), |_| {}).await;
        assert_eq!(shut.load(Ordering::SeqCst), 0);
        assert!(stop.wakers().is_empty());
    }

    #[tokio::test]
    async fn a_connection_started_after_stop_shuts_down_at_once() {
        let stop = Arc::new(Stop::default());
        stop.stop();
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            shutdowns: shutdowns.clone(),
            closing: false,
        };
        let counted = shutdowns.clone();
        until_stopped(conn, stop.clone(), std::future::pending(), move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_gone_idle_shuts_down_once_and_is_driven_to_its_end() {
        let stop = Arc::new(Stop::default());
        let shutdowns = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            shutdowns: shutdowns.clone(),
            closing: false,
        };
        let counted = shutdowns.clone();
        until_stopped(conn, stop.clone(), std::future::ready(()), move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(shutdowns.load(Ordering::SeqCst), 1);
        assert!(stop.wakers().is_empty());
    }
}
