//! The three supervised programs: how each is started and how we know it is really ready.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::broadcast;

use super::child;
use super::probe;

/// Chromium lines that say nothing useful in a closed sandbox (no D-Bus, no GPU, no network).
const CHROMIUM_NOISE: &[&str] = &[
    "Failed to connect to the bus",
    "dbus",
    "Fontconfig",
    "viz_main_impl",
    "gpu_init",
    "gl_surface",
    "sandbox_linux",
    "google_apis",
    "DEPRECATED_ENDPOINT",
    "ERROR:net/",
    "bluez",
    "floss",
    "ssl_client_socket",
    "registration_request",
    "mcs_client",
    "on_device_model",
    "angle_platform_impl",
    "ui/gl",
    "components/variations",
];

#[derive(Debug, Clone)]
pub struct Xvfb {
    pub bin: String,
    pub display: u32,
}

#[derive(Debug, Clone)]
pub struct Chromium {
    pub bin: String,
    pub display: u32,
    pub port: u16,
    pub url: String,
    pub profile_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct Vite {
    pub app_dir: PathBuf,
    pub host: String,
    pub port: u16,
    /// A shell command replacing the default `node node_modules/vite/bin/vite.js …`.
    pub command: Option<String>,
}

#[derive(Debug, Clone)]
pub enum Service {
    Xvfb(Xvfb),
    Chromium(Chromium),
    Vite(Vite),
}

/// Why a component is not started right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preflight {
    /// Worth trying again later (with backoff).
    Retry(String),
    /// Will not fix itself; wait for an explicit restart.
    Permanent(String),
}

/// A command ready to spawn, plus the pipe Xvfb reports its display on.
pub struct Prepared {
    pub command: Command,
    /// Given to the child as fd 3; the daemon's copy is dropped right after the spawn.
    pub child_fd: Option<OwnedFd>,
    pub ready_fd: Option<OwnedFd>,
}

/// What a readiness check can look at.
pub struct ReadyInput {
    pub lines: broadcast::Receiver<Arc<str>>,
    pub ready_fd: Option<OwnedFd>,
}

impl Service {
    pub fn name(&self) -> &'static str {
        match self {
            Service::Xvfb(_) => "xvfb",
            Service::Chromium(_) => "chromium",
            Service::Vite(_) => "vite",
        }
    }

    pub fn noise(&self) -> &'static [&'static str] {
        match self {
            Service::Chromium(_) => CHROMIUM_NOISE,
            _ => &[],
        }
    }

    pub fn preflight(&self) -> Result<(), Preflight> {
        match self {
            Service::Xvfb(x) => match x_lock(x.display) {
                XLock::Held(pid) => Err(Preflight::Retry(format!(
                    "display :{} is held by another X server (pid {pid})",
                    x.display
                ))),
                XLock::Stale { pid, reused_by } => {
                    remove_stale_x_lock(x.display, pid, reused_by.as_deref());
                    Ok(())
                }
                XLock::Free => Ok(()),
            },
            Service::Chromium(c) => {
                if !probe::port_is_free("127.0.0.1", c.port) {
                    return Err(Preflight::Retry(format!(
                        "port {} is already in use by another process",
                        c.port
                    )));
                }
                std::fs::create_dir_all(&c.profile_dir)
                    .map_err(|e| Preflight::Retry(format!("cannot create the browser profile directory: {e}")))
            }
            Service::Vite(v) => {
                if v.command.is_none() && !v.app_dir.join("node_modules/vite/bin/vite.js").is_file() {
                    return Err(Preflight::Permanent(format!(
                        "node_modules is missing in {} (run `npm ci` there, then restart vite)",
                        v.app_dir.display()
                    )));
                }
                if !probe::port_is_free(probe_host(&v.host), v.port) {
                    return Err(Preflight::Retry(format!(
                        "port {} is already in use by another process",
                        v.port
                    )));
                }
                Ok(())
            }
        }
    }

    pub fn prepare(&self) -> std::io::Result<Prepared> {
        match self {
            Service::Xvfb(x) => {
                let (ready_fd, child_fd) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
                let mut command = child::command(&x.bin, &[]);
                command.args([
                    format!(":{}", x.display).as_str(),
                    "-screen",
                    "0",
                    "1280x800x24",
                    "-nolisten",
                    "tcp",
                ]);
                command.args(["-displayfd", "3"]);
                Ok(Prepared {
                    command,
                    child_fd: Some(child_fd),
                    ready_fd: Some(ready_fd),
                })
            }
            Service::Chromium(c) => {
                let mut command = child::command(&c.bin, &[("DISPLAY", format!(":{}", c.display))]);
                command
                    .arg("--no-sandbox")
                    .arg(format!("--remote-debugging-port={}", c.port))
                    .arg("--remote-debugging-address=127.0.0.1")
                    .arg(format!("--user-data-dir={}", c.profile_dir.display()))
                    .args([
                        "--no-first-run",
                        "--no-default-browser-check",
                        "--disable-background-networking",
                        "--disable-component-update",
                        "--disable-sync",
                        "--disable-default-apps",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        "--disable-quic",
                        "--disable-breakpad",
                        "--disable-crash-reporter",
                        "--password-store=basic",
                        "--window-position=0,0",
                        "--window-size=1280,800",
                        "--kiosk",
                    ])
                    .arg(&c.url);
                Ok(Prepared {
                    command,
                    child_fd: None,
                    ready_fd: None,
                })
            }
            Service::Vite(v) => {
                let extra = [
                    ("BROWSER", "none".to_owned()),
                    ("NO_COLOR", "1".to_owned()),
                    ("PORT", v.port.to_string()),
                ];
                let mut command = match &v.command {
                    Some(custom) => {
                        let mut command = child::command("/bin/sh", &extra);
                        command.arg("-c").arg(format!("exec {custom}"));
                        command
                    }
                    None => {
                        let mut command = child::command("node", &extra);
                        command.args(["node_modules/vite/bin/vite.js", "--host", &v.host, "--port"]);
                        command.arg(v.port.to_string()).arg("--strictPort");
                        command
                    }
                };
                command.current_dir(&v.app_dir);
                Ok(Prepared {
                    command,
                    child_fd: None,
                    ready_fd: None,
                })
            }
        }
    }

    /// Resolves once the component really serves; an error says why it never will.
    pub async fn wait_ready(&self, input: ReadyInput) -> Result<(), String> {
        match self {
            Service::Xvfb(x) => {
                let fd = input.ready_fd.ok_or("no display pipe")?;
                let display = tokio::task::spawn_blocking(move || read_display_number(fd))
                    .await
                    .map_err(|_| "display pipe reader failed".to_owned())??;
                if display == x.display {
                    Ok(())
                } else {
                    Err(format!("Xvfb reported display :{display}, expected :{}", x.display))
                }
            }
            Service::Chromium(c) => chromium_ready(c.port, input.lines).await,
            Service::Vite(v) => loop {
                if probe::http_get(probe_host(&v.host), v.port, "/", Duration::from_secs(2))
                    .await
                    .is_some()
                {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            },
        }
    }
}

/// Reads Xvfb's `-displayfd` report ("99" and "\n", possibly in two writes) up to the newline.
fn read_display_number(fd: OwnedFd) -> Result<u32, String> {
    use std::io::Read;
    let mut pipe = std::fs::File::from(fd);
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(b"\n") {
        match pipe.read(&mut byte) {
            Ok(1) => text.push(byte[0]),
            _ => return Err("Xvfb exited before reporting its display".to_owned()),
        }
        if text.len() > 16 {
            return Err("Xvfb wrote garbage to -displayfd".to_owned());
        }
    }
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .ok_or_else(|| "unreadable display number".to_owned())
}

/// Ready when this browser printed its DevTools endpoint and `/json/version` on the port names the same browser.
async fn chromium_ready(port: u16, mut lines: broadcast::Receiver<Arc<str>>) -> Result<(), String> {
    let prefix = format!("DevTools listening on ws://127.0.0.1:{port}/devtools/browser/");
    let browser_id = loop {
        match lines.recv().await {
            Ok(line) => {
                if let Some(id) = line.split_once(&prefix).map(|(_, id)| id.trim().to_owned()) {
                    break id;
                }
                if line.contains("bind() failed") {
                    return Err(format!("Chromium could not bind port {port}"));
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return Err("Chromium's output ended".to_owned()),
        }
    };
    loop {
        if let Some((200, body)) = probe::http_get("127.0.0.1", port, "/json/version", Duration::from_secs(2)).await {
            let version: serde_json::Value = serde_json::from_slice(&body).map_err(|_| "unreadable /json/version")?;
            let url = version["webSocketDebuggerUrl"].as_str().unwrap_or_default();
            return if url.ends_with(&format!("/devtools/browser/{browser_id}")) {
                Ok(())
            } else {
                Err(format!("port {port} is answered by another browser"))
            };
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Where to reach a server listening on `host`: loopback for the wildcard addresses, else the host itself.
fn probe_host(host: &str) -> &str {
    match host {
        "" | "0.0.0.0" | "::" | "[::]" => "127.0.0.1",
        other => other,
    }
}

/// What `/tmp/.X<n>-lock` says about display `n`.
#[derive(Debug, PartialEq, Eq)]
enum XLock {
    /// No lock file, or one without a pid in it.
    Free,
    /// The named process is alive and is an X server. A process we may not signal (EPERM: a root-owned X server
    /// seen from a daemon that is not root) is alive too; only ESRCH means dead.
    Held(i32),
    /// The named process is dead, or alive but not an X server: the lock outlived its server and the pid was
    /// reused, which is what a lock left in a persistent `/tmp` names after a reboot (boot-time pids repeat).
    Stale { pid: i32, reused_by: Option<String> },
}

fn x_lock_path(display: u32) -> String {
    format!("/tmp/.X{display}-lock")
}

fn x_lock(display: u32) -> XLock {
    let Ok(text) = std::fs::read_to_string(x_lock_path(display)) else {
        return XLock::Free;
    };
    let Some(pid) = text.trim().parse().ok().filter(|&pid: &i32| pid > 0) else {
        return XLock::Free;
    };
    let dead = XLock::Stale { pid, reused_by: None };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return dead,
    }
    // Anyone may read another process's `comm`; it is gone only if the process is.
    let Ok(name) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else {
        return dead;
    };
    let name = name.trim_end();
    if is_x_server(name) {
        XLock::Held(pid)
    } else {
        XLock::Stale {
            pid,
            reused_by: Some(name.to_owned()),
        }
    }
}

/// Removes a stale lock, so that X clients and the next check see the display free. Xvfb started with
/// `-displayfd` neither needs this nor writes a lock of its own; a lock owned by another user (in the sticky
/// `/tmp`) stays, which is harmless.
fn remove_stale_x_lock(display: u32, pid: i32, reused_by: Option<&str>) {
    let removed = std::fs::remove_file(x_lock_path(display));
    // Renamed: inside tracing's macros, `display` names tracing's own `display` function.
    let number = display;
    tracing::info!(
        display = number,
        pid,
        reused_by,
        removed = removed.is_ok(),
        "stale X lock: its X server is gone"
    );
}

/// X servers are named X-something: Xvfb, Xorg, X, Xwayland, Xvnc, Xtigervnc, Xephyr, Xnest.
fn is_x_server(name: &str) -> bool {
    name.starts_with('X')
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn display_number_is_read_across_two_writes() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let writer = std::thread::spawn(move || {
            let mut file = std::fs::File::from(write);
            file.write_all(b"99").unwrap();
            std::thread::sleep(Duration::from_millis(20));
            file.write_all(b"\n").unwrap();
        });
        assert_eq!(read_display_number(read), Ok(99));
        writer.join().unwrap();
    }

    #[test]
    fn a_closed_pipe_is_an_error_not_a_hang() {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        drop(write);
        assert!(read_display_number(read).is_err());
    }

    /// Writes `/tmp/.X<n>-lock` for an unused display naming `pid` (X's format: `%10d\n`); removed on drop.
    struct PlantedXLock(u32);

    impl PlantedXLock {
        fn naming(pid: u32) -> PlantedXLock {
            let display = (0..1_000)
                .map(|i| 40_000 + std::process::id() % 10_000 + i)
                .find(|n| !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists())
                .unwrap();
            let path = format!("/tmp/.X{display}-lock");
            std::fs::write(&path, format!("{pid:>10}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o444)).unwrap();
            PlantedXLock(display)
        }
    }

    impl Drop for PlantedXLock {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.0));
        }
    }

    /// A live process whose name is `name` (a copy of `sleep`); killed on drop.
    struct Named {
        child: std::process::Child,
        /// Holds the program; removed after the child is gone.
        _program_dir: tempfile::TempDir,
    }

    impl Named {
        fn start(name: &str) -> Named {
            let dir = tempfile::tempdir().unwrap();
            let program = dir.path().join(name);
            std::fs::copy("/bin/sleep", &program).unwrap();
            let child = std::process::Command::new(&program).arg("60").spawn().unwrap();
            // `comm` is set by exec: wait until the child has become the copy.
            let comm = format!("/proc/{}/comm", child.id());
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::fs::read_to_string(&comm).unwrap_or_default().trim_end() != name {
                assert!(std::time::Instant::now() < deadline, "{name} did not start");
                std::thread::sleep(Duration::from_millis(1));
            }
            Named {
                child,
                _program_dir: dir,
            }
        }

        fn pid(&self) -> u32 {
            self.child.id()
        }
    }

    impl Drop for Named {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[test]
    fn an_x_lock_of_a_live_x_server_is_held_and_of_a_dead_one_is_not() {
        let server = Named::start("Xvfb");
        let live = PlantedXLock::naming(server.pid());
        assert_eq!(x_lock(live.0), XLock::Held(server.pid() as i32));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = PlantedXLock::naming(dead);
        assert_eq!(
            x_lock(stale.0),
            XLock::Stale {
                pid: dead as i32,
                reused_by: None
            }
        );
        assert_eq!(x_lock(stale.0 + 100_000), XLock::Free, "no lock file");
    }

    #[test]
    fn an_x_lock_naming_a_reused_pid_of_another_program_is_stale() {
        let other = Named::start("sshd");
        let reused = PlantedXLock::naming(other.pid());
        assert_eq!(
            x_lock(reused.0),
            XLock::Stale {
                pid: other.pid() as i32,
                reused_by: Some("sshd".to_owned())
            }
        );
        for name in ["Xvfb", "Xorg", "X", "Xwayland", "Xtigervnc"] {
            assert!(is_x_server(name), "{name}");
        }
        for name in ["sleep", "systemd", "xterm", "node", ""] {
            assert!(!is_x_server(name), "{name:?}");
        }
    }

    /// An X server owned by another user answers `kill(pid, 0)` with EPERM: it is alive and holds its display.
    /// Seen from an unprivileged copy of this test (run as `nobody`) against a lock naming a root process.
    #[test]
    fn an_x_lock_of_a_process_we_may_not_signal_is_held() {
        use std::os::unix::process::CommandExt;
        if let Ok(display) = std::env::var("ACP_BRIDGE_TEST_X_LOCK_DISPLAY") {
            let holder: i32 = std::env::var("ACP_BRIDGE_TEST_X_LOCK_PID").unwrap().parse().unwrap();
            let probe = nix::sys::signal::kill(nix::unistd::Pid::from_raw(holder), None);
            assert_eq!(probe, Err(nix::errno::Errno::EPERM), "the setup gives EPERM");
            assert_eq!(x_lock(display.parse().unwrap()), XLock::Held(holder));
            return;
        }
        assert!(
            nix::unistd::geteuid().is_root(),
            "run as root: the check needs an X server owned by another user"
        );
        let server = Named::start("Xvfb");
        let me = server.pid();
        let lock = PlantedXLock::naming(me);
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "supervisor::services::tests::an_x_lock_of_a_process_we_may_not_signal_is_held",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env("ACP_BRIDGE_TEST_X_LOCK_DISPLAY", lock.0.to_string())
            .env("ACP_BRIDGE_TEST_X_LOCK_PID", me.to_string())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "as nobody: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(text.contains("1 passed"), "the unprivileged run ran the check: {text}");
    }

    #[test]
    fn vite_without_node_modules_fails_permanently() {
        let dir = tempfile::tempdir().unwrap();
        let vite = Service::Vite(Vite {
            app_dir: dir.path().into(),
            host: "127.0.0.1".into(),
            port: 1,
            command: None,
        });
        assert!(matches!(vite.preflight(), Err(Preflight::Permanent(reason)) if reason.contains("node_modules")));
    }
}
