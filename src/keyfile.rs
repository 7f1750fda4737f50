//! Where the sealing key comes from (DESIGN.md §8): `CRONHOOK_ENCRYPTION_KEY`,
//! else a file `cronhook.key` beside the SQLite database (in the working
//! directory for PostgreSQL), made with mode 0600 at the first start.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::domain::sealing::SealingKey;
use crate::store::key_file_for;

/// The key for `database_url`: `given` (the variable) when set, else the
/// key file's, made when missing. An in-memory database gets a key of its
/// own that lives as long as it does.
pub fn load(given: Option<&str>, database_url: &str) -> anyhow::Result<SealingKey> {
    crate::store::check_url(database_url)?;
    if let Some(text) = given {
        return SealingKey::from_base64(text)
            .map_err(|e| anyhow::anyhow!("CRONHOOK_ENCRYPTION_KEY {e}"));
    }
    if database_url.contains(":memory:") || database_url.contains("mode=memory") {
        return Ok(SealingKey::from_base64(&SealingKey::generate_base64())
            .expect("a generated key reads back"));
    }
    let path = key_file_for(database_url);
    match read(&path) {
        Err(e)
            if e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                == Some(std::io::ErrorKind::NotFound) =>
        {
            create(&path)
        }
        read => read,
    }
}

fn read(path: &Path) -> anyhow::Result<SealingKey> {
    let text = std::fs::read_to_string(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", mode & 0o777),
                "the key file can be read by others than its owner: chmod 600 it"
            );
        }
    }
    SealingKey::from_base64(&text)
        .map_err(|e| anyhow::anyhow!("the key file {} {e}", path.display()))
}

/// Makes a new key file, readable by its owner only. Should another
/// process make it first, that one's key is used.
fn create(path: &Path) -> anyhow::Result<SealingKey> {
    let text = SealingKey::generate_base64();
    match crate::store::create_private(path) {
        Ok(mut file) => {
            file.write_all(format!("{text}\n").as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the key file {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "made a new encryption key for secrets at rest; keep it with the database (and back it up): without it the stored secrets cannot be read"
            );
            SealingKey::from_base64(&text).map_err(anyhow::Error::msg)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => Err(e).with_context(|| format!("making the key file {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_made_once_beside_the_database_and_kept_private() {
        let dir = std::env::temp_dir().join(format!("cronhook-key-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("jobs.db").display());
        let first = load(None, &url).unwrap();
        let again = load(None, &url).unwrap();
        assert_eq!(first.fingerprint(), again.fingerprint());
        let path = dir.join("cronhook.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let given = SealingKey::generate_base64();
        let from_env = load(Some(&given), &url).unwrap();
        assert_ne!(from_env.fingerprint(), first.fingerprint());
        assert!(
            load(Some("nope"), &url)
                .unwrap_err()
                .to_string()
                .contains("CRONHOOK_ENCRYPTION_KEY")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
