//! Faults, with nothing lost: the daemon killed with SIGKILL in the middle of credential writes, of a turn commit
//! and with its children running; the credentials directory deleted, full, read-only or failing (EIO); the app's
//! `.git` deleted.
//! Every restart reuses the same HOME, config dir and app dir, as systemd would.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::helper::{
    BROWSER, Daemon, EventStream, Options, SseEvent, alive, app_copy, cli_document, fake_agent, free_display,
    free_port, git, live_pids_where, mode_of, processes_of, rewrite_in_place, stack_args, wait_for,
};

const TURN: Duration = Duration::from_secs(60);
const READY: Duration = Duration::from_secs(60);

/// A HOME, a Claude config dir and an app dir that outlive the daemons started on them.
struct Site {
    root: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let site = Site {
            root: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(site.home()).unwrap();
        std::fs::create_dir_all(site.app()).unwrap();
        site
    }

    fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    fn config_dir(&self) -> PathBuf {
        self.home().join(".claude")
    }

    fn credentials_file(&self) -> PathBuf {
        self.config_dir().join(".credentials.json")
    }

    fn app(&self) -> PathBuf {
        self.root.path().join("app")
    }

    /// A daemon on this site, with the fake agent and `extra` flags.
    async fn start(&self, extra: &[String], supervise: bool) -> Daemon {
        self.start_with_env(extra, supervise, Vec::new()).await
    }

    /// The same, with `env` added to the daemon's environment.
    async fn start_with_env(&self, extra: &[String], supervise: bool, mut env: Vec<(String, String)>) -> Daemon {
        let mut args = vec!["--agent-command".to_owned(), fake_agent().display().to_string()];
        args.extend(extra.iter().cloned());
        env.push(("HOME".to_owned(), self.home().display().to_string()));
        Daemon::start_with(Options {
            config_dir: Some(self.config_dir()),
            app_dir: Some(self.app()),
            env,
            args,
            supervise,
            ..Options::default()
        })
        .await
    }
}

fn sigkill(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

/// SIGKILL, then reaps the process (so its pid is really gone).
async fn kill_hard(daemon: &mut Daemon) {
    sigkill(daemon.pid());
    let status = daemon.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "{status:?}"
    );
}

/// `git fsck --full` passes and reports nothing but dangling objects (what a killed commit leaves is unreferenced,
/// not broken).
fn assert_fsck_clean(dir: &Path) {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["fsck", "--full", "--no-progress"])
        .output()
        .expect("git fsck");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "git fsck failed:\n{text}");
    let problems: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("dangling ") && !line.starts_with("Checking "))
        .collect();
    assert!(problems.is_empty(), "git fsck reports: {problems:?}");
}

fn is_ancestor(dir: &Path, commit: &str, of: &str) -> bool {
    Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["merge-base", "--is-ancestor", commit, of])
        .status()
        .unwrap()
        .success()
}

/// Sets `path`'s modification time a minute back: a lock left by a process killed long ago.
fn age(path: &Path) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(60))
        .unwrap();
}

async fn new_session(daemon: &Daemon) -> String {
    let response = daemon.post("/session", &json!({"apiKey": "sk-ant-api03-faults"})).await;
    assert_eq!(response.status(), 200);
    response.json::<Value>().await.unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Runs a turn to its end and returns its final event (`done` or `error`).
async fn turn(daemon: &Daemon, session: &str, text: &str) -> SseEvent {
    let response = daemon
        .post(&format!("/session/{session}/prompt"), &json!({"prompt": text}))
        .await;
    assert_eq!(response.status(), 200);
    let mut stream = EventStream::from_response(response);
    stream.final_event(TURN).await.expect("the turn ends")
}

fn commit_of(event: &SseEvent) -> Option<String> {
    event.data["commit"]["sha"].as_str().map(str::to_owned)
}

/// The credentials document on disk: access token, refresh token, expiresAt.
fn tokens_on_disk(file: &Path) -> (String, String, u64) {
    let bytes = std::fs::read(file).expect("the credentials file exists");
    let document: Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("a whole JSON document ({e}): {}", String::from_utf8_lossy(&bytes)));
    let oauth = &document["claudeAiOauth"];
    (
        oauth["accessToken"].as_str().unwrap().to_owned(),
        oauth["refreshToken"].as_str().unwrap().to_owned(),
        oauth["expiresAt"].as_u64().unwrap(),
    )
}

/// Names in the config dir other than the credentials file.
fn strangers(config_dir: &Path) -> Vec<String> {
    std::fs::read_dir(config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != ".credentials.json")
        .collect()
}

/// 1. SIGKILL at ten different moments of a stream of concurrent writes with growing `expiresAt`.
#[tokio::test]
async fn sigkill_during_credential_writes_leaves_a_whole_file_and_loses_no_acknowledged_write() {
    const WRITERS: usize = 8;
    // Milliseconds of writing before the kill, once the writes are flowing: the fault injection.
    const DELAYS: [u64; 10] = [0, 1, 3, 6, 10, 15, 25, 40, 70, 120];
    let site = Site::new();
    let next = Arc::new(AtomicU64::new(1_000));
    let mut last_on_disk: Option<u64> = None;
    let mut killed = Vec::new();
    let mut acknowledged_total = 0;
    for delay in DELAYS {
        let mut daemon = site.start(&[], false).await;
        if let Some(n) = last_on_disk {
            let (status, served) = daemon.read_credentials().await;
            assert_eq!(status, 200, "the restarted daemon serves the file: {served}");
            assert_eq!(
                (served["accessToken"].as_str(), served["expiresAt"].as_u64()),
                (Some(format!("a{n}").as_str()), Some(n))
            );
        }
        let acknowledged = Arc::new(AtomicU64::new(0));
        let count = Arc::new(AtomicU64::new(0));
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (client, url, token) = (
                    daemon.client.clone(),
                    daemon.url("/credentials/write"),
                    daemon.token.clone(),
                );
                let (next, acknowledged, count) = (next.clone(), acknowledged.clone(), count.clone());
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        let body = cli_document(&format!("a{n}"), &format!("r{n}"), n);
                        let Ok(response) = client.post(&url).bearer_auth(&token).json(&body).send().await else {
                            return; // the daemon is gone
                        };
                        match response.status().as_u16() {
                            200 => {
                                acknowledged.fetch_max(n, Ordering::SeqCst);
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            409 => {} // overtaken by a newer concurrent write
                            other => panic!("write {n}: {other} {:?}", response.text().await),
                        }
                    }
                })
            })
            .collect();
        wait_for("writes to flow", Duration::from_secs(10), || async {
            (count.load(Ordering::SeqCst) >= 5).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        killed.push(daemon.pid());
        kill_hard(&mut daemon).await;
        for writer in writers {
            writer.await.unwrap();
        }
        let acknowledged = acknowledged.load(Ordering::SeqCst);
        acknowledged_total += count.load(Ordering::SeqCst);

        let (access, refresh, expires_at) = tokens_on_disk(&site.credentials_file());
        assert_eq!(
            (access.as_str(), refresh.as_str()),
            (format!("a{expires_at}").as_str(), format!("r{expires_at}").as_str()),
            "the tokens on disk belong together"
        );
        assert!(
            expires_at >= acknowledged,
            "acknowledged write {acknowledged} lost: the file holds {expires_at}"
        );
        assert_eq!(mode_of(&site.credentials_file()), 0o600);
        for name in strangers(&site.config_dir()) {
            assert!(
                killed
                    .iter()
                    .any(|pid| name.starts_with(&format!(".credentials.json.{pid}.")) && name.ends_with(".tmp")),
                "only a killed daemon's temporary file may be left: {name}"
            );
            assert_eq!(mode_of(&site.config_dir().join(&name)), 0o600, "{name}");
        }
        last_on_disk = Some(expires_at);
    }
    eprintln!(
        "{} kills survived, {acknowledged_total} writes acknowledged, {} temporary files left by the kills",
        DELAYS.len(),
        strangers(&site.config_dir()).len()
    );

    // The last restart: served as it was, and writing goes on whatever the kills left behind.
    let daemon = site.start(&[], false).await;
    assert_eq!(
        strangers(&site.config_dir()),
        Vec::<String>::new(),
        "a starting daemon removes the temporary files killed daemons left"
    );
    let n = last_on_disk.unwrap();
    let (status, served) = daemon.read_credentials().await;
    assert_eq!((status, served["expiresAt"].as_u64()), (200, Some(n)));
    let (status, body) = daemon
        .write_credentials(&cli_document("a-final", "r-final", n + 1_000_000))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tokens_on_disk(&site.credentials_file()).0, "a-final");
}

/// 1. A killed daemon's temporary file whose name the new daemon would pick (its pid reused, as after a reboot).
#[tokio::test]
async fn a_leftover_temporary_file_with_a_reused_pid_does_not_fail_a_write() {
    let site = Site::new();
    let daemon = site.start(&[], false).await;
    let (status, _) = daemon.write_credentials(&cli_document("a1", "r1", 1_000)).await;
    assert_eq!(status, 200);
    // The first write used counter 0; the next one will use 1. A previous process with this pid left it behind.
    let planted = site
        .config_dir()
        .join(format!(".credentials.json.{}.1.tmp", daemon.pid()));
    std::fs::write(&planted, br#"{"claudeAiOauth":{"accessToken":"a-half"#).unwrap();
    std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (status, body) = daemon.write_credentials(&cli_document("a2", "r2", 2_000)).await;
    assert_eq!(status, 200, "a leftover temporary file must not fail the write: {body}");
    assert_eq!(
        tokens_on_disk(&site.credentials_file()),
        ("a2".to_owned(), "r2".to_owned(), 2_000)
    );
    assert_eq!(
        strangers(&site.config_dir()),
        Vec::<String>::new(),
        "the leftover is gone"
    );
}

/// 2. SIGKILL while a turn's commit of thousands of files holds `.git/index.lock`.
#[tokio::test]
async fn sigkill_during_a_turn_commit_keeps_the_repo_sound_and_every_acknowledged_commit() {
    const ROUNDS: usize = 3;
    const FILES: usize = 3_000;
    let site = Site::new();
    // A repository with many files already: the first start commits them.
    for i in 0..2_000 {
        let path = site.app().join(format!("src/seed/{:02}/file{i}.txt", i % 40));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, format!("seed {i}\n")).unwrap();
    }
    let mut daemon = site.start(&[], false).await;
    let mut session = new_session(&daemon).await;
    let mut acknowledged = Vec::new();
    let mut kills = 0;
    let mut kills_with_the_lock_left = 0;
    for round in 0..ROUNDS {
        let small = turn(&daemon, &session, &format!("small write:round{round}.txt=ok")).await;
        acknowledged.push(commit_of(&small).expect("a normal turn is committed"));

        let mut prompt = format!("bulk{round}");
        for i in 0..FILES {
            prompt.push_str(&format!(" write:bulk{round}/{:02}/f{i}.txt={round}-{i}", i % 30));
        }
        let lock = site.app().join(".git/index.lock");
        assert!(!lock.exists());
        let response = daemon
            .post(&format!("/session/{session}/prompt"), &json!({"prompt": prompt}))
            .await;
        assert_eq!(response.status(), 200);
        // Watch for the index lock the commit takes, and kill the daemon the moment it appears.
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (stop, lock, pid) = (stop.clone(), lock.clone(), daemon.pid());
            tokio::task::spawn_blocking(move || {
                let deadline = std::time::Instant::now() + TURN;
                while !stop.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                    if lock.exists() {
                        sigkill(pid);
                        return true;
                    }
                    std::thread::yield_now();
                }
                false
            })
        };
        let done = EventStream::from_response(response).final_event(TURN).await;
        stop.store(true, Ordering::Relaxed);
        let killed = watcher.await.unwrap();
        if let Some(sha) = done.as_ref().and_then(commit_of) {
            acknowledged.push(sha);
        }
        if !killed {
            assert!(done.is_some(), "round {round}: the turn neither ended nor was killed");
            continue;
        }
        kills += 1;
        daemon.wait_exit(Duration::from_secs(10)).await;
        if lock.exists() {
            kills_with_the_lock_left += 1;
        }
        assert_fsck_clean(&site.app());

        daemon = site.start(&[], false).await;
        session = new_session(&daemon).await;
        let response = daemon.get("/history?limit=1000").await;
        assert_eq!(response.status(), 200, "the restarted daemon serves the history");
        let history: Value = response.json().await.unwrap();
        let head = history["head"].as_str().unwrap().to_owned();
        for sha in &acknowledged {
            assert!(is_ancestor(&site.app(), sha, &head), "acknowledged commit {sha} lost");
        }
        assert!(
            !lock.exists(),
            "the stale index lock is gone once the daemon has started"
        );
    }
    assert!(kills > 0, "no commit was caught holding the index lock");

    // After the last restart a turn commits normally, and it carries the work of the killed turns.
    let last = turn(&daemon, &session, "after write:after.txt=1").await;
    let sha = commit_of(&last).expect("a turn after the restarts commits");
    assert_eq!(git(&site.app(), &["rev-parse", "HEAD"]), sha);
    let history: Value = daemon.get("/history?limit=1000").await.json().await.unwrap();
    assert_eq!(history["head"], sha.as_str());
    assert_eq!(history["dirty"], false);
    assert_eq!(
        git(&site.app(), &["status", "--porcelain"]),
        "",
        "nothing is left uncommitted"
    );
    for round in 0..ROUNDS {
        let tracked = git(&site.app(), &["ls-files", &format!("bulk{round}")]).lines().count();
        assert_eq!(tracked, FILES, "round {round}: every file the turn wrote is committed");
    }
    for sha in &acknowledged {
        assert!(is_ancestor(&site.app(), sha, "HEAD"), "acknowledged commit {sha} lost");
    }
    assert_fsck_clean(&site.app());
    eprintln!(
        "{kills} of {ROUNDS} commits of {FILES} files killed holding the index lock ({kills_with_the_lock_left} left it \
         behind); {} acknowledged commits all kept",
        acknowledged.len()
    );
}

/// 2. The same, simulated: index and branch locks left by a process killed long ago are there before the start.
#[tokio::test]
async fn stale_index_and_branch_locks_are_recovered_at_start_and_the_next_turn_commits() {
    let site = Site::new();
    std::fs::write(site.app().join("index.html"), "v0").unwrap();
    let mut daemon = site.start(&[], false).await;
    let session = new_session(&daemon).await;
    let first = commit_of(&turn(&daemon, &session, "one write:a.txt=a").await).unwrap();
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await.code(), Some(0));

    let git_dir = site.app().join(".git");
    let index_lock = git_dir.join("index.lock");
    let branch_lock = git_dir.join("refs/heads/main.lock");
    std::fs::write(&index_lock, b"DIRC half-written").unwrap();
    std::fs::write(&branch_lock, b"0123456789abcdef0123456789abcdef01234567\n").unwrap();
    age(&index_lock);
    age(&branch_lock);
    std::fs::write(site.app().join("b.txt"), "written while nobody watched").unwrap();

    let daemon = site.start(&[], false).await;
    assert!(
        !index_lock.exists() && !branch_lock.exists(),
        "the stale locks are removed at start"
    );
    let session = new_session(&daemon).await;
    let done = turn(&daemon, &session, "two write:c.txt=c").await;
    let sha = commit_of(&done).expect("the turn commits despite the locks left behind");
    assert_eq!(done.data["commit"]["parent"], first.as_str());
    assert_eq!(done.data["commit"]["filesChanged"], json!(["b.txt", "c.txt"]));
    let history: Value = daemon.get("/history").await.json().await.unwrap();
    assert_eq!(history["head"], sha.as_str());
    assert_eq!(history["commits"][1]["sha"], first.as_str());
    assert_fsck_clean(&site.app());
}

/// Live processes whose command line satisfies `matches`.
fn processes(matches: impl Fn(&[String]) -> bool) -> Vec<u32> {
    live_pids_where("cmdline", |fields| {
        let args: Vec<String> = fields.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        !args.is_empty() && matches(&args)
    })
}

/// The Xvfb, Chromium (browser process) and Vite running for this display and these ports.
fn stack_processes(display: u32, cdp_port: u16, vite_port: u16) -> [Vec<u32>; 3] {
    let display = format!(":{display}");
    let cdp = format!("--remote-debugging-port={cdp_port}");
    let vite_port = vite_port.to_string();
    [
        processes(|args| args[0].ends_with("Xvfb") && args.contains(&display)),
        processes(|args| args.contains(&cdp) && !args.iter().any(|a| a.starts_with("--type="))),
        processes(|args| {
            args.iter().any(|a| a.ends_with("vite/bin/vite.js"))
                && args.windows(2).any(|w| w[0] == "--port" && w[1] == vite_port)
        }),
    ]
}

/// A file the test planted outside its temp dir, removed on drop.
struct Planted(PathBuf);

impl Drop for Planted {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A running process that is not an X server, standing for one that was given a dead X server's pid; killed on drop.
struct Unrelated(std::process::Child);

impl Unrelated {
    fn start() -> Unrelated {
        Unrelated(Command::new("sleep").arg("600").spawn().unwrap())
    }
}

impl Drop for Unrelated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 3. SIGKILL to the daemon alone, a stale X lock, then a new daemon on the same display, ports and profile.
#[tokio::test]
async fn a_daemon_killed_with_its_children_running_restarts_with_exactly_one_of_each() {
    let _turn = BROWSER.acquire().await.unwrap();
    let site = Site::new();
    std::fs::remove_dir(site.app()).unwrap();
    let app = app_copy(site.root.path());
    assert_eq!(app, site.app());
    let (display, cdp_port, vite_port) = (free_display(), free_port(), free_port());
    let profile_dir = site.home().join(".cache/acp-bridge/chromium").display().to_string();
    let mut args = stack_args(display, cdp_port, vite_port);
    args.extend(["--chromium-profile-dir".into(), profile_dir.clone()]);
    let healthy = |daemon: &Daemon| {
        let (client, url) = (daemon.client.clone(), daemon.url("/health"));
        async move {
            wait_for("/health to answer 200", READY, || {
                let request = client.get(&url);
                async move { (request.send().await.ok()?.status() == 200).then_some(()) }
            })
            .await
        }
    };

    let mut first = site.start(&args, true).await;
    healthy(&first).await;
    let before = stack_processes(display, cdp_port, vite_port);
    assert!(
        before.iter().all(|pids| pids.len() == 1),
        "one of each runs: {before:?}"
    );
    let first_pid = first.pid();
    let children = processes_of(first_pid);
    assert!(children.len() >= 3, "{children:?}");
    // Chromium's helpers (zygotes, GPU, network, renderers) all carry the profile dir; some rewrite their command
    // line into one string.
    let profile = format!("--user-data-dir={profile_dir}");
    let browser = || processes(|args| args.iter().any(|a| a.contains(&profile)));
    let helpers = browser().len();
    assert!(helpers > 1, "the browser and its helpers run");
    kill_hard(&mut first).await;
    let killed_at = tokio::time::Instant::now();
    // The real behaviour: every child has PR_SET_PDEATHSIG(SIGKILL), so the kernel kills Xvfb, Chromium and Vite
    // with the daemon; Chromium's helpers and Vite's esbuild follow their parents.
    wait_for(
        "the killed daemon's children to die with it",
        Duration::from_secs(10),
        || async { (processes_of(first_pid).is_empty() && browser().is_empty()).then_some(()) },
    )
    .await;
    let children_gone_after = killed_at.elapsed();
    let zombies = children
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .count();
    // Xvfb, started with -displayfd, takes no /tmp/.X<n>-lock, but a killed one leaves its socket behind. Plant the
    // lock a killed X server would leave, naming a pid that another program now has: the harder case (a dead pid
    // is checked in the unit tests), which is what a lock left in a persistent /tmp names after a reboot.
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
    assert!(socket.exists(), "a killed Xvfb leaves its socket");
    let x_lock = Planted(PathBuf::from(format!("/tmp/.X{display}-lock")));
    let reused = Unrelated::start();
    std::fs::write(&x_lock.0, format!("{:>10}\n", reused.0.id())).unwrap();

    // What else the kill left: Chromium's SingletonLock in the shared profile, and Vite's command lock
    // (`node_modules/.vite/lock/*.json`). Both are dropped by their programs once the named pid is dead, but a child
    // not yet reaped by init still answers kill(pid, 0): Vite may then exit 1 ("Found another Vite dev process")
    // once, and the supervisor's backoff starts it again.
    let second = site.start(&args, true).await;
    healthy(&second).await;
    let after = stack_processes(display, cdp_port, vite_port);
    assert!(
        after.iter().all(|pids| pids.len() == 1),
        "exactly one of each: {after:?}"
    );
    let status: Value = second.get("/status").await.json().await.unwrap();
    for (name, pids) in ["xvfb", "chromium", "vite"].iter().zip(&after) {
        let component = &status["components"][name];
        assert_eq!(component["state"], "ready", "{name}: {component}");
        assert_eq!(
            component["pid"].as_u64(),
            Some(pids[0] as u64),
            "{name} is the daemon's own child"
        );
    }
    assert!(
        !second.logs().contains("held by another X server"),
        "the stale X lock did not hold Xvfb back"
    );
    assert!(alive(reused.0.id()), "the process the lock named still runs");
    assert!(!x_lock.0.exists(), "the stale X lock was removed");
    second.wait_for_log("stale X lock", Duration::from_secs(5)).await;
    assert!(socket.exists(), "the new Xvfb serves the display's socket");
    assert_eq!(second.get_public("/health").await.status(), 200);
    eprintln!(
        "after SIGKILL: {} marked children and {helpers} browser processes gone within {children_gone_after:?} \
         ({zombies} still unreaped zombies at the restart); restart: xvfb restarts {}, chromium {}, vite {}",
        children.len(),
        status["components"]["xvfb"]["restarts"],
        status["components"]["chromium"]["restarts"],
        status["components"]["vite"]["restarts"],
    );
}

/// 4. `rm -rf ~/.claude` while the daemon runs, then the CLI logs in again; then a write into a deleted dir.
#[tokio::test]
async fn a_credentials_dir_deleted_and_recreated_is_cleared_then_rotated_and_a_write_recreates_it_private() {
    let site = Site::new();
    let daemon = site.start(&[], false).await;
    let (status, _) = daemon.write_credentials(&cli_document("a1", "r1", 1_000)).await;
    assert_eq!(status, 200);
    let mut events = daemon.events(None).await;

    std::fs::remove_dir_all(site.config_dir()).unwrap();
    let cleared = events.next_named("credentials.cleared", Duration::from_secs(10)).await;
    assert_eq!(cleared.data["reason"], "removed");
    assert_eq!(cleared.data["previousExpiresAt"], 1_000);
    let (status, _) = daemon.read_credentials().await;
    assert_eq!(status, 404);

    std::fs::create_dir(site.config_dir()).unwrap();
    std::fs::set_permissions(site.config_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    rewrite_in_place(
        &site.credentials_file(),
        cli_document("a2", "r2", 2_000).to_string().as_bytes(),
    );
    let rotated = events.next_named("credentials.rotated", Duration::from_secs(10)).await;
    assert_eq!(rotated.data["expiresAt"], 2_000);
    assert_eq!(rotated.data["previousExpiresAt"], Value::Null);
    let (status, served) = daemon.read_credentials().await;
    assert_eq!((status, served["accessToken"].as_str()), (200, Some("a2")));

    std::fs::remove_dir_all(site.config_dir()).unwrap();
    events.next_named("credentials.cleared", Duration::from_secs(10)).await;
    let (status, body) = daemon.write_credentials(&cli_document("a3", "r3", 3_000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(mode_of(&site.config_dir()), 0o700);
    assert_eq!(mode_of(&site.credentials_file()), 0o600);
    let (status, served) = daemon.read_credentials().await;
    assert_eq!((status, served["accessToken"].as_str()), (200, Some("a3")));
    let written = events.next_named("credentials.written", Duration::from_secs(10)).await;
    assert_eq!(written.data["expiresAt"], 3_000);
}

/// 5. The app's `.git` deleted while the daemon runs.
#[tokio::test]
async fn a_deleted_git_dir_is_re_created_at_once_and_every_turn_after_it_commits() {
    let site = Site::new();
    std::fs::write(site.app().join("index.html"), "v0").unwrap();
    let mut daemon = site.start(&[], false).await;
    let session = new_session(&daemon).await;
    commit_of(&turn(&daemon, &session, "one write:a.txt=a").await).unwrap();
    std::fs::remove_dir_all(site.app().join(".git")).unwrap();

    // The next use of the repository re-creates it: what the folder holds is its first commit.
    let response = daemon.get("/history").await;
    assert_eq!(response.status(), 200);
    let history: Value = response.json().await.unwrap();
    let commits = history["commits"].as_array().unwrap();
    assert_eq!(commits.len(), 1, "{history}");
    assert!(
        commits[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("Re-created the app repository")
    );
    assert_eq!(commits[0]["filesChanged"], json!(["a.txt", "index.html"]));
    assert_eq!(history["dirty"], false);
    daemon
        .wait_for_log("re-created the repository", Duration::from_secs(5))
        .await;

    // Turns commit as before, on top of it.
    let done = turn(&daemon, &session, "two write:orphan.txt=1").await;
    assert_eq!(done.event, "done", "{:?}", done.data);
    assert_eq!(done.data["commit"]["filesChanged"], json!(["orphan.txt"]));

    // Removed again in the middle of a session, just before a turn: that turn's work is committed too.
    std::fs::remove_dir_all(site.app().join(".git")).unwrap();
    let done = turn(&daemon, &session, "three write:orphan2.txt=2").await;
    assert_eq!(done.event, "done");
    let response = daemon.get("/history").await;
    let history: Value = response.json().await.unwrap();
    let files: Vec<&str> = history["commits"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| {
            c["filesChanged"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f.as_str().unwrap())
        })
        .collect();
    for file in ["orphan.txt", "orphan2.txt", "a.txt", "index.html"] {
        assert!(files.contains(&file), "{file} is committed: {history}");
    }
    assert_eq!(history["dirty"], false);
    assert_fsck_clean(&site.app());
    assert_eq!(daemon.get_public("/health").await.status(), 200);
    daemon.sigterm();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).await.code(), Some(0));
    assert!(!daemon.logs().contains("panicked"));
}

/// Undoes a mount (lazily, so that a busy mount cannot fail the test's cleanup).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts on `target`; the guard unmounts.
fn mount(args: &[&str], target: &Path) -> Option<Mounted> {
    run_mount(args, target).then(|| Mounted(target.to_path_buf()))
}

fn run_mount(args: &[&str], target: &Path) -> bool {
    let Ok(output) = Command::new("mount").args(args).arg(target).output() else {
        return false;
    };
    if !output.status.success() {
        eprintln!(
            "mount {args:?} {}: {}",
            target.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    output.status.success()
}

/// Clears the immutable attribute again.
struct Immutable(PathBuf);

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

fn make_immutable(dir: &Path) -> Option<Immutable> {
    let output = Command::new("chattr").arg("+i").arg(dir).output().ok()?;
    if output.status.success() {
        Some(Immutable(dir.to_path_buf()))
    } else {
        eprintln!(
            "chattr +i {}: {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        None
    }
}

const SECRET_ACCESS: &str = "sk-ant-oat01-FAULT-must-not-leak";
const SECRET_REFRESH: &str = "sk-ant-ort01-FAULT-must-not-leak";

/// A refused write: a clear 503 naming `fault`, no token in it, the file byte for byte as before, no temp file.
async fn assert_refused_cleanly(daemon: &Daemon, site: &Site, fault: &str, expires_at: u64, own_files: &[&str]) {
    let before = std::fs::read(site.credentials_file()).unwrap();
    let response = daemon
        .post(
            "/credentials/write",
            &cli_document(SECRET_ACCESS, SECRET_REFRESH, expires_at),
        )
        .await;
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/problem+json");
    let text = response.text().await.unwrap();
    assert_eq!(status, 503, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(
        body["type"].as_str().unwrap().ends_with("/credentials-unwritable"),
        "{body}"
    );
    assert_eq!(body["status"], 503);
    let detail = body["detail"].as_str().unwrap();
    eprintln!("{fault}: {status} {} {detail:?}", body["type"]);
    assert!(detail.contains(fault), "the detail names the fault ({fault}): {detail}");
    assert!(!text.contains("FAULT-must-not-leak"), "{text}");
    assert_eq!(
        std::fs::read(site.credentials_file()).unwrap(),
        before,
        "the previous file is intact"
    );
    assert_eq!(strangers(&site.config_dir()), own_files, "no temporary file is left");
}

/// 6. The config dir's filesystem is full (a 64 KiB tmpfs, filled up).
#[tokio::test]
async fn a_full_disk_is_a_clear_503_the_previous_file_stays_and_a_later_write_succeeds() {
    let site = Site::new();
    std::fs::create_dir_all(site.config_dir()).unwrap();
    let _tmpfs = mount(
        &["-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs"],
        &site.config_dir(),
    )
    .expect("a tiny tmpfs for the config dir (the tests run as root)");
    let daemon = site.start(&[], false).await;
    let (status, _) = daemon.write_credentials(&cli_document("a1", "r1", 1_000)).await;
    assert_eq!(status, 200);

    let filler = site.config_dir().join("zz-filler");
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = [0u8; 4096];
        let full = loop {
            if let Err(error) = file.write_all(&block) {
                break error;
            }
        };
        assert_eq!(full.raw_os_error(), Some(nix::libc::ENOSPC), "{full}");
    }
    assert_refused_cleanly(&daemon, &site, "no space left", 2_000, &["zz-filler"]).await;
    assert!(!daemon.logs().contains("FAULT-must-not-leak"));

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = daemon
        .write_credentials(&cli_document(SECRET_ACCESS, SECRET_REFRESH, 2_000))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tokens_on_disk(&site.credentials_file()).0, SECRET_ACCESS);
}

/// 6. The config dir is read-only: a read-only bind mount (EROFS) and an immutable directory (EPERM, which root
/// gets too, unlike `chmod 0500`).
#[tokio::test]
async fn a_read_only_credentials_dir_is_a_clear_503_the_previous_file_stays_and_a_later_write_succeeds() {
    let site = Site::new();
    let daemon = site.start(&[], false).await;
    let (status, _) = daemon.write_credentials(&cli_document("a1", "r1", 1_000)).await;
    assert_eq!(status, 200);
    let mut simulated = 0;

    let dir = site.config_dir();
    if let Some(bind) = mount(&["--bind", dir.to_str().unwrap()], &dir) {
        // Remounting changes the same mount: `bind` still undoes it.
        if run_mount(&["-o", "remount,bind,ro"], &dir) {
            assert_refused_cleanly(&daemon, &site, "read-only", 2_000, &[]).await;
            simulated += 1;
        }
        drop(bind);
        wait_for("the bind mount to be gone", Duration::from_secs(5), || async {
            std::fs::File::create(dir.join(".probe"))
                .ok()
                .map(|_| std::fs::remove_file(dir.join(".probe")).unwrap())
        })
        .await;
        let (status, body) = daemon.write_credentials(&cli_document("a2", "r2", 2_000)).await;
        assert_eq!(status, 200, "{body}");
    }

    if let Some(immutable) = make_immutable(&dir) {
        assert_refused_cleanly(&daemon, &site, "not permitted", 3_000, &[]).await;
        simulated += 1;
        drop(immutable);
        let (status, body) = daemon.write_credentials(&cli_document("a3", "r3", 3_000)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(tokens_on_disk(&site.credentials_file()).0, "a3");
    }
    assert!(simulated > 0, "neither a read-only mount nor chattr +i works here");
    assert!(!daemon.logs().contains("FAULT-must-not-leak"));
}

/// Builds `tests/it/eio_shim.c` into `dir`: with it in `LD_PRELOAD`, `fsync` fails with EIO for the paths that end
/// with what the switch file holds.
fn build_eio_shim(dir: &Path) -> PathBuf {
    let library = dir.join("libeio_shim.so");
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/eio_shim.c");
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
        .arg(&library)
        .arg(source)
        .arg("-ldl")
        .output()
        .expect("cc (the Rust build needs it too)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    library
}

/// 6. A failing disk: fsync answers EIO (injected with an LD_PRELOAD shim, since no real device fails on demand).
/// Failing on the temporary file, the write is a clear 503 and the file is left as it was; failing on the directory
/// after the rename, the write has happened (every reader sees it), so it is a 200 with a warning in the log, and
/// the watcher does not mistake the daemon's own write for a rotation.
#[tokio::test]
async fn a_disk_that_fails_with_eio_refuses_the_write_cleanly_or_reports_a_done_one_as_done() {
    let site = Site::new();
    let shim = build_eio_shim(site.root.path());
    let switch = site.root.path().join("eio-switch");
    let env = vec![
        ("LD_PRELOAD".to_owned(), shim.display().to_string()),
        ("ACP_BRIDGE_TEST_EIO_SWITCH".to_owned(), switch.display().to_string()),
    ];
    let daemon = site.start_with_env(&[], false, env).await;
    let (status, _) = daemon.write_credentials(&cli_document("a1", "r1", 1_000)).await;
    assert_eq!(status, 200);

    // The temporary file's fsync fails: nothing is renamed.
    std::fs::write(&switch, ".tmp").unwrap();
    assert_refused_cleanly(&daemon, &site, "I/O error", 2_000, &[]).await;
    assert!(!daemon.logs().contains("FAULT-must-not-leak"));
    std::fs::remove_file(&switch).unwrap();
    let (status, body) = daemon.write_credentials(&cli_document("a2", "r2", 2_000)).await;
    assert_eq!(status, 200, "{body}");

    // The directory's fsync fails, after the rename.
    let mut events = daemon.events(None).await;
    std::fs::write(&switch, "/.claude").unwrap();
    let (status, body) = daemon.write_credentials(&cli_document("a3", "r3", 3_000)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(tokens_on_disk(&site.credentials_file()).0, "a3");
    daemon
        .wait_for_log("the directory could not be synced", Duration::from_secs(5))
        .await;
    std::fs::remove_file(&switch).unwrap();
    let (status, _) = daemon.write_credentials(&cli_document("a4", "r4", 4_000)).await;
    assert_eq!(status, 200);
    // Every event up to the last write's: two writes, and no rotation among them.
    let mut seen = Vec::new();
    loop {
        let event = events.next(Duration::from_secs(10)).await.expect("an event");
        if event.event.starts_with("credentials.") {
            seen.push((event.event.clone(), event.data["expiresAt"].clone()));
        }
        if event.event == "credentials.written" && event.data["expiresAt"] == 4_000 {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            ("credentials.written".to_owned(), json!(3_000)),
            ("credentials.written".to_owned(), json!(4_000))
        ]
    );
    let (status, read) = daemon.read_credentials().await;
    assert_eq!((status, read["accessToken"].as_str()), (200, Some("a4")));
}
