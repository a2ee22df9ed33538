//! Retry pauses shared by everything that reconnects (cluster links, a
//! client failing over): doubling from a start up to a cap, then a random
//! 50–100 % of it, so the many parties that lost the same node do not all
//! retry in step.

use std::time::Duration;

use rand::Rng;

/// A doubling pause with jitter: the pause before retry `failures + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The full pause after the first failure.
    pub start: Duration,
    /// The longest full pause.
    pub cap: Duration,
}

impl Backoff {
    /// The full (jitter-free) pause after `failures` failures: `start`
    /// doubled `failures` times, at most `cap`.
    pub fn full(self, failures: u32) -> Duration {
        self.start
            .saturating_mul(1u32 << failures.min(16))
            .min(self.cap)
    }

    /// The pause to wait after `failures` failures: a random 50–100 % of
    /// [`Backoff::full`].
    pub fn pause(self, failures: u32) -> Duration {
        self.full(failures)
            .mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST: Backoff = Backoff {
        start: Duration::from_millis(100),
        cap: Duration::from_secs(10),
    };

    #[test]
    fn pauses_double_up_to_the_cap_with_jitter() {
        for failures in 0..40 {
            let full = TEST.full(failures);
            let pause = TEST.pause(failures);
            assert!(pause <= full && pause >= full / 2, "{failures}: {pause:?}");
        }
        assert_eq!(TEST.full(0), TEST.start);
        assert_eq!(TEST.full(1), TEST.start * 2);
        assert_eq!(TEST.full(40), TEST.cap);
        assert!(TEST.pause(0) > Duration::ZERO);
    }
}
