//! The facade's storage URL parser on arbitrary input: never a panic, and never a password
//! shown by `Display`, `Debug` or the error of a refused URL.
//!
//! The first byte picks the mode: 0 mod 3, the rest is the URL as is (the parser, the option
//! reader and the redactor on anything); 1, a URL of a known scheme with the password
//! `SeCrEt…` (bytes of the input, `/`, `@`, `:` and `,` included) in its user info, followed
//! by the rest of the input; 2, the same password as the value of a secret-named query option.
//! In modes 1 and 2 the password must never appear unless the rest of the input holds it.
#![no_main]

use flash::{StorageConfig, storage::redact_url};
use libfuzzer_sys::fuzz_target;

const SIGNING: &str = "the fuzz target's signing secret, 32 bytes or more";
const MARK: &str = "SeCrEt";

const SCHEMES: &[&str] = &[
    "redis",
    "rediss",
    "redis+unix",
    "unix",
    "redis+cluster",
    "rediss+cluster",
    "postgres",
    "postgresql",
    "mysql",
    "mariadb",
    "sqlite",
    "memory",
    "cookie",
    "session",
    "cookie+redis",
    "cookie+redis+cluster",
    "cookie+postgres",
    "cookie+mysql",
    "cookie+sqlite",
    "cookie+memory",
];

const SECRET_OPTIONS: &[&str] = &[
    "pass",
    "password",
    "token",
    "auth",
    "api_key",
    "sslpassword",
];

/// Password characters: anything a careless operator types, `?`, `#` and whitespace included
/// (the facade and the redactor read the user info up to the last `@`).
const PASSWORD_CHARS: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/@:,%+=-_.!$&'()*;~?# \t";

/// Everything the configuration shows of `url`; `validate` must not panic.
fn shown(url: &str) -> String {
    let config = StorageConfig::new(url).secret(SIGNING);
    let display = config.to_string();
    assert_eq!(display, redact_url(url.trim()));
    let mut shown = format!("{display}\n{config:?}");
    if let Err(err) = config.validate() {
        shown.push_str(&format!("\n{err}\n{err:?}"));
    }
    // The parser lowercases the scheme it names in errors: compare without case.
    let signing = SIGNING.to_ascii_lowercase();
    assert!(
        url.to_ascii_lowercase().contains(&signing)
            || !shown.to_ascii_lowercase().contains(&signing),
        "the signing secret is shown: {shown}"
    );
    shown
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 3 == 0 {
        let url = String::from_utf8_lossy(rest);
        shown(&url);
        // The redactor's output is a URL too.
        shown(&redact_url(&url));
        return;
    }
    let Some((&pick, rest)) = rest.split_first() else {
        return;
    };
    let Some((&len, rest)) = rest.split_first() else {
        return;
    };
    let len = usize::from(len % 16).min(rest.len());
    let (password_bytes, rest) = rest.split_at(len);
    let mut password = MARK.to_owned();
    password.extend(
        password_bytes
            .iter()
            .map(|b| char::from(PASSWORD_CHARS[usize::from(*b) % PASSWORD_CHARS.len()])),
    );
    let rest = String::from_utf8_lossy(rest);
    if rest.contains(MARK) {
        return;
    }
    let scheme = SCHEMES[usize::from(pick) % SCHEMES.len()];
    let url = if mode % 3 == 1 {
        let user = ["", "app", "root"][usize::from(pick / 32) % 3];
        format!("{scheme}://{user}:{password}@{rest}")
    } else {
        let option = SECRET_OPTIONS[usize::from(pick / 32) % SECRET_OPTIONS.len()];
        let password = password.replace('&', "%26");
        format!("{scheme}://host/db?{option}={password}&{rest}")
    };
    let shown = shown(&url);
    assert!(
        !shown.contains(&password),
        "{url:?} shows its password {password:?}: {shown}"
    );
});
