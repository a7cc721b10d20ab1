//! Who may call the API: a bearer token from `--token`, or from `--token-file`, which may appear or
//! change while the daemon runs. No token yet means "not provisioned": protected endpoints fail closed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::AuthConfig;
use crate::fswatch;
use crate::secret::Secret;

const MAX_TOKEN_BYTES: u64 = 4096;

#[derive(Clone)]
pub struct Auth {
    mode: Arc<Mode>,
}

enum Mode {
    Disabled,
    Fixed(Secret),
    File { path: PathBuf, current: RwLock<TokenState> },
}

#[derive(Debug, Clone, PartialEq)]
enum TokenState {
    Missing,
    /// The file exists but is not acceptable (e.g. readable by other users).
    Refused(&'static str),
    Ready(Secret),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Unauthorized,
    NotProvisioned,
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Self {
        let mode = match config {
            AuthConfig::Disabled => Mode::Disabled,
            AuthConfig::Token(secret) => Mode::Fixed(secret.clone()),
            AuthConfig::TokenFile(path) => Mode::File {
                path: path.clone(),
                current: RwLock::new(TokenState::Missing),
            },
        };
        Self { mode: Arc::new(mode) }
    }

    /// Checks an `Authorization` header value.
    pub fn verify(&self, authorization: Option<&[u8]>) -> Verdict {
        let check = |secret: &Secret| {
            let presented = authorization.and_then(bearer_token).unwrap_or_default();
            if secret.ct_eq(presented) {
                Verdict::Allowed
            } else {
                Verdict::Unauthorized
            }
        };
        match &*self.mode {
            Mode::Disabled => Verdict::Allowed,
            Mode::Fixed(secret) => check(secret),
            Mode::File { current, .. } => match &*current.read().unwrap_or_else(|e| e.into_inner()) {
                TokenState::Ready(secret) => check(secret),
                TokenState::Missing | TokenState::Refused(_) => Verdict::NotProvisioned,
            },
        }
    }

    /// `"disabled"`, `"token"` or `"token-file"`.
    pub fn mode_name(&self) -> &'static str {
        match &*self.mode {
            Mode::Disabled => "disabled",
            Mode::Fixed(_) => "token",
            Mode::File { .. } => "token-file",
        }
    }

    pub fn provisioned(&self) -> bool {
        match &*self.mode {
            Mode::Disabled | Mode::Fixed(_) => true,
            Mode::File { current, .. } => {
                matches!(*current.read().unwrap_or_else(|e| e.into_inner()), TokenState::Ready(_))
            }
        }
    }

    pub fn token_file(&self) -> Option<&Path> {
        match &*self.mode {
            Mode::File { path, .. } => Some(path),
            _ => None,
        }
    }

    /// With `--token-file`, loads the file now and follows it until `cancel`.
    pub async fn spawn_token_watch(
        &self,
        cancel: CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<(), notify::Error> {
        let Some(path) = self.token_file().map(Path::to_path_buf) else {
            return Ok(());
        };
        self.reload().await;
        let mut changes = fswatch::watch_file(path, cancel.clone(), tracker)?;
        let auth = self.clone();
        tracker.spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    settled = fswatch::next_settled(&mut changes, Duration::from_millis(10), Duration::from_millis(100)) => {
                        if !settled {
                            break;
                        }
                        auth.reload().await;
                    }
                }
            }
        });
        Ok(())
    }

    async fn reload(&self) {
        let Mode::File { path, current } = &*self.mode else {
            return;
        };
        let file = path.clone();
        let next = tokio::task::spawn_blocking(move || load_token_file(&file))
            .await
            .unwrap_or(TokenState::Missing);
        let mut current = current.write().unwrap_or_else(|e| e.into_inner());
        if *current == next {
            return;
        }
        match (&*current, &next) {
            (_, TokenState::Ready(_)) if matches!(*current, TokenState::Ready(_)) => {
                tracing::info!(path = %path.display(), "bearer token changed")
            }
            (_, TokenState::Ready(_)) => {
                tracing::info!(path = %path.display(), "bearer token provisioned")
            }
            (_, TokenState::Missing) => {
                tracing::warn!(path = %path.display(), "token file missing or empty; protected endpoints answer 503")
            }
            (_, TokenState::Refused(reason)) => {
                tracing::error!(path = %path.display(), reason, "token file refused; protected endpoints answer 503")
            }
        }
        *current = next;
    }
}

fn load_token_file(path: &Path) -> TokenState {
    let Ok(meta) = fs::metadata(path) else {
        return TokenState::Missing;
    };
    if !meta.is_file() {
        return TokenState::Refused("not a regular file");
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return TokenState::Refused("readable or writable by other users (chmod 600 it)");
    }
    if meta.len() > MAX_TOKEN_BYTES {
        return TokenState::Refused("larger than 4096 bytes");
    }
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => TokenState::Ready(Secret::new(text.trim())),
        Ok(_) => TokenState::Missing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => TokenState::Missing,
        Err(_) => TokenState::Refused("unreadable"),
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(header: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = header.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer_token(b"Bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer abc "), Some(&b"abc"[..]));
        assert_eq!(bearer_token(b"Basic abc"), None);
        assert_eq!(bearer_token(b"Bear"), None);
    }

    #[test]
    fn fixed_token_verdicts() {
        let auth = Auth::new(&AuthConfig::Token(Secret::new("s3cret")));
        assert_eq!(auth.verify(Some(b"Bearer s3cret")), Verdict::Allowed);
        assert_eq!(auth.verify(Some(b"Bearer s3cres")), Verdict::Unauthorized);
        assert_eq!(auth.verify(None), Verdict::Unauthorized);
        let open = Auth::new(&AuthConfig::Disabled);
        assert_eq!(open.verify(None), Verdict::Allowed);
    }

    #[test]
    fn token_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        fs::write(&path, "tok\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_token_file(&path), TokenState::Refused(_)));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load_token_file(&path), TokenState::Ready(Secret::new("tok")));
        fs::write(&path, "  \n").unwrap();
        assert_eq!(load_token_file(&path), TokenState::Missing);
    }
}
