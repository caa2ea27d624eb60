//! The one error type of every flash crate.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

/// What went wrong, for a caller to match on.
///
/// ```
/// use flash_core::{Error, ErrorKind};
///
/// // What a handler may do with a failed read: the page is served either way.
/// fn log_level(err: &Error) -> tracing::Level {
///     match err.kind() {
///         ErrorKind::Unavailable => tracing::Level::WARN, // the store is down: try later
///         ErrorKind::Config => tracing::Level::ERROR, // the message says what to fix
///         _ => tracing::Level::INFO, // a tampered or unreadable cookie: nothing shown
///     }
/// }
/// assert_eq!(log_level(&Error::new(ErrorKind::Unavailable, "redis")), tracing::Level::WARN);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The backend cannot be reached (connection refused, timed out, pool exhausted).
    Unavailable,
    /// A signature or key check failed: the data was tampered with or signed with an unknown key.
    Integrity,
    /// Messages could not be encoded for storage.
    Encode,
    /// Stored data could not be decoded.
    Decode,
    /// The messages do not fit the storage's size limit.
    SizeLimit,
    /// The configuration is wrong (bad URL, short secret, missing layer); the message says what to fix.
    Config,
    /// The backend answered with an error.
    Backend,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Unavailable => "storage unavailable",
            ErrorKind::Integrity => "integrity check failed",
            ErrorKind::Encode => "cannot encode messages",
            ErrorKind::Decode => "cannot decode stored messages",
            ErrorKind::SizeLimit => "size limit exceeded",
            ErrorKind::Config => "configuration error",
            ErrorKind::Backend => "backend error",
        })
    }
}

type Source = Box<dyn StdError + Send + Sync + 'static>;

/// A flash error: a [`ErrorKind`], a sentence of context, and the underlying error as
/// [`source()`](std::error::Error::source).
///
/// ```
/// use flash_core::{Error, ErrorKind};
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let err = Error::with_source(ErrorKind::Unavailable, "redis at 127.0.0.1:6379", io);
/// assert_eq!(err.kind(), ErrorKind::Unavailable);
/// assert!(std::error::Error::source(&err).is_some());
/// assert_eq!(err.to_string(), "storage unavailable: redis at 127.0.0.1:6379");
/// ```
pub struct Error {
    kind: ErrorKind,
    context: Cow<'static, str>,
    source: Option<Source>,
    recovered: bool,
}

impl Error {
    /// An error with no underlying cause.
    pub fn new(kind: ErrorKind, context: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            context: context.into(),
            source: None,
            recovered: false,
        }
    }

    /// An error caused by `source`, which stays reachable through `source()`.
    pub fn with_source(
        kind: ErrorKind,
        context: impl Into<Cow<'static, str>>,
        source: impl Into<Source>,
    ) -> Self {
        Error {
            kind,
            context: context.into(),
            source: Some(source.into()),
            recovered: false,
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The context sentence, without the kind.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Whether the operation succeeded all the same: a save that recovered from this failure
    /// ([`SaveReport::degraded`](crate::SaveReport::degraded): the messages carried in a
    /// cookie while the keyed store is down, or left under an old id). An error hook uses it
    /// to say what happened: recovered (the context says how), or lost.
    pub fn is_recovered(&self) -> bool {
        self.recovered
    }

    /// This error, marked as recovered from ([`Error::is_recovered`]).
    #[must_use]
    pub fn recovered(mut self) -> Self {
        self.recovered = true;
        self
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("context", &self.context);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        if self.recovered {
            d.field("recovered", &true);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.kind, self.context)
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// The result of flash operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
