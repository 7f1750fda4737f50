//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256>` over
//! `id.timestamp.body`, keyed with the job's `whsec_` secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use rand::Rng;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

/// A signing secret the client chose (a job's `secret`, or
/// `--signing-secret-default`): `whsec_` and 24 to 64 bytes in base64, as
/// Standard Webhooks asks of a key. Its `Debug` never shows it, so a
/// logged request or spec cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct ChosenSecret(String);

impl ChosenSecret {
    /// Why `text` is not a usable secret, as a field error's message.
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(key) = text.strip_prefix(PREFIX) else {
            return Err("must start with whsec_ (Standard Webhooks' form)".into());
        };
        let bytes = STANDARD
            .decode(key)
            .map_err(|_| "must be whsec_ followed by standard base64".to_string())?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(format!(
                "must hold 24 to 64 bytes of key, it holds {}",
                bytes.len()
            ));
        }
        Ok(ChosenSecret(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ChosenSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChosenSecret(whsec_…)")
    }
}

/// The signature of one request under one secret: `v1,<base64>`.
/// `None` when the secret is not `whsec_<base64>`.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = STANDARD
        .decode(secret.strip_prefix(PREFIX).unwrap_or(secret))
        .ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The `webhook-signature` header: one signature per secret, separated by
/// spaces (the current one first), so that a receiver holding either the
/// new or the old secret accepts the request during a rotation.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The secrets a request is signed with at `now` (DESIGN §4): the
/// current one, and the one before a rotation while its grace lasts, so
/// that receivers can switch over.
pub fn secrets_at(
    current: String,
    previous: Option<(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut secrets = vec![current];
    if let Some((previous, until)) = previous
        && until > now
    {
        secrets.push(previous);
    }
    secrets
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends() {
        let t = |s: &str| crate::domain::instant::parse(s).unwrap();
        let old = Some(("whsec_old".to_string(), t("2026-11-24T10:00:00Z")));
        assert_eq!(
            secrets_at(
                "whsec_new".into(),
                old.clone(),
                t("2026-11-24T09:59:59.999999Z")
            ),
            ["whsec_new", "whsec_old"]
        );
        assert_eq!(
            secrets_at("whsec_new".into(), old, t("2026-11-24T10:00:00Z")),
            ["whsec_new"]
        );
        assert_eq!(
            secrets_at("whsec_new".into(), None, t("2026-11-24T10:00:00Z")),
            ["whsec_new"]
        );
    }

    use super::*;

    // The example of the Standard Webhooks specification.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn matches_the_specification_example() {
        assert_eq!(
            sign(SECRET, ID, TIMESTAMP, BODY).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn lists_both_signatures_during_rotation() {
        let other = generate_secret();
        let header = signature_header(&[SECRET, &other], ID, TIMESTAMP, BODY);
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign(SECRET, ID, TIMESTAMP, BODY).unwrap());
        assert_eq!(parts[1], sign(&other, ID, TIMESTAMP, BODY).unwrap());
    }

    #[test]
    fn a_chosen_secret_is_whsec_and_24_to_64_bytes_and_never_debug_printed() {
        let chosen = ChosenSecret::parse(SECRET).unwrap();
        assert_eq!(chosen.as_str(), SECRET);
        assert!(!format!("{chosen:?}").contains("MfKQ"));
        assert!(ChosenSecret::parse(&generate_secret()).is_ok());
        let short = format!("whsec_{}", STANDARD.encode([7u8; 23]));
        assert_eq!(
            ChosenSecret::parse(&short).unwrap_err(),
            "must hold 24 to 64 bytes of key, it holds 23"
        );
        let long = format!("whsec_{}", STANDARD.encode([7u8; 65]));
        assert!(ChosenSecret::parse(&long).is_err());
        assert!(
            ChosenSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap_err()
                .contains("whsec_")
        );
        assert!(
            ChosenSecret::parse("whsec_not base64!")
                .unwrap_err()
                .contains("base64")
        );
    }

    #[test]
    fn generated_secrets_are_distinct_and_well_formed() {
        let a = generate_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&a[6..]).unwrap().len(), 32);
        assert_ne!(a, generate_secret());
        assert_eq!(sign("whsec_not base64!", ID, TIMESTAMP, BODY), None);
    }
}
