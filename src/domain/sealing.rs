//! Secrets at rest (DESIGN.md §8): signing secrets and sensitive target
//! values are sealed with AES-256-GCM under the service's key before they
//! reach the store, and opened only when a request needs them.

use crate::domain::error::Reason;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Values sealed before issue 22 start so: bound to no row.
const SEALED_PREFIX: &str = "enc:v1:";
/// Sealed values bound to their row start so (DESIGN.md §8): the tenant,
/// table, row and column are the AES-GCM associated data, so a value
/// moved to another row, or another tenant's, does not open there.
const BOUND_PREFIX: &str = "enc:v2:";
const NONCE_LEN: usize = 12;

/// The row a sealed value lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row<'a> {
    pub tenant: &'a str,
    pub table: &'a str,
    pub id: &'a str,
}

impl Row<'_> {
    /// The associated data of `column` in this row: its parts, each
    /// preceded by its length, so that no two places read alike.
    fn place(&self, column: &str) -> Vec<u8> {
        let mut aad = b"cronhook".to_vec();
        for part in [self.tenant, self.table, self.id, column] {
            aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// The service's key: 32 bytes, given as base64 (`CRONHOOK_ENCRYPTION_KEY`,
/// or the key file).
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    fingerprint: String,
    /// Callback tokens' key, derived from this one (§11.7).
    callback: crate::domain::callback::CallbackKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        write!(f, "SealingKey({})", self.fingerprint)
    }
}

impl SealingKey {
    /// A new random key, as base64 (what `cronhook keygen` prints).
    pub fn generate_base64() -> String {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    pub fn from_base64(text: &str) -> Result<Self, Reason> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "is not base64; make a key with `cronhook keygen`".to_string())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "must be 32 bytes (44 base64 characters), got {} bytes; make a key with `cronhook keygen`",
                bytes.len()
            )
        })?;
        let digest = Sha256::new()
            .chain_update(b"cronhook key fingerprint\0")
            .chain_update(key)
            .finalize();
        let fingerprint = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self {
            cipher: Aes256Gcm::new(&key.into()),
            fingerprint,
            callback: crate::domain::callback::CallbackKey::derive(&key),
        })
    }

    /// Names the key without revealing it: the store keeps it, so that an
    /// instance with another key refuses to start.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The key of callback tokens (§11.7): every instance with this key
    /// mints and checks the same ones.
    pub fn callback_key(&self) -> &crate::domain::callback::CallbackKey {
        &self.callback
    }

    /// `plaintext` sealed for `column` of `row`, with a fresh random
    /// nonce.
    pub fn seal_in(&self, row: Row<'_>, column: &str, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = row.place(column);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals any message under 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{BOUND_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// The plaintext of a value sealed for `column` of `row` with this
    /// key; a value sealed before issue 22 (bound to no row) opens
    /// anywhere, until the start re-seals it.
    pub fn open_in(&self, row: Row<'_>, column: &str, sealed: &str) -> Result<String, Reason> {
        let (aad, b64) = match sealed.strip_prefix(BOUND_PREFIX) {
            Some(b64) => (row.place(column), b64),
            None => (
                Vec::new(),
                sealed
                    .strip_prefix(SEALED_PREFIX)
                    .ok_or("not a sealed value")?,
            ),
        };
        let bytes = STANDARD
            .decode(b64)
            .ok()
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or("not a sealed value")?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| "not a sealed value")?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| "cannot be opened with this key in this place")?;
        String::from_utf8(plain).map_err(|_| "is not text once opened".into())
    }

    /// A value sealed the way values were before issue 22, bound to no
    /// row: what the start re-seals (and tests make).
    pub fn seal_unbound(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(&Nonce::from(nonce), plaintext.as_bytes())
            .expect("AES-GCM seals any message under 64 GiB");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes))
    }
}

/// Whether a stored value is sealed, bound or not (values stored before
/// sealing are not).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX) || text.starts_with(BOUND_PREFIX)
}

/// Whether a stored value is sealed and bound to its row.
pub fn is_bound(text: &str) -> bool {
    text.starts_with(BOUND_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()
    }

    const JOB: Row<'static> = Row {
        tenant: "a",
        table: "jobs",
        id: "j1",
    };

    #[test]
    fn seals_and_opens_without_showing_the_plaintext() {
        let k = key();
        let sealed = k.seal_in(JOB, "secret", "whsec_secret");
        assert!(is_sealed(&sealed) && is_bound(&sealed));
        assert!(!sealed.contains("whsec_secret"));
        assert_ne!(
            sealed,
            k.seal_in(JOB, "secret", "whsec_secret"),
            "a fresh nonce each time"
        );
        assert_eq!(k.open_in(JOB, "secret", &sealed).unwrap(), "whsec_secret");
    }

    #[test]
    fn a_value_moved_to_another_row_column_or_tenant_does_not_open() {
        let k = key();
        let sealed = k.seal_in(JOB, "secret", "whsec_secret");
        for (row, column) in [
            (Row { id: "j2", ..JOB }, "secret"),
            (Row { tenant: "b", ..JOB }, "secret"),
            (
                Row {
                    table: "subscriptions",
                    ..JOB
                },
                "secret",
            ),
            (JOB, "target_secrets"),
        ] {
            let refused = k.open_in(row, column, &sealed).unwrap_err();
            assert!(refused.contains("in this place"), "{refused}");
        }
        // Parts do not run into each other: ("ab", "c") is not ("a", "bc").
        let ab = Row {
            tenant: "ab",
            table: "c",
            id: "x",
        };
        let a = Row {
            tenant: "a",
            table: "bc",
            id: "x",
        };
        assert!(k.open_in(a, "s", &k.seal_in(ab, "s", "v")).is_err());
    }

    #[test]
    fn a_value_sealed_before_rows_were_bound_still_opens() {
        let old = key().seal_unbound("whsec_old");
        assert!(is_sealed(&old) && !is_bound(&old));
        assert_eq!(key().open_in(JOB, "secret", &old).unwrap(), "whsec_old");
    }

    #[test]
    fn another_key_or_a_tampered_value_does_not_open() {
        let sealed = key().seal_in(JOB, "secret", "x");
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        assert_ne!(other.fingerprint(), key().fingerprint());
        assert!(other.open_in(JOB, "secret", &sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 3..sealed.len() - 2, "A");
        assert!(key().open_in(JOB, "secret", &tampered).is_err() || tampered == sealed);
        assert!(key().open_in(JOB, "secret", "whsec_plain").is_err());
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(
            SealingKey::from_base64("short")
                .unwrap_err()
                .contains("base64")
        );
        assert!(
            SealingKey::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
        let k = SealingKey::generate_base64();
        assert_eq!(k.len(), 44);
        assert!(SealingKey::from_base64(&k).is_ok());
        assert_eq!(key().fingerprint().len(), 16);
        assert!(!format!("{:?}", key()).contains("MDEy"));
    }
}
