//! Connection settings and the retry policy of transactions.

use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

use crate::Result;

/// Where to connect and how to retry: a parsed connection URL plus the
/// [`RetryPolicy`] of [`transaction`](crate::Client::transaction) and the
/// size of a [`Pool`](crate::Pool).
///
/// ```
/// use std::time::Duration;
/// use meridian_client::Config;
///
/// let config: Config = "postgres://meridian@localhost:5433/meridian".parse()?;
/// let config = config
///     .max_attempts(20)
///     .base_backoff(Duration::from_millis(5))
///     .max_backoff(Duration::from_millis(500))
///     .jitter(1.0)
///     .pool_size(8);
/// assert_eq!(config.retry_policy().max_attempts, 20);
/// # Ok::<(), meridian_client::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pg: tokio_postgres::Config,
    retry: RetryPolicy,
    pool_size: usize,
    pool_timeout: Option<Duration>,
}

impl Config {
    /// Parses a connection string: a URL such as
    /// `postgres://user:password@host:port/database` or a key-value string
    /// such as `host=localhost port=5433 user=meridian`, as libpq (and
    /// tokio-postgres) accept them. The retry policy and pool settings start
    /// at their defaults.
    pub fn new(url: &str) -> Result<Self> {
        Ok(Self::from_postgres(url.parse()?))
    }

    /// Settings around an already built tokio-postgres configuration.
    pub fn from_postgres(pg: tokio_postgres::Config) -> Self {
        Config {
            pg,
            retry: RetryPolicy::default(),
            pool_size: default_pool_size(),
            pool_timeout: Some(Duration::from_secs(30)),
        }
    }

    /// The tokio-postgres configuration (host, port, user, ...).
    pub fn postgres(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The tokio-postgres configuration, to change connection settings.
    pub fn postgres_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }

    /// The retry policy of transactions.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Replaces the whole retry policy.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// How many times a transaction is run at most, the first run included
    /// (default 10). `1` disables retries; `0` is taken as `1`.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.retry.max_attempts = attempts;
        self
    }

    /// The backoff before the first retry (default 10 ms); it doubles with
    /// each further retry, up to [`max_backoff`](Self::max_backoff).
    pub fn base_backoff(mut self, backoff: Duration) -> Self {
        self.retry.base_backoff = backoff;
        self
    }

    /// The longest backoff between two attempts (default 1 s).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.retry.max_backoff = backoff;
        self
    }

    /// The share of each backoff that is random, from `0.0` (none: every
    /// backoff is exactly the exponential one) to `1.0` (the default, "full
    /// jitter": uniform between zero and the exponential backoff).
    /// Out-of-range values are clamped.
    pub fn jitter(mut self, jitter: f64) -> Self {
        self.retry.jitter = jitter;
        self
    }

    /// The most connections a [`Pool`](crate::Pool) opens (default: four
    /// per CPU, at least 4).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How long [`Pool::get`](crate::Pool::get) waits for a free
    /// connection before failing with [`Error::PoolTimeout`](crate::Error::PoolTimeout)
    /// (default 30 s; `None` waits for ever).
    pub fn pool_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_timeout = timeout;
        self
    }

    /// The most connections a pool opens.
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }

    /// How long a pool waits for a free connection.
    pub fn get_pool_timeout(&self) -> Option<Duration> {
        self.pool_timeout
    }
}

impl FromStr for Config {
    type Err = crate::Error;

    fn from_str(url: &str) -> Result<Self> {
        Config::new(url)
    }
}

impl From<tokio_postgres::Config> for Config {
    fn from(pg: tokio_postgres::Config) -> Self {
        Config::from_postgres(pg)
    }
}

fn default_pool_size() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    (cpus * 4).max(4)
}

/// How [`transaction`](crate::Client::transaction) retries: at most
/// `max_attempts` runs, with a jittered exponential backoff between them.
///
/// The backoff before retry `n` (`n = 1` after the first failed attempt)
/// is `min(max_backoff, base_backoff * 2^(n-1))`, of which a random share of
/// up to `jitter` is taken off, so that transactions that conflicted with
/// each other do not all come back at the same moment.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// The most runs of a transaction, the first included; `0` counts as 1.
    pub max_attempts: u32,
    /// The backoff before the first retry.
    pub base_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The random share of each backoff, `0.0..=1.0`.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(1),
            jitter: 1.0,
        }
    }
}

impl RetryPolicy {
    /// A policy that runs a transaction once and never retries.
    pub fn no_retries() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The exponential backoff before retry `retry` (1-based), before
    /// jitter: `min(max_backoff, base_backoff * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(31);
        self.base_backoff
            .saturating_mul(1 << doublings)
            .min(self.max_backoff)
    }

    /// The backoff to sleep before retry `retry` (1-based): the
    /// [`ceiling`](Self::ceiling) less a random share of up to `jitter` of it.
    pub fn backoff(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry);
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        if jitter == 0.0 || ceiling.is_zero() {
            return ceiling;
        }
        let cut: f64 = rand::rng().random_range(0.0..=jitter);
        ceiling.mul_f64(1.0 - cut)
    }

    /// The attempts allowed, at least 1.
    pub(crate) fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            jitter: 0.0,
        };
        let got: Vec<_> = (1..=6).map(|n| policy.backoff(n).as_millis()).collect();
        assert_eq!(got, [10, 20, 40, 80, 100, 100]);
        assert_eq!(policy.ceiling(1000), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let policy = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::default()
        };
        for retry in 1..=12 {
            let ceiling = policy.ceiling(retry);
            for _ in 0..50 {
                let backoff = policy.backoff(retry);
                assert!(backoff <= ceiling, "{backoff:?} > {ceiling:?}");
                assert!(backoff >= ceiling / 2 - Duration::from_nanos(1));
            }
        }
        let full = RetryPolicy::default();
        let samples: Vec<_> = (0..100).map(|_| full.backoff(4)).collect();
        assert!(samples.iter().any(|b| *b != samples[0]), "no jitter");
        assert!(samples.iter().all(|b| *b <= full.ceiling(4)));
    }

    #[test]
    fn config_parses_urls_and_sets_policy() {
        let config = Config::new("postgres://meridian@127.0.0.1:5433/db")
            .unwrap()
            .max_attempts(0)
            .jitter(7.0)
            .pool_size(0);
        assert_eq!(config.postgres().get_user(), Some("meridian"));
        assert_eq!(config.postgres().get_dbname(), Some("db"));
        assert_eq!(config.retry_policy().attempts(), 1);
        assert_eq!(config.get_pool_size(), 1);
        // Clamped at use.
        let ceiling = config.retry_policy().ceiling(2);
        assert!(config.retry_policy().backoff(2) <= ceiling);
        assert!("postgres://host:notaport/db".parse::<Config>().is_err());
        assert_eq!(RetryPolicy::no_retries().attempts(), 1);
    }
}
