//! Secrets at rest (DESIGN.md §8): signing secrets and sensitive target
//! values are sealed with AES-256-GCM under the service's key before they
//! reach the store, and opened only when a request needs them.

use crate::domain::error::Reason;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Sealed values start so: the scheme and its version.
const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// The service's key: 32 bytes, given as base64 (`CRONHOOK_ENCRYPTION_KEY`,
/// or the key file).
#[derive(Clone)]
pub struct SealingKey {
    cipher: Aes256Gcm,
    fingerprint: String,
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
        })
    }

    /// Names the key without revealing it: the store keeps it, so that an
    /// instance with another key refuses to start.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// `plaintext` sealed, with a fresh random nonce.
    pub fn seal(&self, plaintext: &str) -> String {
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

    /// The plaintext of a value [`seal`](Self::seal) made with this key.
    pub fn open(&self, sealed: &str) -> Result<String, Reason> {
        let bytes = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or("not a sealed value")?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| "not a sealed value")?;
        let plain = self
            .cipher
            .decrypt(&Nonce::from(nonce), ciphertext)
            .map_err(|_| "cannot be opened with this key")?;
        String::from_utf8(plain).map_err(|_| "is not text once opened".into())
    }
}

/// Whether a stored value is sealed (values stored before sealing are not).
pub fn is_sealed(text: &str) -> bool {
    text.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SealingKey {
        SealingKey::from_base64("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").unwrap()
    }

    #[test]
    fn seals_and_opens_without_showing_the_plaintext() {
        let k = key();
        let sealed = k.seal("whsec_secret");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("whsec_secret"));
        assert_ne!(sealed, k.seal("whsec_secret"), "a fresh nonce each time");
        assert_eq!(k.open(&sealed).unwrap(), "whsec_secret");
    }

    #[test]
    fn another_key_or_a_tampered_value_does_not_open() {
        let sealed = key().seal("x");
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).unwrap();
        assert_ne!(other.fingerprint(), key().fingerprint());
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 3..sealed.len() - 2, "A");
        assert!(key().open(&tampered).is_err() || tampered == sealed);
        assert!(key().open("whsec_plain").is_err());
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
