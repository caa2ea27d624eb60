//! [`StorageConfig`]: the storage URL and the secret, from code or from the environment.

use std::fmt;
use std::sync::Arc;

use flash_core::{
    Error, ErrorKind, Key, Keys, Result,
    storage::{MIN_KEY_LEN, Redacted, Storage},
};

use crate::url::{StorageUrl, boolean};

/// The storage URL used when `FLASH_STORAGE` is not set.
pub const DEFAULT_STORAGE: &str = "cookie";

/// Environment variable: the storage URL (default [`DEFAULT_STORAGE`]).
pub const ENV_STORAGE: &str = "FLASH_STORAGE";
/// Environment variable: the secret that signs cookies and client ids (at least 32 bytes).
pub const ENV_SECRET: &str = "FLASH_SECRET";
/// Environment variable: older secrets, comma separated, still accepted when verifying (rotation).
pub const ENV_SECRET_FALLBACKS: &str = "FLASH_SECRET_FALLBACKS";
/// Environment variable: `1` allows a missing or short secret (development only).
pub const ENV_DEV: &str = "FLASH_DEV";
/// Environment variable: the storage URL being left, read and drained but never written
/// while switching storage (see [`StorageConfig::previous`]).
pub const ENV_STORAGE_PREVIOUS: &str = "FLASH_STORAGE_PREVIOUS";
/// Environment variable: the secret the previous storage signed with, when the switch also
/// changes the secret (see [`StorageConfig::previous_secret`]).
pub const ENV_SECRET_PREVIOUS: &str = "FLASH_SECRET_PREVIOUS";

/// A secret string whose `Debug` shows nothing of it.
#[derive(Clone)]
pub(crate) struct Secret(String);

impl Secret {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// A fresh random secret for one process (development mode).
    fn ephemeral() -> Result<Self> {
        Key::random_secret().map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The secret and its older versions, resolved for one storage.
#[derive(Clone, Debug)]
pub(crate) struct Secrets {
    pub(crate) current: Secret,
    pub(crate) fallbacks: Vec<Secret>,
}

impl Secrets {
    /// A key ring for `purpose`: the current secret signs, every secret verifies.
    pub(crate) fn keys(&self, purpose: &str) -> Keys {
        self.fallbacks.iter().fold(
            Keys::new(Key::derive(self.current.as_str(), purpose)),
            |keys, old| keys.with_fallback(Key::derive(old.as_str(), purpose)),
        )
    }
}

/// Which storage to open, and the secret it signs with.
///
/// Build it in code or read it from the environment, then [`open`](StorageConfig::open) it:
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let config = flash::StorageConfig::new("memory?secure=true")
///     .secret("a secret of at least 32 bytes, from a vault")
///     .fallback_secret("the previous secret, kept while rotating");
/// let storage = config.open().await?;
/// assert!(!storage.uses_extensions());
///
/// // The secret and URL passwords are never printed.
/// let config = flash::StorageConfig::new("redis://:hunter2@cache:6379").secret("x".repeat(40));
/// let shown = format!("{config:?} {config}");
/// assert!(!shown.contains("hunter2") && !shown.contains("xxxx"));
/// # Ok::<(), flash::Error>(())
/// # }).unwrap();
/// ```
///
/// The secret must be at least 32 bytes. Outside development mode a missing or shorter secret
/// is refused when the storage signs anything (every storage but `session`). In development
/// mode ([`dev_mode`](StorageConfig::dev_mode), `FLASH_DEV=1`) a short secret is accepted and a
/// missing one is replaced by a random secret for this process, with a `tracing` warning: its
/// cookies stop verifying at the next restart.
#[derive(Clone)]
pub struct StorageConfig {
    url: String,
    secret: Option<Secret>,
    fallbacks: Vec<Secret>,
    dev: bool,
    migrate: bool,
    previous: Option<String>,
    previous_secret: Option<Secret>,
}

impl StorageConfig {
    /// The storage at `url` (see the crate docs for the URL forms), with no secret yet.
    pub fn new(url: impl Into<String>) -> Self {
        StorageConfig {
            url: url.into(),
            secret: None,
            fallbacks: Vec::new(),
            dev: false,
            migrate: true,
            previous: None,
            previous_secret: None,
        }
    }

    /// Reads `FLASH_STORAGE` (default [`DEFAULT_STORAGE`]), `FLASH_SECRET`,
    /// `FLASH_SECRET_FALLBACKS` (comma separated), `FLASH_DEV`, and, while switching storage,
    /// `FLASH_STORAGE_PREVIOUS` and `FLASH_SECRET_PREVIOUS`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a variable is not valid UTF-8 or `FLASH_DEV` is not a boolean.
    pub fn from_env() -> Result<Self> {
        let mut values = Vec::new();
        for name in [
            ENV_STORAGE,
            ENV_SECRET,
            ENV_SECRET_FALLBACKS,
            ENV_DEV,
            ENV_STORAGE_PREVIOUS,
            ENV_SECRET_PREVIOUS,
        ] {
            match std::env::var(name) {
                Ok(value) => values.push((name, value)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!("the environment variable {name} is not valid UTF-8"),
                    ));
                }
            }
        }
        Self::from_vars(|name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        })
    }

    /// As [`from_env`](StorageConfig::from_env), reading the variables through `lookup` (a
    /// configuration system, or a test).
    ///
    /// ```
    /// use flash::StorageConfig;
    /// let vars = [("FLASH_STORAGE", "cookie+memory"), ("FLASH_DEV", "1")];
    /// let config = StorageConfig::from_vars(|name| {
    ///     vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    /// })?;
    /// assert_eq!(config.to_string(), "cookie+memory");
    /// assert!(config.is_dev());
    /// # Ok::<(), flash::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `FLASH_DEV` is not a boolean.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let url = lookup(ENV_STORAGE)
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_STORAGE.to_owned());
        let mut config = StorageConfig::new(url);
        if let Some(secret) = lookup(ENV_SECRET).filter(|v| !v.is_empty()) {
            config = config.secret(secret);
        }
        if let Some(fallbacks) = lookup(ENV_SECRET_FALLBACKS) {
            config = config.fallback_secrets(
                fallbacks
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
            );
        }
        if let Some(dev) = lookup(ENV_DEV).filter(|v| !v.trim().is_empty()) {
            let dev = boolean(&dev).ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!("{ENV_DEV}={dev:?} is not a boolean: use 1 or 0"),
                )
            })?;
            config = config.dev_mode(dev);
        }
        if let Some(previous) = lookup(ENV_STORAGE_PREVIOUS).filter(|v| !v.trim().is_empty()) {
            config = config.previous(previous);
        }
        if let Some(secret) = lookup(ENV_SECRET_PREVIOUS).filter(|v| !v.is_empty()) {
            config = config.previous_secret(secret);
        }
        Ok(config)
    }

    /// Sets the secret that signs cookies and client ids (at least 32 bytes, random).
    #[must_use]
    pub fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(Secret(secret.into()));
        self
    }

    /// Adds an older secret that still verifies but no longer signs (key rotation). Add the
    /// newest old secret first.
    #[must_use]
    pub fn fallback_secret(mut self, secret: impl Into<String>) -> Self {
        self.fallbacks.push(Secret(secret.into()));
        self
    }

    /// Adds older secrets; see [`fallback_secret`](StorageConfig::fallback_secret).
    #[must_use]
    pub fn fallback_secrets<S: Into<String>>(
        mut self,
        secrets: impl IntoIterator<Item = S>,
    ) -> Self {
        self.fallbacks
            .extend(secrets.into_iter().map(|s| Secret(s.into())));
        self
    }

    /// Development mode: a short secret is accepted and a missing one replaced by a random
    /// secret for this process (with a warning). Never in production.
    #[must_use]
    pub fn dev_mode(mut self, dev: bool) -> Self {
        self.dev = dev;
        self
    }

    /// Whether [`open`](StorageConfig::open) creates or upgrades an SQL store's table (its
    /// `migrate`): **on by default**, so a first start just works. Turn it off when tables are
    /// a deployment step of their own (run `flash_sql::SqlStore::migrate` there, with a user
    /// that may create tables) and the application's user may not. The URL option `migrate=`
    /// overrides this. Other storages have no table and ignore it.
    #[must_use]
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// The storage being left (`FLASH_STORAGE_PREVIOUS`): while it is set, a read shows what
    /// it still holds for the browser, before what the current storage holds, once, and
    /// drains it there; nothing new is ever written to it. Any storage URL, in any pair with
    /// the current one. See the crate docs, "Switching storage", for when to remove it.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let config = flash::StorageConfig::new("cookie+memory")
    ///     .secret("a secret of at least 32 bytes, from a vault")
    ///     .previous("cookie?format=django")
    ///     .previous_secret("the Django project's SECRET_KEY, 32 bytes or more");
    /// config.validate()?;
    /// let storage = config.open().await?;
    /// # let _ = storage;
    /// # Ok::<(), flash::Error>(())
    /// # }).unwrap();
    /// ```
    #[must_use]
    pub fn previous(mut self, url: impl Into<String>) -> Self {
        self.previous = Some(url.into());
        self
    }

    /// The secret the previous storage signed with (`FLASH_SECRET_PREVIOUS`), when the switch
    /// also changes the secret (Django's `SECRET_KEY` when leaving Django's cookie): it only
    /// verifies what the previous storage holds, never the current's cookies. Without it the
    /// previous storage verifies with the current secret and its fallbacks.
    #[must_use]
    pub fn previous_secret(mut self, secret: impl Into<String>) -> Self {
        self.previous_secret = Some(Secret(secret.into()));
        self
    }

    /// Whether development mode is on.
    pub fn is_dev(&self) -> bool {
        self.dev
    }

    /// Checks the URL, that its backends are compiled in, and the secret, without connecting.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] naming what to fix: an unknown storage or option, a backend whose
    /// Cargo feature is off, a missing or short secret.
    pub fn validate(&self) -> Result<()> {
        self.resolve()?;
        self.resolve_previous().map(drop)
    }

    pub(crate) fn resolve(&self) -> Result<(StorageUrl, Option<Secrets>)> {
        let url = StorageUrl::parse(&self.url)?;
        Self::compiled(&url, &self.url)?;
        let secrets = if url.needs_secret() {
            Some(self.secrets()?)
        } else {
            self.check_given()?;
            None
        };
        Ok((url, secrets))
    }

    /// The previous storage (`None` when not switching) and the secrets it verifies with.
    pub(crate) fn resolve_previous(&self) -> Result<Option<(StorageUrl, Option<Secrets>)>> {
        let Some(text) = &self.previous else {
            return Ok(None);
        };
        let url = StorageUrl::parse(text).map_err(|err| {
            Error::new(
                ErrorKind::Config,
                format!("{ENV_STORAGE_PREVIOUS}: {}", err.context()),
            )
        })?;
        Self::compiled(&url, text)?;
        let same_secret = match (&self.previous_secret, &self.secret) {
            (None, _) => true,
            (Some(previous), Some(current)) => previous.0 == current.0,
            (Some(_), None) => false,
        };
        if same_secret && url == StorageUrl::parse(&self.url)? {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{ENV_STORAGE_PREVIOUS} `{}` is the current storage: set it to the storage \
                     being left, or unset it",
                    Redacted(text.trim())
                ),
            ));
        }
        if !url.needs_secret() {
            return Ok(Some((url, None)));
        }
        let secrets = match &self.previous_secret {
            Some(secret) if secret.0.len() < MIN_KEY_LEN && !self.dev => {
                return Err(self.short(
                    &format!("the previous secret ({ENV_SECRET_PREVIOUS})"),
                    secret.0.len(),
                ));
            }
            Some(secret) => Secrets {
                current: secret.clone(),
                fallbacks: Vec::new(),
            },
            None => self.secrets().map_err(|err| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "{ENV_STORAGE_PREVIOUS} `{}`: {}",
                        Redacted(text.trim()),
                        err.context()
                    ),
                )
            })?,
        };
        Ok(Some((url, Some(secrets))))
    }

    /// Refuses a URL whose backends are not compiled in, naming the features to turn on.
    fn compiled(url: &StorageUrl, text: &str) -> Result<()> {
        let missing = url.missing_features();
        if !missing.is_empty() {
            let (noun, names) = match missing.as_slice() {
                [one] => ("feature", format!("`{one}`")),
                many => (
                    "features",
                    many.iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(" and "),
                ),
            };
            let list = missing
                .iter()
                .map(|f| format!("\"{f}\""))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the storage `{}` needs the {names} {noun} of the flash crate, not compiled \
                     in: enable {} in Cargo.toml, e.g. \
                     flash = {{ version = \"{}\", features = [{list}] }}",
                    Redacted(text.trim()),
                    if missing.len() == 1 { "it" } else { "them" },
                    env!("CARGO_PKG_VERSION"),
                ),
            ));
        }
        Ok(())
    }

    fn short(&self, what: &str, len: usize) -> Error {
        Error::new(
            ErrorKind::Config,
            format!(
                "{what} is {len} bytes; at least {MIN_KEY_LEN} are needed. Use a random value \
                 (e.g. `openssl rand -base64 48`), or set {ENV_DEV}=1 / StorageConfig::dev_mode \
                 to accept it in development"
            ),
        )
    }

    /// A secret given although the storage signs nothing is still checked: a short one is a
    /// mistake worth reporting.
    fn check_given(&self) -> Result<()> {
        if self.dev {
            return Ok(());
        }
        if let Some(secret) = &self.secret
            && secret.0.len() < MIN_KEY_LEN
        {
            return Err(self.short("the secret (FLASH_SECRET)", secret.0.len()));
        }
        Ok(())
    }

    fn secrets(&self) -> Result<Secrets> {
        let current = match &self.secret {
            Some(secret) if secret.0.len() >= MIN_KEY_LEN => secret.clone(),
            Some(secret) if self.dev => {
                tracing::warn!(
                    len = secret.0.len(),
                    "flash development mode: accepting a secret shorter than {MIN_KEY_LEN} bytes; \
                     never do this in production"
                );
                secret.clone()
            }
            Some(secret) => return Err(self.short("the secret (FLASH_SECRET)", secret.0.len())),
            None if self.dev => {
                tracing::warn!(
                    "flash development mode: no secret set, using a random one for this process; \
                     messages and ids signed now stop verifying at restart. Set {ENV_SECRET} in \
                     production"
                );
                Secret::ephemeral()?
            }
            None => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "no secret: the storage `{}` signs cookies with it. Set {ENV_SECRET} \
                         (or StorageConfig::secret) to at least {MIN_KEY_LEN} random bytes, e.g. \
                         `openssl rand -base64 48`; for development only, {ENV_DEV}=1 uses a \
                         random secret per process",
                        Redacted(self.url.trim())
                    ),
                ));
            }
        };
        if !self.dev
            && let Some(short) = self.fallbacks.iter().find(|s| s.0.len() < MIN_KEY_LEN)
        {
            return Err(self.short(
                &format!("a fallback secret ({ENV_SECRET_FALLBACKS})"),
                short.0.len(),
            ));
        }
        Ok(Secrets {
            current,
            fallbacks: self.fallbacks.clone(),
        })
    }

    /// Opens the storage: connects to its server (and, for SQL, creates or upgrades the table by
    /// running the store's migration unless [`migrate`](StorageConfig::migrate) or the URL's
    /// `migrate=false` turned that off), ready to hand to an adapter.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] as [`validate`](StorageConfig::validate) says, or for a bad driver
    /// URL; [`ErrorKind::Unavailable`] when the server cannot be reached; [`ErrorKind::Backend`]
    /// when the migration fails.
    pub async fn open(&self) -> Result<Arc<dyn Storage>> {
        let (url, secrets) = self.resolve()?;
        let previous = self.resolve_previous()?;
        let migrate = url.options.migrate.unwrap_or(self.migrate);
        let storage = crate::open::build(&url, secrets.as_ref(), migrate).await?;
        let Some((previous_url, previous_secrets)) = previous else {
            tracing::info!(storage = %self, "flash storage opened");
            return Ok(storage);
        };
        let shown = self.previous.as_deref().unwrap_or_default().trim();
        let storage = crate::open::with_previous(
            storage,
            (&url, secrets.as_ref()),
            (&previous_url, previous_secrets.as_ref()),
        )
        .await?;
        tracing::info!(
            storage = %self,
            previous = %Redacted(shown),
            "flash storage opened, switching from a previous storage"
        );
        Ok(storage)
    }
}

/// The URL with passwords hidden.
impl fmt::Display for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&Redacted(self.url.trim()), f)
    }
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &Redacted(self.url.trim()))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("fallback_secrets", &self.fallbacks.len())
            .field("dev", &self.dev)
            .field("migrate", &self.migrate)
            .field(
                "previous",
                &self.previous.as_deref().map(|p| Redacted(p.trim())),
            )
            .field(
                "previous_secret",
                &self.previous_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}
