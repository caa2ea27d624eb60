//! How a [`RedisStore`](crate::RedisStore) connects: the builder.

use std::fmt;
use std::time::Duration;

use flash_core::{DEFAULT_CALL_TIMEOUT, Error, ErrorKind, Result, storage::Redacted};

use crate::store::RedisStore;

/// The default key prefix.
pub const DEFAULT_PREFIX: &str = "flash";
/// The default time one connection attempt may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The default time the server may take to answer one command.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the store connects.
#[derive(Clone)]
pub(crate) enum Target {
    /// One server (or a proxy in front of several).
    Single(String),
    /// The seed nodes of a Redis Cluster.
    #[cfg(feature = "cluster")]
    Cluster(Vec<String>),
}

/// Builds a [`RedisStore`]: the server, the key prefix and the timeouts.
///
/// ```
/// use std::time::Duration;
/// use flash_redis::RedisStore;
///
/// let builder = RedisStore::builder("redis://127.0.0.1:6379")
///     .prefix("myapp-flash")
///     .connect_timeout(Duration::from_millis(500))
///     .response_timeout(Duration::from_millis(500))
///     .call_timeout(Duration::from_secs(2));
/// // `builder.connect().await` connects now; `builder.connect_lazy()` on first use.
/// # let _ = builder;
/// ```
#[derive(Clone)]
pub struct RedisStoreBuilder {
    pub(crate) target: Target,
    pub(crate) prefix: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) shared_keys: Option<u32>,
}

impl RedisStoreBuilder {
    pub(crate) fn new(target: Target) -> Self {
        RedisStoreBuilder {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            shared_keys: None,
        }
    }

    /// Sets the key prefix (default [`DEFAULT_PREFIX`]): every key of the store starts with
    /// `{<prefix>:`. Several applications (or test runs) share one server by using different
    /// prefixes. It must be 1 to 128 printable ASCII characters other than `{`, `}` and space
    /// (checked when connecting).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets how long one connection attempt may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long the server may take to answer one command (default
    /// [`DEFAULT_RESPONSE_TIMEOUT`]).
    #[must_use]
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Sets the bound on one store call, reconnecting and its one retry included (default
    /// [`DEFAULT_CALL_TIMEOUT`], 2 s, as every flash store): the longest a request waits for a server that is down or
    /// stuck before it gets an [`ErrorKind::Unavailable`] error.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Spreads the clients over `keys` keys, each holding the state of every client hashed to
    /// it, instead of one key per client (the default). Redis charges about 150 bytes for any
    /// key with an expiry, however small its value; a key shared by ten clients pays it once
    /// for ten, and a client with one short message pending costs about 135 bytes instead
    /// of about 240 (`cargo bench -p flash-benches --bench capacity`).
    ///
    /// What it costs: every call reads and writes its whole key, so the clients of one key
    /// share the time of each other's calls. Size `keys` to about a tenth of the clients with
    /// messages pending at once (10⁷ keys for 10⁸ clients); each key then holds about ten
    /// clients and moves about a kilobyte per call. A key holds at most what its clients may
    /// hold (the limits bound each), and a client past its TTL and dedupe window is dropped
    /// whenever its key is written, which expires with its last client.
    ///
    /// Changing `keys`, or turning them on or off, moves clients to other keys: what was
    /// pending is not found again, as when the prefix changes (the `flash` facade's previous
    /// storage carries it over). Pick it once, at deployment.
    /// Must be at least 1 (checked when connecting).
    #[must_use]
    pub fn shared_keys(mut self, keys: u32) -> Self {
        self.shared_keys = Some(keys);
        self
    }

    /// Connects now: fails with [`ErrorKind::Unavailable`] when the server cannot be reached
    /// within the call timeout, and with [`ErrorKind::Config`] for a bad URL or prefix.
    ///
    /// # Errors
    /// As above.
    pub async fn connect(self) -> Result<RedisStore> {
        self.validate()?;
        RedisStore::open(self).await
    }

    /// Builds the store without contacting the server: it connects on first use (and reconnects
    /// by itself whenever the connection is lost). Standalone servers only; must be called
    /// inside a Tokio runtime.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] for a bad URL or prefix, a cluster target, or no Tokio runtime.
    pub fn connect_lazy(self) -> Result<RedisStore> {
        self.validate()?;
        RedisStore::open_lazy(self)
    }

    fn validate(&self) -> Result<()> {
        validate_prefix(&self.prefix)?;
        if self.shared_keys == Some(0) {
            return Err(Error::new(
                ErrorKind::Config,
                "the redis store's shared keys must be at least 1",
            ));
        }
        for (name, value) in [
            ("connect timeout", self.connect_timeout),
            ("response timeout", self.response_timeout),
            ("call timeout", self.call_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("the redis {name} must be longer than zero"),
                ));
            }
        }
        Ok(())
    }
}

/// Checks a key prefix: 1 to 128 printable ASCII characters, no braces (they would break the hash
/// tag that keeps a client's keys in one cluster slot), no spaces.
pub(crate) fn validate_prefix(prefix: &str) -> Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 128
        && prefix
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'{' && b != b'}');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Config,
            format!(
                "invalid redis key prefix {prefix:?}: use 1 to 128 printable ASCII characters \
                 without spaces, `{{` or `}}`"
            ),
        ))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Single(url) => f.debug_tuple("Single").field(&Redacted(url)).finish(),
            #[cfg(feature = "cluster")]
            Target::Cluster(urls) => f
                .debug_tuple("Cluster")
                .field(&urls.iter().map(|u| Redacted(u)).collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("shared_keys", &self.shared_keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_passwords() {
        for url in [
            "redis://u:hunter2@h",
            "redis://hunter2@h",
            "redis://u:hun/ter2@h",
            "redis+unix:///tmp/x.sock?pass=hunter2",
        ] {
            let builder = RedisStoreBuilder::new(Target::Single(url.into()));
            let shown = format!("{builder:?}");
            assert!(
                !shown.contains("hunter2") && !shown.contains("ter2"),
                "{shown}"
            );
            assert!(shown.contains("***"), "{shown}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        for good in ["flash", "a", "my-app:flash", &"x".repeat(128)] {
            assert!(validate_prefix(good).is_ok(), "{good}");
        }
        for bad in ["", "a{b", "a}b", "a b", "tab\t", "é", &"x".repeat(129)] {
            let err = validate_prefix(bad).expect_err(bad);
            assert_eq!(err.kind(), ErrorKind::Config);
        }
    }
}
