//! The restart policy: a pure function of (consecutive failures, how long the child last ran, jitter).

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct RestartPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// The delay never grows past this.
    pub max: Duration,
    /// A child that ran at least this long before failing starts the count afresh.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
        }
    }
}

impl RestartPolicy {
    /// After a failure: the new count of consecutive failures and how long to wait before the next start.
    /// `jitter` in `[0, 1)` spreads the delay over ±20 % so that restarts of many VMs do not align.
    pub fn after_failure(&self, consecutive_failures: u32, ran_for: Duration, jitter: f64) -> (u32, Duration) {
        let failures = if ran_for >= self.healthy_after {
            1
        } else {
            consecutive_failures.saturating_add(1)
        };
        let doublings = failures.saturating_sub(1).min(30);
        let base = self.initial.saturating_mul(1u32 << doublings.min(20)).min(self.max);
        let factor = 0.8 + 0.4 * jitter.clamp(0.0, 1.0);
        (failures, base.mul_f64(factor).min(self.max))
    }
}

/// A cheap, good-enough source of jitter (no need for a cryptographic generator here).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const QUICK: Duration = Duration::from_millis(10);

    #[test]
    fn delay_doubles_from_half_a_second_to_thirty_seconds() {
        let policy = RestartPolicy::default();
        let mut failures = 0;
        let mut delays = Vec::new();
        for _ in 0..10 {
            let (n, delay) = policy.after_failure(failures, QUICK, 0.5);
            failures = n;
            delays.push(delay.as_millis());
        }
        assert_eq!(
            delays,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000]
        );
    }

    #[test]
    fn a_long_healthy_run_resets_the_count() {
        let policy = RestartPolicy::default();
        let (failures, delay) = policy.after_failure(6, Duration::from_secs(60), 0.5);
        assert_eq!(failures, 1);
        assert_eq!(delay, Duration::from_millis(500));
    }

    #[test]
    fn jitter_stays_within_twenty_percent_and_under_the_cap() {
        let policy = RestartPolicy::default();
        assert_eq!(policy.after_failure(0, QUICK, 0.0).1, Duration::from_millis(400));
        assert_eq!(policy.after_failure(0, QUICK, 0.999_999).1.as_millis(), 599);
        assert_eq!(policy.after_failure(50, QUICK, 0.999_999).1, Duration::from_secs(30));
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn huge_failure_counts_do_not_overflow() {
        let policy = RestartPolicy::default();
        assert_eq!(
            policy.after_failure(u32::MAX, QUICK, 0.5),
            (u32::MAX, Duration::from_secs(30))
        );
    }
}
