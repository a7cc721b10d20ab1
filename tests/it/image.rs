//! The sandbox image's pieces, tested for real without a Docker engine: the systemd unit (`systemd-analyze verify`
//! on a root laid out by `image/provision.sh`), the provisioning script's layout step run into a temporary root,
//! the env file against the daemon's real flags, and a "template ready" run: the daemon started with the unit's
//! env file (adjusted to free ports, a free display and temporary paths), real Xvfb, Chromium and Vite on a copy of
//! the app skeleton, `image/ready.sh` succeeding against it, then the token provisioned the way the control plane
//! does it and a screenshot of the app.
//!
//! Needs `systemd-analyze` (Debian package `systemd`), `curl`, and what `tests/it/supervisor.rs` needs.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helper::{Auth, BROWSER, Daemon, Options, TOKEN, app_copy, free_display, free_port, mode_of, wait_for};

/// The owner `provision.sh --owner` gets in the temporary root (no `user` exists on a CI machine).
const OWNER: u32 = 4242;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn show(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The image's env file as systemd reads it: the variables it sets and the ones it only shows commented out.
struct EnvFile {
    set: Vec<(String, String)>,
    commented: Vec<String>,
}

impl EnvFile {
    fn get(&self, key: &str) -> &str {
        self.set
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{key} is not set in the env file"))
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// systemd `EnvironmentFile=` syntax, the subset the image's file may use: `KEY=value` or `KEY="value"`, comment
/// lines starting with `#`, no variable references, escapes or line continuations.
fn parse_env_file(text: &str) -> EnvFile {
    let mut set: Vec<(String, String)> = Vec::new();
    let mut commented = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if let Some((key, _)) = comment.trim_start().split_once('=') {
                if key.starts_with("ACP_BRIDGE_") && is_env_name(key) {
                    commented.push(key.to_owned());
                }
            }
            continue;
        }
        let (key, raw) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not KEY=value: {line}", n + 1));
        assert!(is_env_name(key), "line {}: bad variable name {key:?}", n + 1);
        let value = match raw.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => inner,
            None => raw,
        };
        assert!(
            !value.contains(['$', '\\', '`', '"', '\'']),
            "line {}: {key}: keep values plain (no $, \\, quotes inside): {raw}",
            n + 1
        );
        assert!(!set.iter().any(|(k, _)| k == key), "line {}: {key} is set twice", n + 1);
        set.push((key.to_owned(), value.to_owned()));
    }
    EnvFile { set, commented }
}

fn env_example() -> EnvFile {
    parse_env_file(&read(repo().join("systemd/env.example")))
}

/// Every `ACP_BRIDGE_*` variable `acp-bridge serve` reads, from its `--help` (`[env: NAME=]`).
fn daemon_env_names() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_acp-bridge"))
        .env_clear()
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    let help = String::from_utf8(output.stdout).unwrap();
    let mut names = BTreeSet::new();
    for (at, _) in help.match_indices("env:") {
        let name: String = help[at + 4..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.starts_with("ACP_BRIDGE_") {
            names.insert(name);
        }
    }
    assert!(names.len() >= 20, "too few variables found in --help:\n{help}");
    names
}

/// `KEY=value` lines of the unit (all sections), in order.
fn unit_directives() -> Vec<(String, String)> {
    read(repo().join("systemd/acp-bridge.service"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

fn directive(directives: &[(String, String)], key: &str) -> String {
    directives
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// A systemd time span in whole seconds, as the unit writes them (`50s`).
fn seconds(span: &str) -> u64 {
    span.strip_suffix('s')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("write time spans in the unit as `<n>s`: {span}"))
}

/// Runs `image/provision.sh` with these arguments (as root, no network: the callers pass `--layout-only`).
fn provision(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(repo().join("image/provision.sh"))
        .args(args)
        .output()
        .expect("run image/provision.sh")
}

/// The layout step into `root`, with the test binary and a numeric owner.
fn lay_out(root: &Path) {
    let owner = format!("{OWNER}:{OWNER}");
    let output = provision(&[
        "--root",
        root.to_str().unwrap(),
        "--layout-only",
        "--owner",
        &owner,
        "--binary",
        env!("CARGO_BIN_EXE_acp-bridge"),
    ]);
    assert!(
        output.status.success(),
        "provision.sh --layout-only failed: {}",
        show(&output)
    );
}

fn systemd_analyze() -> Command {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install the Debian package `systemd` (apt-get install systemd)"
    );
    Command::new("systemd-analyze")
}

/// The machine's own unit directory (targets such as multi-user.target), which `verify --root` needs in the root.
fn system_unit_dir() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("multi-user.target").is_file())
        .expect("no systemd unit directory with multi-user.target (install the Debian package `systemd`)")
}

fn verify(root: &Path, unit: &str) -> Output {
    systemd_analyze()
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .output()
        .unwrap()
}

/// `systemd-analyze verify` checks the unit's syntax, its dependencies and that `ExecStart=`'s binary exists. That
/// binary is `/usr/local/bin/acp-bridge`, which a CI machine does not have, so the unit is verified inside a
/// temporary root laid out by `provision.sh --layout-only` (binary and unit where the image has them), with a copy
/// of the machine's own unit directory for the targets it depends on. Warnings (an unknown value is "ignoring",
/// exit 0) fail the test too: the output must be empty.
#[test]
fn the_unit_passes_systemd_analyze_verify_in_a_laid_out_root() {
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    lay_out(root.path());
    std::fs::create_dir_all(root.path().join("usr/lib/systemd")).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(system_unit_dir())
        .arg(root.path().join("usr/lib/systemd/system"))
        .status()
        .unwrap();
    assert!(copied.success());

    let output = verify(root.path(), "acp-bridge.service");
    assert!(
        output.status.success(),
        "systemd-analyze verify failed: {}",
        show(&output)
    );
    assert!(
        output.stdout.is_empty() && output.stderr.is_empty(),
        "systemd-analyze verify warned: {}",
        show(&output)
    );

    // The check is real: a bad value and a missing binary are reported.
    let unit = read(root.path().join("etc/systemd/system/acp-bridge.service"));
    std::fs::write(
        root.path().join("etc/systemd/system/broken.service"),
        unit.replace("Type=notify", "Type=notifyy"),
    )
    .unwrap();
    let output = verify(root.path(), "broken.service");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("notifyy"),
        "{}",
        show(&output)
    );
    std::fs::remove_file(root.path().join("usr/local/bin/acp-bridge")).unwrap();
    let output = verify(root.path(), "acp-bridge.service");
    assert!(!output.status.success(), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/usr/local/bin/acp-bridge"));

    // What the issue asks of the unit, and a stop timeout that covers the daemon's own worst case.
    let directives = unit_directives();
    for (key, value) in [
        ("Type", "notify"),
        ("Restart", "always"),
        ("User", "user"),
        ("Environment", "HOME=/home/user"),
        ("EnvironmentFile", "-/etc/acp-bridge/env"),
        ("KillMode", "mixed"),
        ("RuntimeDirectory", "acp-bridge"),
        ("RuntimeDirectoryMode", "0700"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "no"),
        ("ProtectHome", "no"),
        ("ExecStart", "/usr/local/bin/acp-bridge serve"),
        ("WantedBy", "multi-user.target"),
    ] {
        assert!(
            directives.iter().any(|(k, v)| k == key && v == value),
            "the unit lacks {key}={value}"
        );
    }
    assert!(
        !directives.iter().any(|(k, _)| k == "MemoryDenyWriteExecute"),
        "V8's JIT needs W+X memory"
    );
    let watchdog = seconds(&directive(&directives, "WatchdogSec"));
    assert!((10..=120).contains(&watchdog), "WatchdogSec={watchdog}s");
    let env = env_example();
    let shutdown_grace: u64 = env.get("ACP_BRIDGE_SHUTDOWN_GRACE").parse().unwrap();
    let stop_grace: u64 = env.get("ACP_BRIDGE_STOP_GRACE").parse().unwrap();
    // Requests, the running turn's cancel (5 s), the agent, the turn again, Chromium, then Xvfb and Vite.
    let worst = shutdown_grace + 5 + stop_grace + shutdown_grace + 2 * stop_grace;
    let timeout = seconds(&directive(&directives, "TimeoutStopSec"));
    assert!(
        timeout > worst,
        "TimeoutStopSec={timeout}s must exceed the daemon's {worst}s"
    );
    assert_eq!(
        env.get("ACP_BRIDGE_TOKEN_FILE"),
        "/run/acp-bridge/token",
        "the token lives in the unit's RuntimeDirectory"
    );
    eprintln!("unit verified in {:?}", started.elapsed());
}

#[test]
fn provision_lays_the_image_out_into_a_temporary_root() {
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    lay_out(&root);
    let at = |path: &str| root.join(path.trim_start_matches('/'));
    let owned = |path: &str, uid: u32, mode: u32| {
        let meta = std::fs::symlink_metadata(at(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((meta.uid(), meta.gid()), (uid, uid), "owner of {path}");
        assert_eq!(meta.mode() & 0o7777, mode, "mode of {path}: {:o}", meta.mode() & 0o7777);
    };

    // The daemon, runnable, where ExecStart= has it; the unit and its enabling symlink.
    owned("/usr/local/bin/acp-bridge", 0, 0o755);
    let version = Command::new(at("/usr/local/bin/acp-bridge"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(version.status.success());
    owned("/etc/systemd/system/acp-bridge.service", 0, 0o644);
    assert_eq!(
        read(at("/etc/systemd/system/acp-bridge.service")),
        read(repo().join("systemd/acp-bridge.service"))
    );
    assert_eq!(
        std::fs::read_link(at("/etc/systemd/system/multi-user.target.wants/acp-bridge.service")).unwrap(),
        PathBuf::from("/etc/systemd/system/acp-bridge.service")
    );
    let directives = unit_directives();
    let exec = directive(&directives, "ExecStart");
    assert!(at(exec.split_whitespace().next().unwrap()).is_file(), "{exec}");
    let env_path = directive(&directives, "EnvironmentFile");
    assert!(at(env_path.trim_start_matches('-')).is_file(), "{env_path}");

    // Configuration and the image's own files.
    owned("/etc/acp-bridge/env", 0, 0o644);
    assert_eq!(
        read(at("/etc/acp-bridge/env")),
        read(repo().join("systemd/env.example"))
    );
    owned("/etc/acp-bridge/system-prompt.md", 0, 0o644);
    owned("/opt/acp-bridge/ready.sh", 0, 0o755);
    owned("/opt/acp-bridge/tools/package-lock.json", 0, 0o644);
    let tools: Value = serde_json::from_str(&read(at("/opt/acp-bridge/tools/package.json"))).unwrap();
    for package in ["@zed-industries/claude-agent-acp", "@playwright/mcp"] {
        assert!(
            tools["dependencies"][package].is_string(),
            "{package} is pinned in the tools"
        );
    }

    // The sandbox user's home and the app.
    owned("/home/user", OWNER, 0o750);
    owned("/home/user/.claude", OWNER, 0o700);
    owned("/home/user/.claude.json", OWNER, 0o600);
    assert_eq!(read(at("/home/user/.claude.json")).trim(), "{}");
    owned("/home/user/.cache/acp-bridge", OWNER, 0o700);
    owned("/app", OWNER, 0o755);
    owned("/app/package.json", OWNER, 0o644);
    for file in [
        "package-lock.json",
        "vite.config.ts",
        "index.html",
        "src/App.tsx",
        ".gitignore",
    ] {
        assert!(at("/app").join(file).is_file(), "/app/{file}");
    }
    assert!(
        !at("/app/node_modules").exists(),
        "node_modules comes from `npm ci`, not from the checkout"
    );

    // The env file: every variable is one the daemon reads, every variable the daemon reads is documented, and its
    // paths are where the layout put things.
    let env = parse_env_file(&read(at("/etc/acp-bridge/env")));
    let names = daemon_env_names();
    for key in env.set.iter().map(|(k, _)| k).chain(&env.commented) {
        assert!(
            names.contains(key),
            "{key} in the env file is not a variable of `acp-bridge serve`"
        );
    }
    let documented: BTreeSet<&String> = env.set.iter().map(|(k, _)| k).chain(&env.commented).collect();
    for name in &names {
        assert!(
            documented.contains(name),
            "{name} is not documented in systemd/env.example"
        );
    }
    assert_eq!(env.get("ACP_BRIDGE_LISTEN"), "0.0.0.0:8420");
    assert_eq!(env.get("ACP_BRIDGE_LOG_FORMAT"), "json");
    assert_eq!(env.get("ACP_BRIDGE_VITE_HOST"), "0.0.0.0");
    assert_eq!(env.get("ACP_BRIDGE_APP_DIR"), "/app");
    assert!(at(env.get("ACP_BRIDGE_CLAUDE_CONFIG_DIR")).is_dir());
    assert!(at(env.get("ACP_BRIDGE_SYSTEM_PROMPT_FILE")).is_file());
    assert!(
        at(env.get("ACP_BRIDGE_CHROMIUM_PROFILE_DIR"))
            .parent()
            .unwrap()
            .is_dir()
    );
    for key in ["ACP_BRIDGE_AGENT_COMMAND", "ACP_BRIDGE_PLAYWRIGHT_MCP_COMMAND"] {
        let program = env.get(key).split_whitespace().next().unwrap();
        assert!(
            program.starts_with("/opt/acp-bridge/tools/node_modules/.bin/"),
            "{key}: {program}"
        );
    }
    let cdp = format!("http://127.0.0.1:{}", env.get("ACP_BRIDGE_CDP_PORT"));
    assert!(
        env.get("ACP_BRIDGE_PLAYWRIGHT_MCP_COMMAND")
            .ends_with(&format!("--cdp-endpoint {cdp}"))
    );
    assert!(
        !env.set.iter().any(|(k, _)| k == "ACP_BRIDGE_TOKEN"),
        "no token is baked in"
    );

    // The Dockerfile runs this script; the template's ready command is the script the layout installed.
    let dockerfile = read(repo().join("image/e2b.Dockerfile"));
    assert!(dockerfile.contains("provision.sh --steps layout,npm,enable"));
    assert!(dockerfile.contains("cargo build --release --locked"));
    let build = read(repo().join("image/build-template.sh"));
    let ready_cmd = build
        .lines()
        .find_map(|l| l.strip_prefix("READY_CMD='"))
        .expect("READY_CMD in build-template.sh");
    assert!(
        at(ready_cmd.split_whitespace().next().unwrap()).is_file(),
        "{ready_cmd}"
    );

    // Running it again keeps what is configuration or the user's: the env file, ~/.claude.json, the app.
    std::fs::write(at("/etc/acp-bridge/env"), "ACP_BRIDGE_LOG_LEVEL=debug\n").unwrap();
    std::fs::write(at("/home/user/.claude.json"), "{\"numStartups\":3}\n").unwrap();
    std::fs::write(
        at("/app/src/App.tsx"),
        "export default function App() { return null }\n",
    )
    .unwrap();
    std::fs::set_permissions(at("/home/user/.claude"), std::fs::Permissions::from_mode(0o755)).unwrap();
    lay_out(&root);
    assert_eq!(read(at("/etc/acp-bridge/env")), "ACP_BRIDGE_LOG_LEVEL=debug\n");
    assert_eq!(read(at("/home/user/.claude.json")), "{\"numStartups\":3}\n");
    assert!(read(at("/app/src/App.tsx")).contains("return null"));
    assert_eq!(mode_of(&at("/home/user/.claude")), 0o700, "the mode is enforced again");

    // Steps that change the running system refuse a temporary root instead of touching this machine.
    for step in ["packages", "user", "enable"] {
        let output = provision(&["--root", root.to_str().unwrap(), "--steps", step, "--owner", "1:1"]);
        if step == "enable" {
            // Only reloads a running systemd, and only for --root /.
            assert!(output.status.success(), "{}", show(&output));
        } else {
            assert!(!output.status.success(), "{step}: {}", show(&output));
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("only with --root /"),
                "{}",
                show(&output)
            );
        }
    }
    let output = provision(&["--steps", "bogus"]);
    assert!(!output.status.success());
    eprintln!("layout checked in {:?}", started.elapsed());
}

async fn run_ready(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = tokio::process::Command::new("bash")
        .arg(repo().join("image/ready.sh"))
        .args(args)
        .output()
        .await
        .expect("run image/ready.sh");
    (output, started.elapsed())
}

#[tokio::test]
async fn ready_command_reads_the_env_file_and_has_a_deadline() {
    // A daemon without components is healthy at once. The env file names the wildcard address, quoted, and says
    // Chromium is off, so there is no browser to wait for.
    let daemon = Daemon::start().await;
    let port = daemon.base.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env");
    let cdp_port = free_port();
    std::fs::write(
        &env_file,
        format!("# comment\nACP_BRIDGE_LISTEN=\"0.0.0.0:{port}\"\nACP_BRIDGE_CDP_PORT={cdp_port}\nACP_BRIDGE_NO_CHROMIUM=yes\n"),
    )
    .unwrap();
    let env_arg = env_file.to_str().unwrap();
    let (output, took) = run_ready(&["--env-file", env_arg, "--timeout", "10"]).await;
    assert!(output.status.success(), "{}", show(&output));
    assert!(took < Duration::from_secs(5), "{took:?}");

    // Healthy, but with Chromium on and no browser on the CDP port: not ready, and it says why.
    let text = read(&env_file).replace("ACP_BRIDGE_NO_CHROMIUM=yes", "ACP_BRIDGE_NO_CHROMIUM=no");
    std::fs::write(&env_file, text).unwrap();
    let (output, _) = run_ready(&["--env-file", env_arg, "--timeout", "1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("the browser does not show"),
        "{}",
        show(&output)
    );
    let (output, _) = run_ready(&["--env-file", env_arg, "--timeout", "1", "--no-browser"]).await;
    assert!(output.status.success(), "{}", show(&output));

    // Nothing listens: it gives up at its deadline with exit 1.
    let (output, took) = run_ready(&["--url", &format!("http://127.0.0.1:{}", free_port()), "--timeout", "1"]).await;
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not ready after 1s"));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(6),
        "{took:?}"
    );

    let (output, _) = run_ready(&["--timeout", "soon"]).await;
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
}

/// The daemon as the unit starts it: every setting from the image's env file, with the paths moved into a
/// temporary root, free ports and display, and Vite on 127.0.0.1 (the flags the test helper always passes, such as
/// `--listen 127.0.0.1:0`, win over the file as they would over systemd's environment).
#[tokio::test]
async fn template_ready_with_the_units_settings_then_provisioned_and_a_screenshot() {
    let _turn = BROWSER.acquire().await.unwrap();
    let started = Instant::now();
    let root = tempfile::tempdir().unwrap();
    let app = app_copy(root.path());
    let config_dir = root.path().join("home/.claude");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::set_permissions(&config_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let token_file = root.path().join("run/acp-bridge/token");
    let (display, cdp_port, vite_port) = (free_display(), free_port(), free_port());
    let tools = repo().join("image/tools");

    let example = env_example();
    let mut settings = Vec::new();
    for (key, value) in &example.set {
        let value = match key.as_str() {
            "ACP_BRIDGE_LISTEN" => "127.0.0.1:0".to_owned(),
            "ACP_BRIDGE_TOKEN_FILE" => token_file.display().to_string(),
            "ACP_BRIDGE_APP_DIR" => app.display().to_string(),
            "ACP_BRIDGE_CLAUDE_CONFIG_DIR" => config_dir.display().to_string(),
            "ACP_BRIDGE_DISPLAY" => format!(":{display}"),
            "ACP_BRIDGE_CDP_PORT" => cdp_port.to_string(),
            "ACP_BRIDGE_VITE_PORT" => vite_port.to_string(),
            "ACP_BRIDGE_VITE_HOST" => "127.0.0.1".to_owned(),
            "ACP_BRIDGE_CHROMIUM_PROFILE_DIR" => root.path().join("chromium").display().to_string(),
            "ACP_BRIDGE_SYSTEM_PROMPT_FILE" => repo().join("image/system-prompt.md").display().to_string(),
            "ACP_BRIDGE_AGENT_COMMAND" | "ACP_BRIDGE_PLAYWRIGHT_MCP_COMMAND" => value
                .replace("/opt/acp-bridge/tools", tools.to_str().unwrap())
                .replace(":9222", &format!(":{cdp_port}")),
            _ => value.clone(),
        };
        for word in value.split_whitespace() {
            let image_paths = [
                "/opt/acp-bridge",
                "/etc/acp-bridge",
                "/home/user",
                "/run/acp-bridge",
                "/app",
            ];
            assert!(
                !image_paths.iter().any(|p| word.starts_with(p)),
                "{key}={value} still points into the image"
            );
        }
        settings.push((key.clone(), value));
    }
    let mut daemon = Daemon::start_with(Options {
        auth: Auth::TokenFile(token_file.clone()),
        config_dir: Some(config_dir),
        app_dir: Some(app),
        env: settings.clone(),
        supervise: true,
        ..Options::default()
    })
    .await;

    // The template's ready command, reading an env file like the image's: the daemon's settings, with the address
    // it really listens on (the wildcard form, as in the image).
    let port = daemon.base.rsplit(':').next().unwrap().to_owned();
    let env_file = root.path().join("env");
    let text: String = settings
        .iter()
        .map(|(key, value)| match key.as_str() {
            "ACP_BRIDGE_LISTEN" => format!("{key}=0.0.0.0:{port}\n"),
            _ => format!("{key}=\"{value}\"\n"),
        })
        .collect();
    std::fs::write(&env_file, text).unwrap();
    let (output, took) = run_ready(&["--env-file", env_file.to_str().unwrap(), "--timeout", "60"]).await;
    assert!(
        output.status.success(),
        "{}\n--- daemon\n{}",
        show(&output),
        daemon.logs()
    );
    let health: Value = daemon.get_public("/health").await.json().await.unwrap();
    for name in ["xvfb", "chromium", "vite"] {
        assert_eq!(health["components"][name]["state"], "ready", "{health}");
    }
    eprintln!(
        "ready.sh succeeded after {took:?} ({:?} since the test started): {}",
        started.elapsed(),
        String::from_utf8_lossy(&output.stdout).trim()
    );

    // No token is baked in: until the control plane writes one, protected endpoints answer 503.
    let response = daemon.get("/preview/screenshot").await;
    assert_eq!(response.status(), 503);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["type"].as_str().unwrap().ends_with("/not-provisioned"),
        "{problem}"
    );

    // The control plane's provisioning: systemd made the 0700 runtime directory; E2B's file API writes a new file
    // 0644 as `user`; a command then makes it 0600 and renames it into place.
    let run_dir = token_file.parent().unwrap();
    std::fs::create_dir_all(run_dir).unwrap();
    std::fs::set_permissions(run_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let staged = run_dir.join("token.new");
    std::fs::write(&staged, TOKEN).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&staged, &token_file).unwrap();
    let provisioned = Instant::now();
    wait_for("the token to be picked up", Duration::from_secs(10), || async {
        (daemon.get("/status").await.status() == 200).then_some(())
    })
    .await;
    eprintln!("provisioned after {:?}", provisioned.elapsed());

    // A screenshot shows the skeleton app (its indigo-to-purple gradient).
    let (width, height) = wait_for("a screenshot showing the app", Duration::from_secs(20), || async {
        let response = daemon.get("/preview/screenshot").await;
        if response.status() != 200 {
            let status = response.status();
            let body = response.text().await.unwrap();
            panic!("screenshot: {status} {body}\n--- daemon\n{}", daemon.logs());
        }
        assert_eq!(response.headers()["content-type"], "image/png");
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
        let mut reader = decoder.read_info().expect("a valid PNG");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let channels = info.color_type.samples();
        let i = ((20 * info.width + 20) as usize) * channels;
        let corner = (pixels[i], pixels[i + 1], pixels[i + 2]);
        (corner.2 > 150 && corner.1 < 120).then_some((info.width, info.height))
    })
    .await;
    assert!(width >= 1200 && height >= 700, "{width}x{height}");
    eprintln!("template ready test took {:?}", started.elapsed());
    daemon.sigterm();
    let status = daemon.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{status:?}");
}
