//! The binary: size of the release binary (`[profile.release]`: thin LTO, one codegen unit, stripped) and the
//! time of a clean release build, which `scripts/bench` measures and passes in `ACP_BRIDGE_BUILD_SECONDS`.

use crate::Settings;
use crate::table::{Budget, Row, Samples, Table};

pub fn run(settings: &Settings, table: &mut Table) {
    let binary = env!("CARGO_BIN_EXE_acp-bridge");
    let bytes = std::fs::metadata(binary).expect("the daemon binary").len();
    let mut size = Samples::default();
    size.push(bytes as f64 / 1024.0 / 1024.0);
    table.add(Row {
        figure: format!(
            "binary size ({})",
            if cfg!(debug_assertions) {
                "debug build"
            } else {
                "release, stripped"
            }
        ),
        unit: "MiB",
        budget: Budget::None,
        samples: size,
        of: "build".into(),
        command: settings.command("binary"),
    });
    match std::env::var("ACP_BRIDGE_BUILD_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(seconds) => {
            let mut build = Samples::default();
            build.push(seconds);
            table.add(Row {
                figure: format!(
                    "clean release build (`cargo build --release --locked`, {} jobs)",
                    crate::cores()
                ),
                unit: "s",
                budget: Budget::None,
                samples: build,
                of: "build".into(),
                command: "scripts/bench".into(),
            });
        }
        None => table
            .note("clean build time not measured: `scripts/bench` measures it (not in --quick or --only runs)".into()),
    }
}
