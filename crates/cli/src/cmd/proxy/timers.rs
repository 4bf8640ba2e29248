//! Timers a client connection lends to its requests in turn: the
//! upstream timeout and hyper's HTTP/1.1 header timer.
//!
//! A new tokio timer goes into the runtime's timer wheel when first
//! polled and comes out when dropped, and every proxied HTTP/1.1 request
//! armed two. A timer kept from one request to the next is moved to its
//! new, later deadline by an atomic store instead (`Sleep::reset`); tokio
//! moves it in the wheel only when its old deadline comes: 0.4k fewer
//! instructions an HTTP/1.1 request (docs/BENCHMARKS.md). Between
//! requests a kept timer stays in the wheel: if its deadline passes, it
//! wakes the task that last polled it once, which finds nothing to do,
//! and the next request that takes it arms it anew.
//!
//! A kept timer holds the waker of the task that last polled it, so only
//! connections whose requests all run in the connection's own task keep
//! one (HTTP/1.1). On HTTP/2 each request has a task of its own: a kept
//! timer would keep a finished request's task allocated until its
//! deadline, so those connections make a timer per request, as before.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// The idle timer of one client connection, if it keeps one.
pub(super) struct TimerSlot {
    kept: Mutex<Option<Pin<Box<Sleep>>>>,
    /// Whether a timer given back is kept (see the module's comment).
    keeps: bool,
}

impl TimerSlot {
    /// A slot that keeps its timer between requests when `keeps`: for a
    /// connection whose requests run in its own task (HTTP/1.1).
    pub(super) fn new(keeps: bool) -> Self {
        Self {
            kept: Mutex::new(None),
            keeps,
        }
    }

    /// A timer due at `deadline`, kept here (if the slot keeps one) once
    /// the returned value is dropped.
    pub(super) fn lend<S: Deref<Target = TimerSlot>>(slot: S, deadline: Instant) -> Lent<S> {
        let kept = if slot.keeps {
            slot.kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        } else {
            None
        };
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

    /// `future`'s output, or `None` if it is not ready by `deadline`.
    pub(super) fn within<F: Future>(&self, deadline: Instant, future: F) -> Within<'_, F> {
        Within {
            future,
            timer: TimerSlot::lend(self, deadline),
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
        // As `tokio::time::timeout` does: the future first, so an answer
        // that is ready counts even if the deadline has passed; and if the
        // future used up the task's budget, the timer is still looked at,
        // so a busy future cannot put its deadline off.
        let had_budget = tokio::task::coop::has_budget_remaining();
        if let Poll::Ready(out) = this.future.poll(cx) {
            return Poll::Ready(Some(out));
        }
        let timer = Pin::new(this.timer);
        let expired = if had_budget && !tokio::task::coop::has_budget_remaining() {
            Pin::new(&mut tokio::task::coop::unconstrained(timer)).poll(cx)
        } else {
            timer.poll(cx)
        };
        expired.map(|()| None)
    }
}

/// `limit` after `start`; a day at most (`config`), so never past what
/// `Instant` holds, but far in the future if it were.
pub(super) fn deadline_after(start: Instant, limit: Duration) -> Instant {
    start
        .checked_add(limit)
        .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365)) // time: bounded (a year from start)
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
        if self.slot.keeps
            && let Some(sleep) = self.sleep.take()
        {
            let mut kept = self
                .slot
                .kept
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if kept.is_none() {
                *kept = Some(sleep);
            }
        }
    }
}

/// hyper's timer for one HTTP/1.1 client connection: its header timer,
/// armed for every request head, is lent by the connection's slot (the
/// connection's task polls it).
#[derive(Clone)]
pub(super) struct HeaderTimer(Arc<TimerSlot>);

impl Default for HeaderTimer {
    fn default() -> Self {
        Self(Arc::new(TimerSlot::new(true)))
    }
}

impl hyper::rt::Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TimerSlot::lend(
            self.0.clone(),
            deadline_after(Instant::now(), duration),
        ))
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(TimerSlot::lend(self.0.clone(), deadline.into()))
    }

    // tokio's clock, as hyper-util's `TokioTimer` reads it (the deadlines
    // above are tokio's too).
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

impl hyper::rt::Sleep for Lent<Arc<TimerSlot>> {}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many idle timers `slot` keeps (one at most).
    fn kept(slot: &TimerSlot) -> usize {
        usize::from(slot.kept.lock().expect("not poisoned").is_some())
    }

    /// A request that waits on `slot` for `limit`, polled (so its timer is
    /// in the wheel), then given up after 1 s.
    async fn abandoned(slot: &Arc<TimerSlot>, limit: Duration) {
        let request = wait(slot, limit);
        tokio::time::sleep(Duration::from_secs(1)).await;
        request.abort();
        assert!(request.await.is_err_and(|e| e.is_cancelled()));
    }

    /// Waits on `slot` for `limit` in a task of its own.
    fn wait(slot: &Arc<TimerSlot>, limit: Duration) -> tokio::task::JoinHandle<Option<()>> {
        let slot = slot.clone();
        tokio::spawn(async move {
            slot.within(
                deadline_after(Instant::now(), limit),
                std::future::pending(),
            )
            .await
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_timer_fires_at_its_new_deadline_not_its_old_one() {
        let slot = Arc::new(TimerSlot::new(true));
        // The first request's timer is polled (so in the wheel), then kept.
        abandoned(&slot, Duration::from_secs(10)).await;
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
        let slot = Arc::new(TimerSlot::new(true));
        abandoned(&slot, Duration::from_secs(2)).await;
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
        let slot = TimerSlot::new(true);
        assert_eq!(slot.within(Instant::now(), async { 7 }).await, Some(7));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_at_once_each_get_a_timer_and_one_is_kept() {
        let slot = TimerSlot::new(true);
        let lent: Vec<_> = (0..3)
            .map(|_| {
                TimerSlot::lend(
                    &slot,
                    deadline_after(Instant::now(), Duration::from_secs(1)),
                )
            })
            .collect();
        drop(lent);
        assert_eq!(kept(&slot), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_that_keeps_none_holds_no_waker_after_its_request() {
        let slot = Arc::new(TimerSlot::new(false));
        abandoned(&slot, Duration::from_secs(10)).await;
        assert_eq!(kept(&slot), 0);
        // Its requests still time out.
        let second = wait(&slot, Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(11)).await;
        assert_eq!(second.await.ok(), Some(None));
    }

    /// Real time: a task that keeps waking itself never lets paused time
    /// move on.
    #[tokio::test]
    async fn a_future_that_uses_up_the_tasks_budget_still_times_out() {
        let slot = TimerSlot::new(true);
        // Ready every time it is polled until the budget is gone, then
        // pending: as a busy stream would be.
        let busy = std::future::poll_fn(|cx| {
            while tokio::task::coop::has_budget_remaining() {
                let _ = std::pin::pin!(tokio::task::consume_budget()).poll(cx);
            }
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let raced = slot.within(
            deadline_after(Instant::now(), Duration::from_millis(50)),
            busy,
        );
        let out = tokio::time::timeout(Duration::from_secs(10), raced).await;
        assert_eq!(out.ok(), Some(None), "the deadline was put off");
    }
}
