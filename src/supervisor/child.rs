//! Spawning and stopping one child: own process group, parent-death signal, explicit environment,
//! output into a [`LogRing`]; stopped with SIGTERM to the group, a grace period, then SIGKILL.

use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use super::logs::LogRing;

/// Variables every child may see, taken from the daemon's own environment when set.
const BASE_ENV: [&str; 5] = ["PATH", "HOME", "USER", "LANG", "TZ"];

/// Marks every child with the daemon's pid, so that leftovers can be found (`/proc/*/environ`).
pub const OWNER_ENV: &str = "ACP_BRIDGE_PID";

pub struct Running {
    pub child: Child,
    pub pid: u32,
}

/// A command with a cleared environment holding only [`BASE_ENV`], the owner mark and `extra`.
pub fn command(program: &str, extra: &[(&str, String)]) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    for key in BASE_ENV {
        if let Some(value) = std::env::var_os(key) {
            command.env(key, value);
        }
    }
    command.env(OWNER_ENV, std::process::id().to_string());
    for (key, value) in extra {
        command.env(key, value);
    }
    command
}

/// What the child's stdin and stdout are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio3 {
    /// stdin is /dev/null; stdout and stderr go into the log ring.
    Logs,
    /// stdin and stdout are pipes the caller takes (a protocol); stderr goes into the log ring.
    Protocol,
}

/// Starts `command` in a new process group that dies with the daemon, pumping its output into `logs`.
/// `inherit_fd` is made the child's fd 3 (Xvfb's `-displayfd 3`).
pub fn spawn(command: Command, logs: &Arc<LogRing>, inherit_fd: Option<&OwnedFd>) -> std::io::Result<Running> {
    spawn_with(command, logs, inherit_fd, Stdio3::Logs)
}

pub fn spawn_with(
    mut command: Command,
    logs: &Arc<LogRing>,
    inherit_fd: Option<&OwnedFd>,
    stdio: Stdio3,
) -> std::io::Result<Running> {
    let fd3 = inherit_fd.map(|fd| fd.as_raw_fd());
    let parent = Pid::from_raw(std::process::id() as i32);
    let stdin = if stdio == Stdio3::Protocol {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    command
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: only async-signal-safe calls (prctl, getppid, dup2, fcntl) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
            // The daemon may have died between fork and prctl: then nobody would reap us.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::other("parent exited"));
            }
            if let Some(fd) = fd3 {
                if fd == 3 {
                    let flags = nix::libc::fcntl(3, nix::libc::F_GETFD);
                    nix::libc::fcntl(3, nix::libc::F_SETFD, flags & !nix::libc::FD_CLOEXEC);
                } else if nix::libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = command.spawn()?;
    let pid = child.id().unwrap_or(0);
    if stdio == Stdio3::Logs {
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(logs.clone().pump(stdout));
        }
    }
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(logs.clone().pump(stderr));
    }
    Ok(Running { child, pid })
}

impl Running {
    /// SIGTERM to the whole group, up to `grace` for the child to exit, then SIGKILL to the group.
    /// Whatever is left of the group afterwards is killed too.
    pub async fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        let group = Pid::from_raw(self.pid as i32);
        let status = match self.child.try_wait() {
            Ok(Some(status)) => Some(status),
            _ => {
                let _ = killpg(group, Signal::SIGTERM);
                match tokio::time::timeout(grace, self.child.wait()).await {
                    Ok(status) => status.ok(),
                    Err(_) => {
                        let _ = killpg(group, Signal::SIGKILL);
                        self.child.wait().await.ok()
                    }
                }
            }
        };
        let _ = killpg(group, Signal::SIGKILL);
        status
    }
}

/// Kills what is left of a group whose leader already exited.
pub fn kill_group(pid: u32) {
    if pid > 0 {
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
}
