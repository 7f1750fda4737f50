//! A rule's refusal of one value of the input: which field is wrong, and
//! why. (A refusal of a whole command is `lifecycle::Refusal`.)

use std::fmt;

/// A rejected value: `field` is a dotted path into the request
/// (`trigger.expr`), `message` says why in words a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// Why one value is refused, in words a client can act on: what a rule
/// that reads a single value answers (an id, an instant, a cron
/// expression, a zone, a key), before its caller names the field it came
/// from (`FieldError::new(field, reason)`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reason(String);

impl Reason {
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Reason {}

impl From<String> for Reason {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for Reason {
    fn from(message: &str) -> Self {
        Self(message.to_string())
    }
}

impl From<Reason> for String {
    fn from(reason: Reason) -> Self {
        reason.0
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

/// A reason reads as its words (tests and messages look into them).
impl std::ops::Deref for Reason {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}
