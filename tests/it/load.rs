//! Load: a thousand concurrent clients reading, writing and polling `/health` while the "CLI" rotates the
//! credentials file in place. Every answer is checked, and so are the final state and the daemon's memory.
//!
//! Token pairs prove consistency: number `N` is access `a<N>`, refresh `r<N>` and expiresAt `BASE + N`, so a
//! torn read or a pair mixed from two documents cannot go unnoticed. Rotation `k` writes `N = k * EPOCH`. A
//! writer that saw rotation `k` on disk sends either fresh credentials, `N = k * EPOCH + s` with `s` from a
//! counter that only grows (so most of them are newer than every write before), or credentials older than
//! that rotation, `N < k * EPOCH`, which must be refused. Every write of epoch `k` is older than rotation
//! `k + 1`, so no write can outlive a later rotation, and the final state is known.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helper::{Daemon, Options, cli_document, rewrite_in_place, wait_for};

const CLIENTS: usize = 1_000;
const REQUESTS_PER_CLIENT: usize = 20;
const BASE: u64 = 1_900_000_000_000;
const EPOCH: u64 = 1_000_000_000;
/// How far below the current rotation a stale write goes.
const STALE_SPAN: u64 = 1_000;
/// The daemon's peak resident memory (VmHWM) must stay under this.
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// A pause between two rotations. Under this load a request waits about 0.6 s in line (1 000 clients, about
/// 1 700 answers a second), so a much faster CLI would make nearly every fresh write stale before it is decided.
const ROTATION_PACE: Duration = Duration::from_millis(500);

/// The `N` of a credentials body, when its access token, refresh token and expiresAt all agree.
fn consistent_n(access: &Value, refresh: &Value, expires_at: &Value) -> Option<u64> {
    let n: u64 = access.as_str()?.strip_prefix('a')?.parse().ok()?;
    (refresh.as_str()? == format!("r{n}") && expires_at.as_u64()? == BASE + n).then_some(n)
}

fn rotation(k: u64) -> Vec<u8> {
    let n = k * EPOCH;
    cli_document(&format!("a{n}"), &format!("r{n}"), BASE + n)
        .to_string()
        .into_bytes()
}

/// xorshift64*: a deterministic mix of requests per client, without a `rand` dependency.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Raises the soft limit on open files to the hard limit: this process holds a socket per client, and the
/// daemon, which inherits the limit, holds the other end.
fn raise_open_files_limit(needed: u64) {
    use nix::libc::{RLIMIT_NOFILE, getrlimit, rlimit, setrlimit};
    let mut limit = rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        assert_eq!(getrlimit(RLIMIT_NOFILE, &mut limit), 0, "getrlimit");
        assert!(
            limit.rlim_max >= needed,
            "the hard limit on open files ({}) is below the {needed} this test needs",
            limit.rlim_max
        );
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(setrlimit(RLIMIT_NOFILE, &limit), 0, "setrlimit");
        }
    }
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// What the clients share: where the daemon is, what the CLI last rotated to, and the counts of answers.
#[derive(Default)]
struct Shared {
    base: String,
    token: String,
    /// The last rotation `k` the CLI finished writing.
    epoch: AtomicU64,
    /// The counter of fresh writes.
    fresh: AtomicU64,
    reads: AtomicU64,
    health: AtomicU64,
    applied: AtomicU64,
    stale: AtomicU64,
    busy: AtomicU64,
    /// The largest `N` of an applied write.
    newest_applied: AtomicU64,
}

enum Op {
    Read,
    Write,
    Health,
}

/// One client: its own connection pool, a fixed number of requests, every answer checked.
async fn client(id: u64, shared: Arc<Shared>) {
    let Shared { base, token, .. } = &*shared;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let mut mix = Mix(0x9e37_79b9_7f4a_7c15 ^ (id + 1).wrapping_mul(0x1000_0000_01b3));
    for _ in 0..REQUESTS_PER_CLIENT {
        let op = match mix.next() % 100 {
            0..45 => Op::Read,
            45..80 => Op::Write,
            _ => Op::Health,
        };
        // Rotation `k` is on disk (or something newer is) from here on.
        let k = shared.epoch.load(Ordering::SeqCst);
        match op {
            Op::Read => {
                let response = http
                    .post(format!("{base}/credentials/read"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("read");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("read body");
                assert_eq!(status, 200, "a read under load must succeed: {body}");
                let n = consistent_n(&body["accessToken"], &body["refreshToken"], &body["expiresAt"])
                    .unwrap_or_else(|| panic!("torn or mixed credentials returned: {body}"));
                assert!(
                    n >= k * EPOCH,
                    "a read returned N={n}, older than rotation {k} that was already on disk"
                );
                shared.reads.fetch_add(1, Ordering::Relaxed);
            }
            Op::Write => {
                let older_than_disk = mix.next() % 100 < 30;
                let n = if older_than_disk {
                    k * EPOCH - 1 - mix.next() % STALE_SPAN
                } else {
                    k * EPOCH + shared.fresh.fetch_add(1, Ordering::SeqCst)
                };
                let body = json!({"accessToken": format!("a{n}"), "refreshToken": format!("r{n}"),
                                  "expiresAt": BASE + n, "scopes": ["user:inference", "user:profile"]});
                let response = http
                    .post(format!("{base}/credentials/write"))
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .expect("write");
                let status = response.status().as_u16();
                let answer: Value = response.json().await.expect("write body");
                match status {
                    200 => {
                        assert_eq!(answer, json!({"written": true, "expiresAt": BASE + n}));
                        assert!(
                            !older_than_disk,
                            "write N={n} was applied over rotation {k} (N={}) that was already on disk",
                            k * EPOCH
                        );
                        shared.applied.fetch_add(1, Ordering::Relaxed);
                        shared.newest_applied.fetch_max(n, Ordering::Relaxed);
                    }
                    409 => {
                        assert!(
                            answer["type"].as_str().unwrap().ends_with("/stale-credentials"),
                            "{answer}"
                        );
                        let current = answer["currentExpiresAt"].as_u64().expect("currentExpiresAt");
                        assert!(
                            current > BASE + n,
                            "refused as stale, but {current} is not newer than {}",
                            BASE + n
                        );
                        shared.stale.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        assert!(
                            answer["type"].as_str().unwrap().ends_with("/credentials-busy"),
                            "{answer}"
                        );
                        shared.busy.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => panic!("write N={n}: unexpected {status} {answer}"),
                }
            }
            Op::Health => {
                let response = http.get(format!("{base}/health")).send().await.expect("health");
                let status = response.status().as_u16();
                let body: Value = response.json().await.expect("health body");
                assert_eq!(status, 200, "{body}");
                assert!(body["credentials"]["expiresAt"].as_u64().is_some(), "{body}");
                shared.health.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_reading_writing_and_polling_health_during_rotations_always_get_consistent_answers() {
    raise_open_files_limit(2 * CLIENTS as u64 + 256);
    let daemon = Daemon::start_with(Options {
        log_level: "info",
        ..Options::default()
    })
    .await;
    let pid = daemon.pid();
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let file = daemon.credentials_file();
    rewrite_in_place(&file, &rotation(1));
    // The watcher has seen the first file before the load starts (`/health` reports what it saw).
    wait_for("the first credentials on /health", Duration::from_secs(5), || async {
        let health: Value = daemon.get_public("/health").await.json().await.ok()?;
        health["credentials"]["expiresAt"].as_u64()
    })
    .await;
    let shared = Arc::new(Shared {
        base: daemon.base.clone(),
        token: daemon.token.clone(),
        epoch: AtomicU64::new(1),
        fresh: AtomicU64::new(1),
        ..Shared::default()
    });
    let idle_rss = proc_status_kib(pid, "VmRSS");

    // The CLI: rotates in place, then tells the clients that this rotation is on disk.
    let stop = Arc::new(AtomicBool::new(false));
    let rotator = {
        let (stop, shared, file) = (stop.clone(), shared.clone(), file.clone());
        std::thread::spawn(move || {
            let mut k = 1;
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(ROTATION_PACE);
                k += 1;
                rewrite_in_place(&file, &rotation(k));
                shared.epoch.store(k, Ordering::SeqCst);
            }
            k
        })
    };
    // Samples the daemon's open files (a connection each) and resident memory.
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut peak_fds, mut peak_rss) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                peak_fds = peak_fds.max(open_fds(pid));
                peak_rss = peak_rss.max(proc_status_kib(pid, "VmRSS"));
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak_fds, peak_rss)
        })
    };

    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|id| tokio::spawn(client(id, shared.clone())))
        .collect();
    let mut failures = Vec::new();
    for client in clients {
        if let Err(error) = client.await {
            failures.push(error.to_string());
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let last_rotation = rotator.join().unwrap();
    let (peak_fds, peak_rss) = sampler.join().unwrap();
    assert!(
        failures.is_empty(),
        "{} clients failed; first: {}",
        failures.len(),
        failures[0]
    );

    let count = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
    let (reads, health, applied, stale, busy) = (
        count(&shared.reads),
        count(&shared.health),
        count(&shared.applied),
        count(&shared.stale),
        count(&shared.busy),
    );
    let writes = applied + stale + busy;
    let total = reads + health + writes;
    let hwm = proc_status_kib(pid, "VmHWM");
    println!(
        "load: {total} requests from {CLIENTS} clients in {:.1} s ({:.0}/s): {reads} reads, {health} health, \
         {writes} writes ({applied} applied, {stale} stale, {busy} busy); {last_rotation} rotations in place; \
         daemon peak {peak_fds} open files, RSS {} KiB idle, peak {} KiB sampled, VmHWM {} KiB",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        idle_rss,
        peak_rss,
        hwm
    );
    assert_eq!(total, (CLIENTS * REQUESTS_PER_CLIENT) as u64);
    assert!(applied > 0 && stale > 0, "both outcomes must have been exercised");
    assert!(
        busy * 100 <= writes,
        "credentials-busy must be rare: {busy} of {writes} writes"
    );
    assert!(
        peak_fds > CLIENTS / 2,
        "the clients must really have been concurrent (peak {peak_fds} open files in the daemon)"
    );
    assert!(last_rotation > 5, "the CLI must have rotated during the run");
    assert!(
        hwm < RSS_LIMIT_KIB,
        "daemon peak RSS {hwm} KiB is over {RSS_LIMIT_KIB} KiB"
    );

    // Everyone has stopped: the file, the live read and the daemon's view agree, and hold the newest.
    let expected = (last_rotation * EPOCH).max(count(&shared.newest_applied));
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let oauth = &on_disk["claudeAiOauth"];
    assert_eq!(
        consistent_n(&oauth["accessToken"], &oauth["refreshToken"], &oauth["expiresAt"]),
        Some(expected),
        "the file holds the newest of the last rotation and the newest applied write: {on_disk}"
    );
    let (status, read) = daemon.read_credentials().await;
    assert_eq!(status, 200);
    assert_eq!(read["accessToken"], oauth["accessToken"]);
    assert_eq!(read["refreshToken"], oauth["refreshToken"]);
    assert_eq!(read["expiresAt"], oauth["expiresAt"]);
    let client = daemon.client.clone();
    let url = daemon.url("/health");
    wait_for("/health to show the final credentials", Duration::from_secs(5), || {
        let request = client.get(&url);
        async move {
            let body: Value = request.send().await.ok()?.json().await.ok()?;
            (body["credentials"]["expiresAt"] == BASE + expected).then_some(())
        }
    })
    .await;
    let leftovers: Vec<_> = std::fs::read_dir(&daemon.config_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind: {leftovers:?}");
}
