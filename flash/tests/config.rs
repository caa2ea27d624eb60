//! `StorageConfig`: secrets, development mode, the environment, features and redaction.

use flash::{ErrorKind, StorageConfig};

const SECRET: &str = "a test secret that is long enough, 0123456789";

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    move |name| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

fn config_error(config: &StorageConfig) -> String {
    match config.validate() {
        Ok(()) => panic!("{config:?} validated"),
        Err(err) => {
            assert_eq!(err.kind(), ErrorKind::Config, "{err}");
            err.to_string()
        }
    }
}

/// Every URL form, with the feature that compiles it (`None`: always there).
const URLS: &[(&str, Option<&str>)] = &[
    ("memory", None),
    ("cookie+memory", Some("cookie")),
    ("cookie", Some("cookie")),
    ("cookie?format=django", Some("django")),
    ("session", Some("session")),
    ("cookie+session", Some("session")),
    ("redis://127.0.0.1:6379", Some("redis")),
    ("cookie+redis://127.0.0.1:6379", Some("redis")),
    (
        "redis+cluster://127.0.0.1:7001,127.0.0.1:7002",
        Some("redis-cluster"),
    ),
    ("postgres://postgres@127.0.0.1/test", Some("postgres")),
    ("mysql://root@127.0.0.1/test", Some("mysql")),
    ("sqlite://flash.db", Some("sqlite")),
    ("cookie+sqlite://flash.db", Some("sqlite")),
];

fn compiled(feature: &str) -> bool {
    match feature {
        "cookie" => cfg!(feature = "cookie"),
        "django" => cfg!(feature = "django"),
        "session" => cfg!(feature = "session"),
        "redis" => cfg!(feature = "redis"),
        "redis-cluster" => cfg!(feature = "redis-cluster"),
        "postgres" => cfg!(feature = "postgres"),
        "mysql" => cfg!(feature = "mysql"),
        "sqlite" => cfg!(feature = "sqlite"),
        other => panic!("unknown feature {other}"),
    }
}

#[test]
fn a_backend_not_compiled_in_names_its_feature() {
    for (url, feature) in URLS {
        let config = StorageConfig::new(*url).secret(SECRET);
        let mut missing: Vec<&str> = Vec::new();
        if url.starts_with("cookie") && !compiled("cookie") && *feature != Some("django") {
            missing.push("cookie");
        }
        if let Some(feature) = feature
            && !compiled(feature)
            && !missing.contains(feature)
        {
            missing.push(feature);
        }
        if missing.is_empty() {
            if let Err(err) = config.validate() {
                panic!("{url}: {err}");
            }
            continue;
        }
        let err = config_error(&config);
        for feature in &missing {
            assert!(err.contains(&format!("`{feature}`")), "{url}: {err}");
        }
        let list = missing
            .iter()
            .map(|f| format!("\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        assert!(
            err.contains(&format!("features = [{list}]")),
            "{url}: {err}"
        );
        assert!(err.contains("needs the"), "{url}: {err}");
    }
}

#[test]
fn a_missing_secret_is_refused_outside_dev_mode() {
    for url in ["memory", "cookie+memory"] {
        if url.starts_with("cookie") && !compiled("cookie") {
            continue;
        }
        let err = config_error(&StorageConfig::new(url));
        assert!(err.contains("no secret"), "{err}");
        assert!(
            err.contains("FLASH_SECRET") && err.contains("FLASH_DEV=1"),
            "{err}"
        );
        StorageConfig::new(url)
            .dev_mode(true)
            .validate()
            .expect("dev mode");
    }
}

#[test]
fn a_short_secret_is_refused_outside_dev_mode() {
    let short = "x".repeat(31);
    let err = config_error(&StorageConfig::new("memory").secret(short.as_str()));
    assert!(
        err.contains("31 bytes") && err.contains("at least 32"),
        "{err}"
    );
    StorageConfig::new("memory")
        .secret("x".repeat(32))
        .validate()
        .expect("32 bytes is enough");
    StorageConfig::new("memory")
        .secret("dev")
        .dev_mode(true)
        .validate()
        .expect("dev mode accepts a short secret");

    // Fallback secrets are held to the same rule.
    let err = config_error(
        &StorageConfig::new("memory")
            .secret(SECRET)
            .fallback_secret("old"),
    );
    assert!(err.contains("fallback secret"), "{err}");
}

#[cfg(feature = "session")]
#[test]
fn session_alone_needs_no_secret_but_a_short_one_is_still_a_mistake() {
    StorageConfig::new("session")
        .validate()
        .expect("session signs nothing");
    let err = config_error(&StorageConfig::new("session").secret("short"));
    assert!(err.contains("5 bytes"), "{err}");
    if compiled("cookie") {
        let err = config_error(&StorageConfig::new("cookie+session"));
        assert!(err.contains("no secret"), "{err}");
    }
}

#[test]
fn from_the_environment() {
    let config = StorageConfig::from_vars(vars(&[])).expect("defaults");
    assert_eq!(config.to_string(), "cookie");
    assert!(!config.is_dev());

    let config = StorageConfig::from_vars(vars(&[
        ("FLASH_STORAGE", "memory?ttl=1h"),
        ("FLASH_SECRET", SECRET),
        (
            "FLASH_SECRET_FALLBACKS",
            " old secret one that is long enough , ,old secret two that is long enough too",
        ),
    ]))
    .expect("config");
    assert_eq!(config.to_string(), "memory?ttl=1h");
    let shown = format!("{config:?}");
    assert!(shown.contains("fallback_secrets: 2"), "{shown}");
    config.validate().expect("valid");

    for (value, dev) in [("1", true), ("true", true), ("0", false), ("", false)] {
        let config = StorageConfig::from_vars(vars(&[("FLASH_DEV", value)])).expect("dev");
        assert_eq!(config.is_dev(), dev, "{value}");
    }
    let err = StorageConfig::from_vars(vars(&[("FLASH_DEV", "maybe")])).expect_err("not a bool");
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("FLASH_DEV"), "{err}");

    // An empty FLASH_STORAGE is the default; an empty FLASH_SECRET is no secret.
    let config = StorageConfig::from_vars(vars(&[("FLASH_STORAGE", " "), ("FLASH_SECRET", "")]))
        .expect("config");
    assert_eq!(config.to_string(), "cookie");
    if compiled("cookie") {
        assert!(config_error(&config).contains("no secret"));
    }
}

#[test]
fn debug_and_display_hide_secrets_and_passwords() {
    let config =
        StorageConfig::new("cookie+postgres://app:hunter2@db:5432/app?table=t&password=pw2")
            .secret("the current secret, long enough 0123456789")
            .fallback_secret("the old secret, also long enough 0123456789");
    let shown = format!("{config:?} / {config} / {config:#?}");
    for leaked in ["hunter2", "pw2", "current secret", "old secret"] {
        assert!(!shown.contains(leaked), "{leaked} in {shown}");
    }
    assert!(shown.contains("postgres://app:***@db:5432/app"), "{shown}");

    // Nor do the errors.
    let err = StorageConfig::new("redis://:hunter2@cache?colour=red&table=x")
        .secret(SECRET)
        .validate()
        .expect_err("table does not apply to redis");
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn bad_urls_are_config_errors() {
    for url in [
        "",
        "mongodb://h",
        "cookie+cookie",
        "memory?table=x",
        "cookie?max_size=big",
    ] {
        let err = config_error(&StorageConfig::new(url).secret(SECRET));
        assert!(!err.is_empty());
    }
}
