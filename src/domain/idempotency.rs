//! `Idempotency-Key` on the operations that create something (a job, a
//! manual run): the same key within 24 hours answers with what the first
//! request made and creates nothing new; the same key with a different
//! request is refused.

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::domain::error::FieldError;

/// How long a key is remembered.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The header, as errors name it.
pub const HEADER: &str = "Idempotency-Key";

/// A client's key: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        if text.is_empty() || text.len() > MAX_KEY_LEN {
            return Err(FieldError::new(
                HEADER,
                format!("must be 1 to {MAX_KEY_LEN} characters, got {}", text.len()),
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FieldError::new(
                HEADER,
                "must be visible ASCII characters without spaces",
            ));
        }
        Ok(Self(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What identifies a request for a key: its operation, path and body (the
/// body in a canonical form, so that whitespace and key order do not count).
pub fn fingerprint(operation: &str, path: &str, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [operation.as_bytes(), path.as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// A repeat is answered only if it asks for the same as the first.
pub fn check_repeat(recorded: &str, request: &str) -> Result<(), FieldError> {
    if recorded == request {
        Ok(())
    } else {
        Err(FieldError::new(
            HEADER,
            "was already used with a different request within the last 24 hours; use a new key",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(IdempotencyKey::parse("order-42:retry_1").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", "has space", "tab\there", "é"] {
            let e = IdempotencyKey::parse(bad).unwrap_err();
            assert_eq!(e.field, "Idempotency-Key", "{bad}");
        }
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let a = fingerprint("create_job", "/v1/jobs", b"{\"a\":1}");
        assert_eq!(a, fingerprint("create_job", "/v1/jobs", b"{\"a\":1}"));
        assert_ne!(a, fingerprint("create_job", "/v1/jobs", b"{\"a\":2}"));
        assert_ne!(a, fingerprint("run_job", "/v1/jobs", b"{\"a\":1}"));
        // Parts are length-prefixed: moving a byte across parts changes it.
        assert_ne!(fingerprint("ab", "c", b""), fingerprint("a", "bc", b""));
        assert_eq!(a.len(), 64);
        assert!(check_repeat(&a, &a).is_ok());
        assert!(check_repeat(&a, "other").is_err());
    }
}
