//! Time, injected: the token cache asks a [`Clock`] for "now" so that tests
//! can cross many token lifetimes in milliseconds with a [`ManualClock`].
//!
//! Also the one place where outside numbers (`exp`, `iat`, `max-age`,
//! `expires_in`) become times: [`unix_time`] and [`later`] saturate at the
//! end of the year 9999 instead of overflowing `SystemTime`, which panics.
//! `scripts/check-time-arithmetic` keeps `SystemTime + Duration` out of the
//! rest of the code.

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
                later(UNIX_EPOCH, Duration::new(secs, nanos))
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
            millis: Arc::new(AtomicU64::new(unix_millis(start))),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let _ = self
            .millis
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |ms| {
                Some(ms.saturating_add(by))
            });
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: SystemTime) {
        self.millis.store(unix_millis(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        later(
            UNIX_EPOCH,
            Duration::from_millis(self.millis.load(Ordering::SeqCst)),
        )
    }
}

/// Milliseconds since the Unix epoch (0 before it, saturating after), for
/// times kept in atomics.
pub(crate) fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The last second of the year 9999, the latest time an outside value can
/// name here (and the last that RFC 3339 can print).
const LATEST_UNIX_SECONDS: u64 = 253_402_300_799;

/// Seconds since the Unix epoch (a JWT's `exp`, `iat`, `nbf`) as a time,
/// saturating at the end of the year 9999: a hostile `"exp": 1e19` gives a
/// time far away, never a panic.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// assert_eq!(idtoken::unix_time(60), UNIX_EPOCH + Duration::from_secs(60));
/// assert_eq!(idtoken::unix_time(u64::MAX), idtoken::unix_time(253_402_300_799));
/// ```
pub fn unix_time(secs: u64) -> SystemTime {
    later(UNIX_EPOCH, Duration::from_secs(secs))
}

/// Like [`unix_time`], but `None` past the end of the year 9999 instead of
/// saturating: for showing a time that may be out of range.
///
/// ```
/// assert!(idtoken::unix_time_checked(253_402_300_799).is_some());
/// assert_eq!(idtoken::unix_time_checked(253_402_300_800), None);
/// ```
pub fn unix_time_checked(secs: u64) -> Option<SystemTime> {
    (secs <= LATEST_UNIX_SECONDS).then(|| unix_time(secs))
}

/// `t + d`, saturating at the end of the year 9999.
pub(crate) fn later(t: SystemTime, d: Duration) -> SystemTime {
    let latest = UNIX_EPOCH + Duration::from_secs(LATEST_UNIX_SECONDS);
    match t.checked_add(d) {
        Some(sum) if sum <= latest => sum,
        _ if t > latest => t,
        _ => latest,
    }
}

/// `t - d`, or `t` itself when that would be before the platform's range.
pub(crate) fn earlier(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_sub(d).unwrap_or(t)
}

/// Seconds since the Unix epoch, as JWT claims count time.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_times_saturate_at_the_end_of_the_year_9999_instead_of_panicking() {
        let latest = unix_time(LATEST_UNIX_SECONDS);
        assert_eq!(unix_time(u64::MAX), latest);
        assert_eq!(unix_time(10_000_000_000_000_000_000), latest);
        assert_eq!(later(SystemTime::now(), Duration::MAX), latest);
        assert_eq!(later(latest, Duration::from_secs(1)), latest);
        assert_eq!(earlier(UNIX_EPOCH, Duration::MAX), UNIX_EPOCH);
        let clock = ManualClock::new(UNIX_EPOCH);
        clock.advance(Duration::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), latest);
    }

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
