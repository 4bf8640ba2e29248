//! Timers a client connection lends to its requests in turn: the
//! upstream timeout and hyper's HTTP/1.1 header timer.
//!
//! A new tokio timer goes into the runtime's timer wheel when first
//! polled and comes out when dropped, and every proxied request armed two.
//! A timer kept from one request to the next is moved to its new, later
//! deadline by an atomic store instead (`Sleep::reset`); tokio moves it in
//! the wheel only when its old deadline comes. 0.4k fewer instructions an
//! HTTP/1.1 request (docs/BENCHMARKS.md). Between requests a kept timer
//! stays in the wheel: if its deadline passes, it wakes the task that last
//! polled it once, which finds nothing to do, and the next request that
//! takes it arms it anew.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// How many idle timers a connection keeps: as many requests in progress
/// at once as take a kept timer (HTTP/2 streams; HTTP/1.1 has one).
const KEPT: usize = 16;

/// The idle timers of one client connection.
#[derive(Default)]
pub(super) struct TimerSlot(Mutex<Vec<Pin<Box<Sleep>>>>);

impl TimerSlot {
    /// A timer due at `deadline`, kept here until the returned value is
    /// dropped.
    pub(super) fn lend<S: Deref<Target = TimerSlot>>(slot: S, deadline: Instant) -> Lent<S> {
        let kept = slot.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let sleep = match kept {
            Some(mut sleep) => {
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Lent {
            slot,
            sleep: Some(sleep),
        }
    }

    /// `future`'s output, or `None` if it is not ready within `limit`.
    pub(super) fn within<F: Future>(&self, limit: Duration, future: F) -> Within<'_, F> {
        Within {
            future,
            timer: TimerSlot::lend(self, deadline_after(limit)),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future raced against a lent timer, as [`TimerSlot::within`]
    /// makes it: a struct, not an `async fn`, so the future is not moved
    /// once more into a state of its own (memcpy of the request).
    pub(super) struct Within<'a, F> {
        #[pin]
        future: F,
        timer: Lent<&'a TimerSlot>,
    }
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The future first, as `tokio::time::timeout` does: an answer that
        // is ready counts even if the deadline has passed.
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Some(out));
        }
        Pin::new(this.timer).poll(cx).map(|()| None)
    }
}

/// `limit` from now; a day at most (`config`), so never past what
/// `Instant` holds, but far in the future if it were.
fn deadline_after(limit: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(limit)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365)) // time: bounded (a year from now)
}

/// A timer lent by a [`TimerSlot`], given back when dropped.
pub(super) struct Lent<S: Deref<Target = TimerSlot>> {
    slot: S,
    /// `Some` until dropped.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S: Deref<Target = TimerSlot> + Unpin> Future for Lent<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut().sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl<S: Deref<Target = TimerSlot>> Drop for Lent<S> {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            let mut kept = self.slot.0.lock().unwrap_or_else(PoisonError::into_inner);
            if kept.len() < KEPT {
                kept.push(sleep);
            }
        }
    }
}

/// hyper's timer for one HTTP/1.1 client connection: its header timer,
/// armed for every request head, is lent by the connection's slot.
#[derive(Clone, Default)]
pub(super) struct HeaderTimer(Arc<TimerSlot>);

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TimerSlot::lend(self.0.clone(), deadline_after(duration)))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TimerSlot::lend(self.0.clone(), deadline.into()))
    }
}

impl hyper::rt::Sleep for Lent<Arc<TimerSlot>> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many idle timers `slot` keeps.
    fn kept(slot: &TimerSlot) -> usize {
        slot.0.lock().expect("not poisoned").len()
    }

    /// Waits on `slot` for `limit` in a task of its own.
    fn wait(slot: &Arc<TimerSlot>, limit: Duration) -> tokio::task::JoinHandle<Option<()>> {
        let slot = slot.clone();
        tokio::spawn(async move { slot.within(limit, std::future::pending()).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_fires_at_its_new_deadline_not_its_old_one() {
        let slot = Arc::new(TimerSlot::default());
        // The first request's timer is polled (so in the wheel), then kept.
        let first = wait(&slot, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(1)).await;
        first.abort();
        assert!(first.await.is_err_and(|e| e.is_cancelled()));
        assert_eq!(kept(&slot), 1, "kept when dropped");
        // Five seconds later a second request takes it for 10 s (t = 6 s
        // to 16 s): past the first deadline it still waits; past its own,
        // not.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let second = wait(&slot, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!second.is_finished(), "fired at the old deadline");
        tokio::time::sleep(Duration::from_secs(6)).await;
        assert!(second.is_finished(), "not fired at its own deadline");
        assert_eq!(second.await.ok(), Some(None));
        assert_eq!(kept(&slot), 1, "one timer, reused");
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_whose_deadline_passed_waits_anew_when_lent_again() {
        let slot = Arc::new(TimerSlot::default());
        let first = wait(&slot, Duration::from_secs(2));
        tokio::time::sleep(Duration::from_secs(1)).await;
        first.abort();
        let _ = first.await;
        // Its deadline passes while it is kept.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let second = wait(&slot, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(9)).await;
        assert!(!second.is_finished(), "fired before its deadline");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(second.await.ok(), Some(None));
    }

    #[tokio::test(start_paused = true)]
    async fn a_ready_future_wins_over_a_due_timer() {
        let slot = TimerSlot::default();
        assert_eq!(slot.within(Duration::ZERO, async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_at_once_each_get_a_timer_and_at_most_kept_stay() {
        let slot = TimerSlot::default();
        let lent: Vec<_> = (0..KEPT + 4)
            .map(|_| TimerSlot::lend(&slot, deadline_after(Duration::from_secs(1))))
            .collect();
        drop(lent);
        assert_eq!(kept(&slot), KEPT);
    }
}
