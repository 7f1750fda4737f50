//! `?limit=` and `?cursor=`: the same rules for every list.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::error::ApiError;
use crate::domain::error::FieldError;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

pub fn limit(raw: Option<&str>) -> Result<u32, ApiError> {
    match raw {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldError::new(
                "limit",
                format!("must be an integer from 1 to {MAX_LIMIT}, got {text:?}"),
            )
            .into()),
        },
    }
}

/// Cursors are opaque to clients: the position, base64url-encoded.
pub fn encode_cursor(position: &str) -> String {
    URL_SAFE_NO_PAD.encode(position)
}

pub fn decode_cursor(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(raw) = raw else { return Ok(None) };
    URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| FieldError::new("cursor", "is not a cursor this service returned").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), 50);
        assert_eq!(limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "x"] {
            assert!(limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip() {
        let c = encode_cursor("job:1");
        assert_eq!(decode_cursor(Some(&c)).unwrap().as_deref(), Some("job:1"));
        assert!(decode_cursor(Some("!!")).is_err());
    }
}
