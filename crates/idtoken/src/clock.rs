//! Time, injected: the token cache asks a [`Clock`] for "now" so that tests
//! can cross many token lifetimes in milliseconds with a [`ManualClock`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time.
///
/// Token expiry (`exp`) is wall-clock time, so the cache compares it with
/// this clock rather than with a monotonic one.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// The current time, possibly a few milliseconds behind, read as
    /// cheaply as the platform allows. The token cache's warm path uses
    /// it: token lifetimes are whole seconds with margins of seconds, and
    /// the precise clock is most of a warm call's cost.
    fn now_coarse(&self) -> SystemTime {
        self.now()
    }
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    #[cfg(target_os = "linux")]
    fn now_coarse(&self) -> SystemTime {
        // CLOCK_REALTIME_COARSE: the kernel's last tick (1-4 ms old), read
        // from the vDSO without touching the TSC; about 5 ns against 30-50 ns
        // for CLOCK_REALTIME on this project's VMs (docs/BENCHMARKS.md).
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        match (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec)) {
            (Ok(secs), Ok(nanos)) if nanos < 1_000_000_000 => {
                UNIX_EPOCH + Duration::new(secs, nanos)
            }
            _ => SystemTime::now(),
        }
    }
}

/// A clock that moves only when told to. Cloning shares the same time.
///
/// ```
/// use idtoken::{Clock, ManualClock};
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(60));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_060));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            millis: Arc::new(AtomicU64::new(millis_since_epoch(start))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(by, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        self.millis.store(millis_since_epoch(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, as JWT claims count time.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_system_time_is_within_a_few_milliseconds_of_the_precise_one() {
        let clock = SystemClock;
        for _ in 0..1000 {
            let before = clock.now();
            let coarse = clock.now_coarse();
            let after = clock.now();
            // The coarse clock may lag by a tick, never lead.
            assert!(coarse <= after, "coarse {coarse:?} after precise {after:?}");
            let lag = before.duration_since(coarse).unwrap_or_default();
            assert!(
                lag < Duration::from_millis(50),
                "coarse clock lags by {lag:?}"
            );
        }
    }
}
