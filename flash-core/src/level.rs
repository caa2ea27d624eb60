//! Message levels and the level → tag mapping.

use std::collections::BTreeMap;
use std::fmt;

/// The importance of a message: an integer, ordered, with Django's five named levels.
///
/// Any other integer is a custom level; it sorts between the named ones and has the empty tag
/// unless a [`LevelTags`] names it.
///
/// ```
/// use flash_core::Level;
/// assert!(Level::WARNING > Level::SUCCESS);
/// assert_eq!(Level::new(29).value(), 29);
/// assert_eq!("warning".parse::<Level>().unwrap(), Level::WARNING);
/// assert_eq!("35".parse::<Level>().unwrap(), Level::new(35));
/// ```
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Level(i32);

impl Level {
    /// Development detail, below the default minimum level (10).
    pub const DEBUG: Level = Level(10);
    /// Information for the user (20), the default minimum level.
    pub const INFO: Level = Level(20);
    /// An action succeeded (25).
    pub const SUCCESS: Level = Level(25);
    /// Not an error yet, but worth attention (30).
    pub const WARNING: Level = Level(30);
    /// An action failed (40).
    pub const ERROR: Level = Level(40);

    /// A level from its integer value; any integer is allowed.
    pub const fn new(value: i32) -> Self {
        Level(value)
    }

    /// The integer value.
    pub const fn value(self) -> i32 {
        self.0
    }

    /// The default tag of a named level (`"info"` for [`Level::INFO`]), `None` for a custom level.
    pub const fn default_tag(self) -> Option<&'static str> {
        match self.0 {
            10 => Some("debug"),
            20 => Some("info"),
            25 => Some("success"),
            30 => Some("warning"),
            40 => Some("error"),
            _ => None,
        }
    }
}

impl From<i32> for Level {
    fn from(value: i32) -> Self {
        Level(value)
    }
}

impl fmt::Debug for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.default_tag() {
            Some(tag) => write!(f, "Level::{}", tag.to_ascii_uppercase()),
            None => write!(f, "Level({})", self.0),
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The error of parsing a [`Level`] from text that is neither a level name nor an integer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a message level: {0:?} (expected debug, info, success, warning, error or an integer)")]
pub struct ParseLevelError(String);

impl std::str::FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Ok(match s.to_ascii_lowercase().as_str() {
            "debug" => Level::DEBUG,
            "info" => Level::INFO,
            "success" => Level::SUCCESS,
            "warning" => Level::WARNING,
            "error" => Level::ERROR,
            _ => Level(s.parse().map_err(|_| ParseLevelError(s.to_owned()))?),
        })
    }
}

/// The mapping from level to tag (`Level::ERROR` → `"error"`), Django's `MESSAGE_TAGS`.
///
/// Starts from the five defaults; [`LevelTags::set`] overrides or adds a tag (an empty tag blanks a
/// level). A level with no tag has the empty tag.
///
/// ```
/// use flash_core::{Level, LevelTags};
/// let tags = LevelTags::default()
///     .set(Level::ERROR, "danger")
///     .set(Level::DEBUG, "")
///     .set(Level::new(29), "custom");
/// assert_eq!(tags.tag(Level::ERROR), "danger");
/// assert_eq!(tags.tag(Level::DEBUG), "");
/// assert_eq!(tags.tag(Level::new(29)), "custom");
/// assert_eq!(tags.tag(Level::INFO), "info");
/// assert_eq!(tags.tag(Level::new(1)), "");
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct LevelTags {
    // None = the built-in defaults only: the common case costs no allocation and no lookup.
    overrides: Option<BTreeMap<Level, String>>,
}

impl LevelTags {
    /// Sets the tag of `level`, overriding a default or adding a custom level.
    #[must_use]
    pub fn set(mut self, level: Level, tag: impl Into<String>) -> Self {
        self.overrides
            .get_or_insert_with(BTreeMap::new)
            .insert(level, tag.into());
        self
    }

    /// The tag of `level`: an override, else the default, else `""`.
    pub fn tag(&self, level: Level) -> &str {
        if let Some(tag) = self.overrides.as_ref().and_then(|o| o.get(&level)) {
            return tag;
        }
        level.default_tag().unwrap_or("")
    }
}

impl fmt::Debug for LevelTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for level in [
            Level::DEBUG,
            Level::INFO,
            Level::SUCCESS,
            Level::WARNING,
            Level::ERROR,
        ] {
            map.entry(&level.0, &self.tag(level));
        }
        if let Some(o) = &self.overrides {
            for (level, tag) in o.iter().filter(|(l, _)| l.default_tag().is_none()) {
                map.entry(&level.0, tag);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("ERROR".parse::<Level>(), Ok(Level::ERROR));
        assert_eq!(" 29 ".parse::<Level>(), Ok(Level::new(29)));
        assert!("loud".parse::<Level>().is_err());
        assert!("".parse::<Level>().is_err());
        let mut levels = vec![Level::ERROR, Level::new(29), Level::DEBUG, Level::SUCCESS];
        levels.sort();
        assert_eq!(
            levels,
            [Level::DEBUG, Level::SUCCESS, Level::new(29), Level::ERROR]
        );
        assert_eq!(format!("{:?}", Level::WARNING), "Level::WARNING");
        assert_eq!(format!("{:?}", Level::new(29)), "Level(29)");
    }
}
