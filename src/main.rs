use std::process::ExitCode;

use acp_bridge::config::{Cli, Command, Config, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let Command::Serve(args) = Cli::parse().command;
    let config = Config::from_args(args);
    init_logging(config.log_format, &config.log_level);
    // Before any thread exists: it sets a libgit2 global.
    acp_bridge::repo::limit_object_cache();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    // Installed before the daemon binds its port: a SIGTERM that arrives as soon as it serves must stop it
    // cleanly, not kill it with the default action.
    let shutdown = {
        let _context = runtime.enter();
        shutdown_signal()
    };
    match runtime.block_on(acp_bridge::app::run(config, shutdown)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, cause = std::error::Error::source(&error).map(ToString::to_string), "acp-bridge failed");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}

/// Installs the SIGTERM and SIGINT handlers now (it needs the runtime's context); the future resolves on the
/// first of them.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; the daemon stops only when killed");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
