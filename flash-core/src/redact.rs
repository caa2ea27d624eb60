//! The one redactor of every crate: a storage URL with its secrets hidden.

use std::fmt;

const HIDDEN: &str = "***";

/// `url` with every secret replaced by `***`, for logs, `Debug` and error messages.
///
/// The one redactor of the flash crates: the facade, every backend and the demo show URLs
/// through it. It hides the password of `user:password@`, a lone `secret@` (Redis reads it as
/// the password), the user info up to the **last** `@` of the URL (so a password holding an
/// unencoded `/`, `?`, `#` or `@` is hidden whole: the facade reads the user info the same
/// way), and the value of every query option whose name speaks of a secret (`password`,
/// `pass`, `pwd`, `secret`, `token`, `auth`, `key`, …). A user info that is not a plain
/// `user:` is hidden whole. An `@` in a query value must be written `%40`.
///
/// ```
/// use flash_core::storage::redact_url;
/// assert_eq!(redact_url("redis://:hunter2@cache:6379/0"), "redis://:***@cache:6379/0");
/// assert_eq!(redact_url("postgres://app:p/ss@db/flash"), "postgres://app:***@db/flash");
/// assert_eq!(
///     redact_url("redis+unix:///run/r.sock?db=1&pass=hunter2"),
///     "redis+unix:///run/r.sock?db=1&pass=***",
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    Redacted(url).to_string()
}

/// A URL shown with its secrets hidden (see [`redact_url`]), without allocating.
///
/// ```
/// use flash_core::storage::Redacted;
/// assert_eq!(format!("{}", Redacted("redis://hunter2@cache")), "redis://***@cache");
/// ```
#[derive(Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.0;
        let Some((scheme, rest)) = url.split_once("://") else {
            // `sqlite:flash.db?…`, `cookie?…`: no authority, only a query to look at.
            return match url.split_once('?') {
                Some((body, query)) => {
                    write!(f, "{body}?")?;
                    write_query(f, query)
                }
                None => f.write_str(url),
            };
        };
        write!(f, "{scheme}://")?;
        // The user info runs to the last `@` of the whole URL, as flash's URL reader takes it:
        // a password may hold any character (`?`, `#`, `/` and `@` included), and whatever
        // reading a driver would make of it, the password lies before that `@`.
        let after = match split_userinfo(rest) {
            Some((userinfo, after)) => {
                match userinfo.split_once(':') {
                    Some((user, _)) if is_plain_name(user) => write!(f, "{user}:{HIDDEN}")?,
                    None if names_users(scheme) && is_plain_name(userinfo) => {
                        f.write_str(userinfo)?
                    }
                    _ => f.write_str(HIDDEN)?,
                }
                f.write_str("@")?;
                after
            }
            None => rest,
        };
        match after.split_once('?') {
            Some((host, query)) => {
                write!(f, "{host}?")?;
                write_query(f, query)
            }
            None => f.write_str(after),
        }
    }
}

/// `rest` (what follows `scheme://`) cut at its last `@`: the user info, and the host, path and
/// query after it (the facade's URL reader cuts at the same place).
fn split_userinfo(rest: &str) -> Option<(&str, &str)> {
    rest.rsplit_once('@')
}

/// The query's options, each whose name speaks of a secret with its value hidden.
fn write_query(f: &mut fmt::Formatter<'_>, query: &str) -> fmt::Result {
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            f.write_str("&")?;
        }
        match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => write!(f, "{name}={HIDDEN}")?,
            _ => f.write_str(pair)?,
        }
    }
    Ok(())
}

/// A user name that can be shown: nothing in it that could begin a password, a path or a
/// query (so a user info that is not `user:password` is hidden whole).
fn is_plain_name(name: &str) -> bool {
    !name.contains(['/', '?', '#', '&', '=', '@', ':']) && !name.chars().any(char::is_whitespace)
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Schemes whose lone userinfo (`name@host`) is a user name, not a password.
fn names_users(scheme: &str) -> bool {
    let scheme = scheme.rsplit('+').next().unwrap_or(scheme);
    ["postgres", "postgresql", "mysql", "mariadb"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "auth",
        "key",
        "credential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn every_url_form_is_redacted() {
        let table = [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "redis://user:hunter2@cache:6379",
                "redis://user:***@cache:6379",
            ),
            ("redis://:hunter2@cache:6379", "redis://:***@cache:6379"),
            ("redis://hunter2@cache:6379", "redis://***@cache:6379"),
            ("rediss://u:p@a:1/2?x=1", "rediss://u:***@a:1/2?x=1"),
            ("redis://u:pa/ss@cache:6379/1", "redis://u:***@cache:6379/1"),
            ("redis://u:p@ss@cache:6379", "redis://u:***@cache:6379"),
            ("redis://u:p@/ss@cache:6379", "redis://u:***@cache:6379"),
            // An unencoded `?` or `#` in the password does not start the query.
            (
                "redis://:S3cr3t?Pw@x@127.0.0.1:6390",
                "redis://:***@127.0.0.1:6390",
            ),
            ("redis://u:p#w?d=1@h/0?db=1", "redis://u:***@h/0?db=1"),
            ("redis://S3?cr3t@h", "redis://***@h"),
            ("postgres://a?b:pw@h/db", "postgres://***@h/db"),
            (
                "redis+unix:///run/r.sock?pass=hunter2",
                "redis+unix:///run/r.sock?pass=***",
            ),
            (
                "redis+unix:///run/r.sock?db=2&password=x&user=u",
                "redis+unix:///run/r.sock?db=2&password=***&user=u",
            ),
            ("unix:///run/r.sock?PASS=x", "unix:///run/r.sock?PASS=***"),
            ("postgres://app@db/flash", "postgres://app@db/flash"),
            (
                "postgres://app:s3cret@db:5432/flash?sslmode=require",
                "postgres://app:***@db:5432/flash?sslmode=require",
            ),
            (
                "postgres:///flash?host=/run/postgresql&password=x",
                "postgres:///flash?host=/run/postgresql&password=***",
            ),
            (
                "postgresql://app:a/b@%2Frun%2Fpg/flash",
                "postgresql://app:***@%2Frun%2Fpg/flash",
            ),
            (
                "mysql://root:@127.0.0.1:3306/test",
                "mysql://root:***@127.0.0.1:3306/test",
            ),
            ("mysql://root@127.0.0.1/test", "mysql://root@127.0.0.1/test"),
            ("sqlite://flash.db?mode=rwc", "sqlite://flash.db?mode=rwc"),
            ("sqlite:flash.db", "sqlite:flash.db"),
            ("cookie?format=django", "cookie?format=django"),
            (
                "cookie+redis://:pw@cache?ttl=1h",
                "cookie+redis://:***@cache?ttl=1h",
            ),
            (
                "cookie+postgres://u:pw@db/x?token=abc&ttl=1h",
                "cookie+postgres://u:***@db/x?token=***&ttl=1h",
            ),
            (
                "redis+cluster://:pw@a:7001,b:7002",
                "redis+cluster://:***@a:7001,b:7002",
            ),
            ("redis://a:7001?secret", "redis://a:7001?secret"),
            (
                "redis://a?api_key=k&sslpassword=p",
                "redis://a?api_key=***&sslpassword=***",
            ),
        ];
        for (url, shown) in table {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn no_secret_survives() {
        for url in [
            "redis://:hunter2@h",
            "redis://hunter2@h",
            "redis://u:hun/ter2@h/0",
            "redis://u:hun@ter2@h/0",
            "redis+unix:///s?pass=hunter2",
            "postgres://u:hunter2@h/db?password=hunter2",
            "mysql://u:hunter2@h",
            "cookie+redis+cluster://:hunter2@h:1,h:2",
            "redis://:hun?ter2@x@h:1",
            "redis://u:hun#ter2@h",
            "redis://hun?ter2@h",
            "postgres://u:hun ter2@h",
        ] {
            assert!(
                !redact_url(url).contains("hunter2"),
                "{url} -> {}",
                redact_url(url)
            );
            assert!(
                !redact_url(url).contains("ter2"),
                "{url} -> {}",
                redact_url(url)
            );
        }
    }
}
