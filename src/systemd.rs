//! The two bits of the systemd notify protocol the daemon needs: `READY=1` once it listens, and
//! `WATCHDOG=1` at half of `WATCHDOG_USEC`. Both are no-ops without `NOTIFY_SOCKET`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Sends `state` to the service manager. Returns `Ok(false)` when not running under systemd.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &address)?;
    } else {
        socket.send_to(state.as_bytes(), &path)?;
    }
    Ok(true)
}

/// The watchdog interval systemd asked for, halved, if it is meant for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Tells systemd the daemon is ready and keeps its watchdog fed until `cancel`.
pub fn announce_ready(cancel: CancellationToken, tracker: &TaskTracker) {
    match notify("READY=1") {
        Ok(true) => tracing::info!("notified systemd: READY=1"),
        Ok(false) => {}
        Err(error) => tracing::warn!(%error, "cannot notify systemd"),
    }
    let Some(every) = watchdog_interval() else {
        return;
    };
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = ticks.tick() => {
                    if let Err(error) = notify("WATCHDOG=1") {
                        tracing::warn!(%error, "cannot ping the systemd watchdog");
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_socket_named_by_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this is the only test touching NOTIFY_SOCKET, and it sets it before reading it.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1").unwrap());
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buffer = [0u8; 64];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1");
    }
}
