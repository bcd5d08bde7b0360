//! `gridx-tui worker --token-file PATH`: the worker token read from a file, so that it
//! appears neither on the command line (which `ps` shows every user) nor in the
//! process's environment. A service manager can also pass it as `GRIDX_WORKER_TOKEN`
//! from an `EnvironmentFile=` (contrib/systemd/gridx-worker.service).

use color_eyre::eyre::{Result, WrapErr, bail};
use std::io::Read;
use std::path::Path;

/// A token is 256 characters at most (the coordinator refuses longer ones unread);
/// the rest is room for a comment-free file's whitespace. Anything bigger is not a
/// token file, and is not read whole.
pub const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// Reads the token in `path`: the file's text with surrounding whitespace (a trailing
/// newline from `echo` or an editor) trimmed. Refused: a file group or others may read
/// (the token is as good as the worker's identity and its earnings), a file larger
/// than [`MAX_TOKEN_FILE_BYTES`], one that is not UTF-8, and one that holds no token
/// or more than one word.
pub fn read_token_file(path: &Path) -> Result<String> {
    let file =
        std::fs::File::open(path).wrap_err_with(|| format!("--token-file {}", path.display()))?;
    let meta = file
        .metadata()
        .wrap_err_with(|| format!("--token-file {}", path.display()))?;
    if !meta.is_file() {
        bail!("--token-file {}: not a regular file", path.display());
    }
    refuse_loose_mode(path, &meta)?;
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .wrap_err_with(|| format!("--token-file {}", path.display()))?;
    if bytes.len() as u64 > MAX_TOKEN_FILE_BYTES {
        bail!(
            "--token-file {}: larger than {MAX_TOKEN_FILE_BYTES} bytes; it should hold only the worker token (gxw_...)",
            path.display()
        );
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| color_eyre::eyre::eyre!("--token-file {}: not UTF-8 text", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "--token-file {}: empty; put the worker token from `gridx-server worker add` in it",
            path.display()
        );
    }
    if token.split_whitespace().nth(1).is_some() {
        bail!(
            "--token-file {}: holds more than one word; it should hold only the worker token (gxw_...)",
            path.display()
        );
    }
    Ok(token.to_owned())
}

#[cfg(unix)]
fn refuse_loose_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "--token-file {}: mode {mode:o} lets group or others read the worker token; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_loose_mode(_path: &Path, _meta: &std::fs::Metadata) -> Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn token_file(dir: &tempfile::TempDir, content: &[u8], mode: u32) -> std::path::PathBuf {
        let path = dir.path().join("token");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn an_owner_only_file_gives_its_token_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let path = token_file(&dir, b"  gxw_abc123\n", 0o600);
        assert_eq!(read_token_file(&path).unwrap(), "gxw_abc123");
        let path = token_file(&dir, b"gxw_abc123", 0o400);
        assert_eq!(read_token_file(&path).unwrap(), "gxw_abc123");
    }

    #[test]
    fn a_file_others_may_read_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = token_file(&dir, b"gxw_abc123\n", mode);
            let err = format!("{:#}", read_token_file(&path).unwrap_err());
            assert!(err.contains(&format!("mode {mode:o}")), "{err}");
            assert!(err.contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn what_is_not_one_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let too_big = vec![b'a'; MAX_TOKEN_FILE_BYTES as usize + 1];
        for (content, says) in [
            (&b" \n\t"[..], "empty"),
            (
                &b"GRIDX_WORKER_TOKEN=gxw_a gxw_b\n"[..],
                "more than one word",
            ),
            (&too_big[..], "larger than 4096 bytes"),
            (&b"\xff\xfe"[..], "not UTF-8"),
        ] {
            let path = token_file(&dir, content, 0o600);
            let err = format!("{:#}", read_token_file(&path).unwrap_err());
            assert!(err.contains(says), "{says}: {err}");
        }
        let err = format!(
            "{:#}",
            read_token_file(&dir.path().join("absent")).unwrap_err()
        );
        assert!(err.contains("--token-file"), "{err}");
        let err = format!("{:#}", read_token_file(dir.path()).unwrap_err());
        assert!(err.contains("not a regular file"), "{err}");
    }
}
