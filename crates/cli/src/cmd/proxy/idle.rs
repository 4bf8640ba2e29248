//! Closing HTTP/2 connections that stay idle. hyper's header timer runs
//! for HTTP/1.1 only, so an `--http2` listener counts each connection's
//! requests in progress ([`Streams`]) and closes one that has had none,
//! and no request begin or end, for a whole `--header-timeout`, as nginx's
//! `keepalive_timeout` closes its idle HTTP/2 connections. Without it a
//! client could hold connections (and file descriptors) for ever.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// One client connection's requests in progress, and how many began or
/// ended.
#[derive(Debug, Default)]
pub(super) struct Streams {
    active: AtomicUsize,
    events: AtomicU64,
}

impl Streams {
    /// Counts a request in progress until the returned value is dropped
    /// (when its response body has ended or been dropped).
    pub(super) fn begin(self: &Arc<Self>) -> InProgress {
        self.active.fetch_add(1, Relaxed);
        self.events.fetch_add(1, Relaxed);
        InProgress(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in progress, and
    /// none begin or end, for a whole `timeout`: between one and two
    /// `timeout`s after it went idle. One timer per `timeout`, none per
    /// request.
    pub(super) async fn idle(&self, timeout: Duration) {
        loop {
            let seen = self.events.load(Relaxed);
            tokio::time::sleep(timeout).await;
            if self.active.load(Relaxed) == 0 && self.events.load(Relaxed) == seen {
                return;
            }
        }
    }
}

/// A request in progress on a connection of an `--http2` listener.
#[derive(Debug)]
pub(super) struct InProgress(Arc<Streams>);

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
        self.0.events.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_a_whole_quiet_timeout_after_the_last_request() {
        let streams = Arc::new(Streams::default());
        let t = Duration::from_secs(10);
        let request = streams.begin();
        let idle = tokio::spawn({
            let streams = streams.clone();
            async move { streams.idle(t).await }
        });
        // In progress across several timeouts: not idle. (Off the
        // periods' ends by a second, so no two wake-ups tie.)
        tokio::time::sleep(t * 3 + Duration::from_secs(1)).await;
        assert!(!idle.is_finished());
        // Ended now: the current period saw it, the next is quiet.
        drop(request);
        tokio::time::sleep(t).await;
        assert!(!idle.is_finished());
        tokio::time::sleep(t * 2).await;
        assert!(idle.is_finished());
    }
}
