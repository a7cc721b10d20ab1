//! Wiring: builds every part, serves HTTP, and shuts everything down when `shutdown` resolves.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::auth::Auth;
use crate::components::Components;
use crate::config::{AuthConfig, Config};
use crate::credentials::{self, CredentialsStore};
use crate::events::EventBus;
use crate::history::AppHistory;
use crate::http::{self, AppState, DaemonInfo};
use crate::supervisor::Supervisor;
use crate::systemd;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {what}")]
    Watch {
        what: &'static str,
        #[source]
        source: notify::Error,
    },
    #[error("the HTTP server failed")]
    Serve {
        #[source]
        source: std::io::Error,
    },
}

/// Runs the daemon until `shutdown` resolves (SIGTERM/SIGINT in `main`, anything in tests).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AppError> {
    let started = Instant::now();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();

    let auth = Auth::new(&config.auth);
    if matches!(config.auth, AuthConfig::Disabled) {
        tracing::warn!(
            "--insecure-no-auth: every endpoint is open to anyone who can reach the port; local development only"
        );
    }
    let events = EventBus::new();
    let credentials = CredentialsStore::new(config.claude_config_dir.clone(), events.clone());

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Bind {
            addr: config.listen,
            source,
        })?;
    let listen = listener.local_addr().map_err(|source| AppError::Bind {
        addr: config.listen,
        source,
    })?;

    auth.spawn_token_watch(cancel.clone(), &tracker)
        .await
        .map_err(|source| AppError::Watch {
            what: "the token file",
            source,
        })?;
    credentials.remove_stale_temp_files();
    credentials::watcher::spawn(credentials.clone(), cancel.clone(), &tracker)
        .await
        .map_err(|source| AppError::Watch {
            what: "the credentials file",
            source,
        })?;

    let components = Components::new();
    let supervisor = Supervisor::start(config.supervisor.clone(), components.clone(), events.clone());
    let history = AppHistory::open(&config.app_dir, config.git_author.clone(), events.clone()).await;
    let agent = Agent::new(
        config.agent.clone(),
        credentials.clone(),
        events.clone(),
        components.clone(),
        history.clone(),
    );
    let state = AppState {
        agent: agent.clone(),
        history,
        auth,
        credentials,
        events,
        components,
        supervisor: supervisor.handle(),
        info: Arc::new(DaemonInfo {
            started,
            listen,
            app_dir: config.app_dir.clone(),
        }),
        shutdown: cancel.clone(),
    };
    let app = http::router(state);
    release_startup_garbage();
    let mut serving = tokio::spawn(http::server::serve(listener, app, config.http_limits, cancel.clone()));
    tracing::info!(addr = %listen, version = env!("CARGO_PKG_VERSION"), "listening");
    systemd::announce_ready(cancel.clone(), &tracker);

    tokio::select! {
        _ = shutdown => tracing::info!("shutdown requested"),
        result = &mut serving => {
            cancel.cancel();
            agent.shutdown(config.shutdown_grace).await;
            supervisor.shutdown().await;
            return match result {
                Ok(()) => Ok(()),
                Err(join) => Err(AppError::Serve { source: std::io::Error::other(join) }),
            };
        }
    }

    let _ = systemd::notify("STOPPING=1");
    cancel.cancel();
    // The HTTP drain and the agent's shutdown run together: a streamed turn ends (cancelled, committed) only
    // once the agent has been told, and only then can its response finish.
    let drain = async {
        match tokio::time::timeout(config.shutdown_grace, &mut serving).await {
            Ok(_) => tracing::info!("in-flight requests finished"),
            Err(_) => {
                tracing::warn!(
                    grace_s = config.shutdown_grace.as_secs(),
                    "in-flight requests still running after the grace period; closing them"
                );
                serving.abort();
            }
        }
    };
    tokio::join!(drain, agent.shutdown(config.shutdown_grace));
    supervisor.shutdown().await;
    tracker.close();
    tracker.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// Hands the heap pages that start-up freed back to the kernel. Building the router and its OpenAPI document
/// allocates and drops a few hundred KiB in one burst, and glibc's malloc keeps freed pages mapped: without this
/// they would stay in the RSS of every sandbox's daemon for its whole life.
fn release_startup_garbage() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's own heaps; it touches no live allocation.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}
