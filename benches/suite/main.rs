//! The performance suite: every figure of `docs/performance.md` with its budget, measured in one run and
//! printed as a table (also written to `target/bench/results.md`).
//!
//! Run everything: `scripts/bench` (builds the release binary, measures the clean build, then runs this).
//! Directly: `cargo bench --bench suite [-- --only <part>]`, parts: startup, memory, credentials, rotation,
//! relay, commit, binary. `--quick` is the smoke mode CI runs (`cargo test --bench suite -- --quick`): a few
//! rounds of everything, budgets printed but meaningless in a debug build.

#[path = "../../tests/it/helper.rs"]
#[allow(dead_code)]
mod helper;

mod binary;
mod commit;
mod credentials;
mod memory;
mod relay;
mod rotation;
mod startup;
mod table;

use table::Table;

/// How much to measure.
pub struct Settings {
    pub quick: bool,
    only: Vec<String>,
}

impl Settings {
    fn from_args() -> Settings {
        let mut settings = Settings {
            quick: false,
            only: Vec::new(),
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => settings.quick = true,
                "--only" => settings.only.extend(args.next()),
                // `cargo bench` passes `--bench`; anything else is a mistake worth stopping for.
                "--bench" => {}
                other => {
                    eprintln!("unknown argument {other:?}; see the comment at the top of benches/suite/main.rs");
                    std::process::exit(2);
                }
            }
        }
        settings
    }

    fn wants(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }

    /// `full` rounds normally, `quick` in smoke mode.
    pub fn rounds(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// The command that reproduces one part's rows.
    pub fn command(&self, part: &str) -> String {
        format!("scripts/bench --only {part}")
    }
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let settings = Settings::from_args();
    let mut table = Table::default();
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let machine = format!(
        "Machine: {} cores ({}), {}; {profile} build; {}.",
        cores(),
        cpu_model(),
        memory_total(),
        if settings.quick {
            "quick (smoke) mode"
        } else {
            "full run"
        }
    );
    println!("{machine}");
    if settings.wants("startup") {
        println!("startup");
        startup::run(&settings, &mut table).await;
    }
    if settings.wants("memory") {
        println!("memory");
        memory::run(&settings, &mut table).await;
    }
    if settings.wants("credentials") {
        println!("credentials");
        credentials::run(&settings, &mut table).await;
    }
    if settings.wants("rotation") {
        println!("rotation");
        rotation::run(&settings, &mut table).await;
    }
    if settings.wants("relay") {
        println!("relay");
        relay::run(&settings, &mut table).await;
    }
    if settings.wants("commit") {
        println!("commit");
        commit::run(&settings, &mut table);
    }
    if settings.wants("binary") {
        println!("binary");
        binary::run(&settings, &mut table);
    }

    let markdown = table.markdown(&machine);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(if settings.quick {
        "results-quick.md"
    } else {
        "results.md"
    });
    if let Err(error) = std::fs::write(&file, &markdown) {
        eprintln!("cannot write {}: {error}", file.display());
    }
    println!("\n{markdown}");
    println!("written to {}", file.display());
    let missed = table.missed();
    if settings.quick {
        println!("quick mode: the budgets are not checked (too few rounds, and a debug build under `cargo test`)");
    } else if !missed.is_empty() {
        println!("budgets missed: {}", missed.join("; "));
    }
}

fn memory_total() -> String {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| format!("{:.0} GiB RAM", kb as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
