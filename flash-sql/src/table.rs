//! The validated table name and the identifiers derived from it.

use flash_core::{Error, ErrorKind, Result};

/// The longest accepted table name, in bytes: the index names derived from it
/// (`<table>_client`, `<table>_expires`) must stay within PostgreSQL's 63-byte identifiers.
pub const MAX_TABLE_NAME_LEN: usize = 48;

/// The default table name.
pub(crate) const DEFAULT_TABLE: &str = "flash_messages";

/// A plain SQL identifier: an ASCII letter or `_`, then ASCII letters, digits or `_`, at most
/// [`MAX_TABLE_NAME_LEN`] bytes. Nothing that needs quoting, so it is the same name on every
/// server (it is quoted anyway).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName(String);

impl TableName {
    pub(crate) fn new(name: &str) -> Result<Self> {
        let mut chars = name.chars();
        let plain = match chars.next() {
            Some(first) if first.is_ascii_alphabetic() || first == '_' => {
                chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            }
            _ => false,
        };
        if !plain || name.len() > MAX_TABLE_NAME_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "invalid table name {name:?}: use a plain identifier (an ASCII letter or `_`, \
                     then letters, digits or `_`, at most {MAX_TABLE_NAME_LEN} bytes)"
                ),
            ));
        }
        Ok(TableName(name.to_owned()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_identifiers_pass() {
        for name in [
            "flash_messages",
            "_t",
            "T1",
            "a",
            &"x".repeat(MAX_TABLE_NAME_LEN),
        ] {
            assert_eq!(
                TableName::new(name).map(|t| t.0).ok().as_deref(),
                Some(name)
            );
        }
    }

    #[test]
    fn anything_else_is_a_config_error() {
        let long = "x".repeat(MAX_TABLE_NAME_LEN + 1);
        for name in [
            "",
            "1abc",
            "flash-messages",
            "flash messages",
            "public.flash",
            "flash\"; DROP TABLE users; --",
            "`flash`",
            "flash'",
            "é",
            "flash\0",
            &long,
        ] {
            let err = TableName::new(name).expect_err(name);
            assert_eq!(err.kind(), ErrorKind::Config, "{name:?}");
        }
    }
}
