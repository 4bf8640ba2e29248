//! One task for a client's HTTP/1.1 connection and the connection to the
//! target that its requests go on ([`Joined`]).
//!
//! A proxied request crosses between the two connections several times:
//! the request, the answer's head, the wish for its body, the body. With
//! a task each, every crossing was a wake, a trip through the runtime's
//! queue and a poll of the other task: five task polls a request.
//! [`Joined`] polls both in the client connection's task, each only when
//! its own waker was woken, and follows a crossing made during a poll in
//! that same poll. `select!` or `join!` would poll both at every wake,
//! which cost more than the tasks did (docs/BENCHMARKS.md, "Tried and not
//! kept", tenth session).
//!
//! tokio has no such combinator and no well-kept crate offers one for
//! two futures of different types (`FuturesUnordered` wants one type and
//! wakes the task for every wake, even during its own poll), so it is
//! written here: an atomic word of flags and two wakers.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

/// A connection to the target, handed to a [`Driver`] to be driven.
pub(super) type Side = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Set while [`Joined`] polls: a wake then only sets its flag, which the
/// poll sees before it ends.
const POLLING: u8 = 1;
/// The client connection's future was woken.
const MAIN: u8 = 2;
/// The target connection's future was woken.
const SIDE: u8 = 4;
/// A new target connection was handed over.
const HANDED: u8 = 8;
const WOKEN: u8 = MAIN | SIDE | HANDED;

/// The most rounds (a poll of whichever futures were woken) one poll of
/// [`Joined`] makes before it yields to the runtime's other tasks. A
/// request takes about four; a future that wakes itself to yield (hyper
/// does after 16 reads or writes in a row) is polled again at most this
/// often, and never once the task's coop budget is used up.
const ROUNDS: usize = 16;

/// What [`Joined`], its wakers and its [`Driver`]s share.
struct Shared {
    state: AtomicU8,
    /// The waker of the task polling [`Joined`], woken by the first wake
    /// of either future between two of its polls.
    task: Mutex<Option<Waker>>,
    /// The target connection a [`Driver`] handed over, until [`Joined`]
    /// takes it.
    handed: Mutex<Option<Side>>,
}

impl Shared {
    /// Marks `flags` woken; between polls, wakes the task if nothing had
    /// been woken since its last poll (else it was woken then).
    fn wake(&self, flags: u8) {
        let before = self.state.fetch_or(flags, Ordering::AcqRel);
        if before & (POLLING | WOKEN) == 0
            && let Some(task) = lock(&self.task).as_ref()
        {
            task.wake_by_ref();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Never held across a call that can panic, so never poisoned.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The waker one of [`Joined`]'s futures is polled with.
struct Branch {
    shared: Arc<Shared>,
    flag: u8,
}

impl Wake for Branch {
    fn wake(self: Arc<Self>) {
        self.shared.wake(self.flag);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.wake(self.flag);
    }
}

/// Hands target connections to the [`Joined`] it was made with (a client
/// connection's), which drives them in its task.
#[derive(Clone)]
pub(super) struct Driver(Arc<Shared>);

impl Driver {
    /// A driver for a client connection, before its future exists (the
    /// future holds the driver): [`Driver::run`] joins them.
    pub(super) fn new() -> Self {
        Driver(Arc::new(Shared {
            // The first poll polls the client connection's future.
            state: AtomicU8::new(MAIN),
            task: Mutex::new(None),
            handed: Mutex::new(None),
        }))
    }

    /// `main` joined to this driver: the future that drives what the
    /// driver is handed, in the task that polls it, until `main` ends.
    pub(super) fn run<F: Future>(self, main: F) -> Joined<F> {
        let waker = |flag| {
            Waker::from(Arc::new(Branch {
                shared: self.0.clone(),
                flag,
            }))
        };
        Joined {
            main,
            main_waker: waker(MAIN),
            side: None,
            side_waker: waker(SIDE),
            shared: self.0,
        }
    }

    /// Drives `side` from now on, in place of the connection it was
    /// handed before (which is dropped, and with it its socket).
    pub(super) fn drive(&self, side: Side) {
        *lock(&self.0.handed) = Some(side);
        self.0.wake(HANDED);
    }
}

pin_project_lite::pin_project! {
    /// A client connection's future (`main`) and the target connection
    /// its [`Driver`] was last handed, polled in one task. It ends when
    /// `main` does; the target connection then finishes in a task of its
    /// own, where hyper closes it in good order (its sender went with
    /// `main`; a TLS target gets its `close_notify`).
    pub(super) struct Joined<F> {
        #[pin]
        main: F,
        main_waker: Waker,
        side: Option<Side>,
        side_waker: Waker,
        shared: Arc<Shared>,
    }

    impl<F> PinnedDrop for Joined<F> {
        fn drop(this: Pin<&mut Self>) {
            // A connection handed over but not yet taken may hold one of
            // this join's wakers (a request body the client side polled),
            // and so `shared`: a cycle that would keep its socket open
            // for good. The task's waker goes too.
            let this = this.project();
            drop(lock(&this.shared.handed).take());
            drop(lock(&this.shared.task).take());
        }
    }
}

impl<F: Future> Future for Joined<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let mut this = self.project();
        {
            let mut task = lock(&this.shared.task);
            if !task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        let state = &this.shared.state;
        state.fetch_or(POLLING, Ordering::AcqRel);
        for _ in 0..ROUNDS {
            let woken = state.fetch_and(!WOKEN, Ordering::AcqRel) & WOKEN;
            if woken == 0 {
                // Nothing more to do, unless a wake comes in between
                // (from another thread): then one more round.
                if state
                    .compare_exchange(POLLING, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Poll::Pending;
                }
                continue;
            }
            if woken & HANDED != 0
                && let Some(side) = lock(&this.shared.handed).take()
            {
                *this.side = Some(side);
            }
            if woken & (SIDE | HANDED) != 0
                && let Some(side) = this.side.as_mut()
                && side
                    .as_mut()
                    .poll(&mut Context::from_waker(this.side_waker))
                    .is_ready()
            {
                *this.side = None;
            }
            if woken & MAIN != 0
                && let Poll::Ready(out) = this
                    .main
                    .as_mut()
                    .poll(&mut Context::from_waker(this.main_waker))
            {
                // The newest target connection, handed over in this very
                // poll perhaps, finishes on its own.
                let handed = lock(&this.shared.handed).take();
                if let Some(side) = handed.or_else(|| this.side.take())
                    && let Ok(runtime) = tokio::runtime::Handle::try_current()
                {
                    runtime.spawn(side);
                }
                return Poll::Ready(out);
            }
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        // Yield: whatever is woken is polled on the task's next turn.
        let before = state.fetch_and(!POLLING, Ordering::AcqRel);
        if before & WOKEN != 0 {
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// `main` joined to a driver it is given, run to its end (or 10 s).
    async fn joined<F: Future>(main: impl FnOnce(Driver) -> F) -> Option<F::Output> {
        let driver = Driver::new();
        let joined = driver.clone().run(main(driver));
        tokio::time::timeout(Duration::from_secs(10), joined)
            .await
            .ok()
    }

    /// `join` in a task of its own, and how many times the runtime has
    /// polled it so far.
    fn spawn_counted(
        mut join: Pin<Box<impl Future<Output = ()> + Send + 'static>>,
    ) -> (tokio::task::JoinHandle<()>, Arc<AtomicUsize>) {
        let turns = Arc::new(AtomicUsize::new(0));
        let counted = turns.clone();
        let task = tokio::spawn(std::future::poll_fn(move |cx| {
            counted.fetch_add(1, Ordering::Relaxed);
            join.as_mut().poll(cx)
        }));
        (task, turns)
    }

    #[tokio::test]
    async fn a_target_connection_handed_over_is_driven_in_the_clients_task() {
        let out = joined(|driver| async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            driver.drive(Box::pin(async move {
                let _ = tx.send(tokio::task::try_id());
            }));
            let side = rx.await.ok().flatten();
            (side.is_some(), side == tokio::task::try_id())
        });
        // Run as a task (the test's own future is not one).
        let out = tokio::spawn(out).await.ok().flatten();
        assert_eq!(out, Some((true, true)), "not driven in the same task");
    }

    #[tokio::test]
    async fn a_crossing_within_a_poll_does_not_wake_the_task_again() {
        let driver = Driver::new();
        let side = driver.clone();
        let (crossed, has_crossed) = tokio::sync::oneshot::channel();
        let join = Box::pin(driver.run(async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            side.drive(Box::pin(async move {
                let _ = tx.send(());
            }));
            // Handed over, polled, and back here, all in the first poll.
            let _ = rx.await;
            let _ = crossed.send(());
            std::future::pending::<()>().await;
        }));
        let (task, turns) = spawn_counted(join);
        assert!(has_crossed.await.is_ok());
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert_eq!(turns.load(Ordering::Relaxed), 1, "woken for nothing");
        task.abort();
    }

    #[tokio::test]
    async fn wakes_from_another_thread_are_followed() {
        // Each of many messages from a thread of its own wakes the target
        // connection at any moment of the join's poll; each crosses to
        // the client connection. A lost wake would stall the count (this
        // exercises the exit race; it cannot prove it absent).
        const MESSAGES: usize = 20_000;
        let (to_side, mut side_in) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let sender = std::thread::spawn(move || {
            for i in 0..MESSAGES {
                if to_side.send(i).is_err() {
                    break;
                }
                if i % 64 == 0 {
                    std::thread::yield_now();
                }
            }
        });
        let out = joined(|driver| async move {
            let (to_main, mut main_in) = tokio::sync::mpsc::unbounded_channel();
            driver.drive(Box::pin(async move {
                while let Some(i) = side_in.recv().await {
                    if to_main.send(i).is_err() {
                        break;
                    }
                }
            }));
            let mut received = 0;
            while main_in.recv().await.is_some() {
                received += 1;
            }
            received
        })
        .await;
        assert!(sender.join().is_ok());
        assert_eq!(out, Some(MESSAGES));
    }

    #[tokio::test]
    async fn a_target_connection_woken_between_polls_is_polled_again() {
        let notify = Arc::new(tokio::sync::Notify::new());
        let later = notify.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            later.notify_one();
        });
        let out = joined(|driver| async move {
            let (tx, rx) = tokio::sync::oneshot::channel();
            driver.drive(Box::pin(async move {
                notify.notified().await;
                let _ = tx.send("woken");
            }));
            rx.await.ok()
        })
        .await;
        assert_eq!(out, Some(Some("woken")));
    }

    /// Sends `()` when dropped.
    struct Dropped(Option<tokio::sync::oneshot::Sender<()>>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            if let Some(tx) = self.0.take() {
                let _ = tx.send(());
            }
        }
    }

    /// A target connection that never ends, and word of its drop.
    fn endless() -> (Side, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let guard = Dropped(Some(tx));
        let side = Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        });
        (side, rx)
    }

    #[tokio::test]
    async fn a_new_target_connection_replaces_the_one_being_driven() {
        let (first, first_dropped) = endless();
        let (running, is_running) = tokio::sync::oneshot::channel();
        let (second, _) = endless();
        let out = joined(|driver| async move {
            // Taken over and polled: it is the join's, not the slot's.
            driver.drive(Box::pin(async move {
                let _ = running.send(());
                first.await;
            }));
            let _ = is_running.await;
            driver.drive(second);
            first_dropped.await.is_ok()
        })
        .await;
        assert_eq!(out, Some(true));
    }

    #[tokio::test]
    async fn a_target_connection_handed_over_as_the_client_connection_ends_still_runs_to_its_end() {
        let (tx, ran) = tokio::sync::oneshot::channel();
        let out = joined(|driver| async move {
            // Handed over in the poll in which the client connection ends.
            driver.drive(Box::pin(async move {
                let _ = tx.send(());
            }));
            "ended"
        })
        .await;
        assert_eq!(out, Some("ended"));
        let ran = tokio::time::timeout(Duration::from_secs(10), ran).await;
        assert!(matches!(ran, Ok(Ok(()))), "never run");
    }

    #[tokio::test]
    async fn a_join_dropped_before_its_end_drops_what_it_was_handed() {
        // The client connection's waker, as a target connection holds it
        // when a request body it carries was polled by the client side.
        let main_waker = Arc::new(Mutex::new(None::<Waker>));
        let seen = main_waker.clone();
        let driver = Driver::new();
        let mut join = Box::pin(driver.clone().run(std::future::poll_fn(move |cx| {
            *lock(&seen) = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        std::future::poll_fn(|cx| {
            let _ = join.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
        let (tx, mut dropped) = tokio::sync::oneshot::channel();
        let guard = (Dropped(Some(tx)), lock(&main_waker).take());
        driver.drive(Box::pin(async move {
            let _guard = guard;
            std::future::pending::<()>().await;
        }));
        drop((join, driver));
        assert!(dropped.try_recv().is_ok(), "still held");
    }

    #[tokio::test]
    async fn a_target_connection_that_keeps_waking_itself_lets_other_tasks_run() {
        // Wakes itself at every poll, up to a bound so that a join that
        // never yields shows as a count instead of a hang.
        const BOUND: usize = 100_000;
        let polls = Arc::new(AtomicUsize::new(0));
        let counted = polls.clone();
        let busy = std::future::poll_fn(move |cx| {
            if counted.fetch_add(1, Ordering::Relaxed) < BOUND {
                cx.waker().wake_by_ref();
            }
            Poll::<()>::Pending
        });
        let driver = Driver::new();
        let side = driver.clone();
        let join = Box::pin(driver.run(async move {
            side.drive(Box::pin(busy));
            std::future::pending::<()>().await;
        }));
        // How often the runtime polls the join: each time it yielded.
        let (task, turns) = spawn_counted(join);
        // This task runs again only if the join yields.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        let (turns, polls) = (turns.load(Ordering::Relaxed), polls.load(Ordering::Relaxed));
        // It yielded, and was polled again after yielding.
        assert!(turns >= 2, "the join ran {turns} times");
        assert!(polls > ROUNDS, "not polled after yielding: {polls} polls");
        assert!(
            polls <= turns * ROUNDS,
            "{polls} polls of the target connection in {turns} turns"
        );
        task.abort();
    }
}
