//! Retrying with exponential backoff and full jitter, for everything that talks to the
//! coordinator: the worker host's reconnect, the live event stream's reconnect and the
//! resend of a submit whose answer was lost. Delays double from `base` up to `max`,
//! and each wait is a random fraction of the current delay, so a fleet of workers that
//! lost the coordinator together does not return together.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
    /// How many retries `retry` may make before it gives up; `None`: no limit.
    retries: Option<u32>,
    failures: u32,
}

impl Backoff {
    /// Retries without limit, waiting about `base` first and at most `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            current: base,
            retries: None,
            failures: 0,
        }
    }

    /// At most `retries` retries after the first try, then `retry` gives up.
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// The next wait: uniform in [delay/2, delay], then the delay doubles.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.current;
        self.current = (self.current * 2).min(self.max);
        self.failures = self.failures.saturating_add(1);
        let mut bytes = [0u8; 4];
        let fraction = match getrandom::fill(&mut bytes) {
            Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
            Err(_) => 1.0,
        };
        delay.mul_f64(0.5 + fraction / 2.0)
    }

    /// After a success: the next failure waits about `base` again, with every retry.
    pub fn reset(&mut self) {
        self.current = self.base;
        self.failures = 0;
    }

    fn retries_spent(&self) -> bool {
        self.retries.is_some_and(|limit| self.failures >= limit)
    }
}

/// Something worth trying again after a pause: a connect, a handshake, a resend. The
/// futures are `Send` so that a retry can run inside a spawned task.
pub trait Retry {
    type Output;
    type Error;

    /// One try.
    fn attempt(&mut self) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// After a failed try: report it, wait `delay` (doing whatever else must go on
    /// meanwhile), and answer whether to try again.
    fn pause(&mut self, error: &Self::Error, delay: Duration) -> impl Future<Output = bool> + Send;
}

/// Tries `task` until it succeeds, the retries run out, or its pause says stop; gives
/// back the last error then. A success resets the backoff.
pub async fn retry<R: Retry>(backoff: &mut Backoff, task: &mut R) -> Result<R::Output, R::Error> {
    loop {
        match task.attempt().await {
            Ok(value) => {
                backoff.reset();
                return Ok(value);
            }
            Err(error) => {
                if backoff.retries_spent() {
                    return Err(error);
                }
                let delay = backoff.next_delay();
                if !task.pause(&error, delay).await {
                    return Err(error);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, Retry, retry};
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_to_the_cap_with_jitter() {
        let mut b = Backoff::new(ms(100), Duration::from_secs(1));
        let delays: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= ms(50) && delays[0] <= ms(100));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(1)));
        assert!(delays[7] >= ms(500), "{delays:?}");
        b.reset();
        assert!(b.next_delay() <= ms(100));
    }

    /// A task for the tests: fails until `succeed_on` (if ever), records its waits,
    /// and stops at an error named "fatal".
    #[derive(Default)]
    struct Flaky {
        tries: u32,
        succeed_on: Option<u32>,
        fatal_on: Option<u32>,
        waits: Vec<Duration>,
    }

    impl Retry for Flaky {
        type Output = u32;
        type Error = String;

        async fn attempt(&mut self) -> Result<u32, String> {
            self.tries += 1;
            if Some(self.tries) == self.succeed_on {
                Ok(self.tries)
            } else if Some(self.tries) == self.fatal_on {
                Err("fatal".into())
            } else {
                Err(format!("refused {}", self.tries))
            }
        }

        async fn pause(&mut self, error: &String, delay: Duration) -> bool {
            self.waits.push(delay);
            error != "fatal"
        }
    }

    #[tokio::test]
    async fn gives_up_after_its_retries_with_the_last_error() {
        let mut backoff = Backoff::new(ms(10), ms(40)).with_retries(3);
        let mut task = Flaky::default();
        let result = retry(&mut backoff, &mut task).await;
        assert_eq!(
            result,
            Err("refused 4".into()),
            "the first try and three retries"
        );
        assert_eq!(task.waits.len(), 3);
        let bounds = [(5, 10), (10, 20), (20, 40)];
        for (wait, (low, high)) in task.waits.iter().zip(bounds) {
            assert!(*wait >= ms(low) && *wait <= ms(high), "{:?}", task.waits);
        }
    }

    #[tokio::test]
    async fn a_success_returns_at_once_and_resets_the_backoff() {
        let mut backoff = Backoff::new(ms(10), Duration::from_secs(10)).with_retries(2);
        let mut task = Flaky {
            succeed_on: Some(3),
            ..Flaky::default()
        };
        assert_eq!(
            retry(&mut backoff, &mut task).await,
            Ok(3),
            "the last retry won"
        );
        assert_eq!(task.waits.len(), 2);
        // The next run of failures starts from the base delay, with every retry back.
        task.succeed_on = None;
        assert_eq!(
            retry(&mut backoff, &mut task).await,
            Err("refused 6".into())
        );
        assert!(task.waits[2] <= ms(10), "{:?}", task.waits);
    }

    #[tokio::test]
    async fn pause_can_stop_the_retries() {
        let mut backoff = Backoff::new(ms(10), ms(10));
        let mut task = Flaky {
            fatal_on: Some(2),
            ..Flaky::default()
        };
        assert_eq!(retry(&mut backoff, &mut task).await, Err("fatal".into()));
        assert_eq!(task.tries, 2, "no limit, but the pause said stop");
    }
}
