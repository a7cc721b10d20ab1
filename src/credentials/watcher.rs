//! Follows the credentials file on disk and turns changes into events (see [`CredentialsStore::observe`]).

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::store::CredentialsStore;
use crate::fswatch;

/// The CLI's in-place rewrite is a burst of MODIFY, CLOSE_WRITE and ATTRIB within a millisecond or two.
const QUIET: Duration = Duration::from_millis(3);
const MAX_DELAY: Duration = Duration::from_millis(100);

/// Records the current state, then watches the file until `cancel`.
pub async fn spawn(
    store: CredentialsStore,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), notify::Error> {
    store.observe(false).await;
    let mut changes = fswatch::watch_file(store.file().to_path_buf(), cancel.clone(), tracker)?;
    tracker.spawn(async move {
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                settled = fswatch::next_settled(&mut changes, QUIET, MAX_DELAY) => {
                    if !settled {
                        break;
                    }
                    store.observe(true).await;
                }
            }
        }
    });
    Ok(())
}
