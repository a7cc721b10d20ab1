//! Spawning the agent with an environment that is built, never inherited, and stopping its whole group.

use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;

use super::AgentConfig;
use super::rpc::Connection;
use crate::secret::Secret;
use crate::supervisor::child::{self, Stdio3};
use crate::supervisor::logs::LogRing;

/// Which plan the agent's turns run on.
#[derive(Clone, PartialEq, Eq)]
pub enum AuthMode {
    /// The user's own Claude plan: the CLI reads (and rotates) the credentials file itself.
    OAuth,
    /// A shared API key.
    ApiKey(Secret),
}

impl std::fmt::Debug for AuthMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl AuthMode {
    pub fn name(&self) -> &'static str {
        match self {
            AuthMode::OAuth => "oauth",
            AuthMode::ApiKey(_) => "apiKey",
        }
    }
}

/// Names a pass-through list can never carry: the daemon's own settings (its bearer token among them) and
/// what the daemon sets itself.
fn may_pass(name: &str) -> bool {
    const OWN: [&str; 9] = [
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "TZ",
        "IS_SANDBOX",
        "DISPLAY",
        "CLAUDE_CONFIG_DIR",
        child::OWNER_ENV,
    ];
    !name.starts_with("ACP_BRIDGE_") && !OWN.contains(&name)
}

/// The beta header OAuth inference requires.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

pub struct AgentProcess {
    pub connection: Connection,
    pub pid: u32,
    pub mode: AuthMode,
    pub generation: u64,
    /// Becomes `true` once the process has exited.
    exited: watch::Receiver<bool>,
    /// How it exited, once it has.
    status: Arc<std::sync::Mutex<Option<std::process::ExitStatus>>>,
}

impl AgentProcess {
    pub fn spawn(config: &AgentConfig, mode: AuthMode, generation: u64, logs: &Arc<LogRing>) -> std::io::Result<Self> {
        let mut extra: Vec<(&str, String)> = vec![
            ("IS_SANDBOX", "1".to_owned()),
            ("DISPLAY", format!(":{}", config.display)),
            ("CLAUDE_CONFIG_DIR", config.claude_config_dir.display().to_string()),
        ];
        for name in config.env_pass.iter().filter(|name| may_pass(name)) {
            if let Ok(value) = std::env::var(name) {
                extra.push((name.as_str(), value));
            }
        }
        match &mode {
            AuthMode::OAuth => extra.push(("ANTHROPIC_BETAS", OAUTH_BETA.to_owned())),
            AuthMode::ApiKey(key) => extra.push(("ANTHROPIC_API_KEY", key.expose().to_owned())),
        }
        // Pass-through never smuggles in credentials that would override the chosen mode.
        let overriding = [
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_AUTH_TOKEN",
            "CLAUDE_CODE_OAUTH_TOKEN",
            "ANTHROPIC_BETAS",
        ];
        let own_auth = match &mode {
            AuthMode::OAuth => "ANTHROPIC_BETAS",
            AuthMode::ApiKey(_) => "ANTHROPIC_API_KEY",
        };
        extra.retain(|(name, _)| !overriding.contains(name) || *name == own_auth);

        let mut command = child::command(&config.command, &extra);
        command.args(&config.args).current_dir(&config.app_dir);
        let mut running = child::spawn_with(command, logs, None, Stdio3::Protocol)?;
        let (Some(stdin), Some(stdout)) = (running.child.stdin.take(), running.child.stdout.take()) else {
            return Err(std::io::Error::other("the agent's pipes are missing"));
        };
        let connection = Connection::start(stdin, stdout);
        let pid = running.pid;
        let (exited_tx, exited) = watch::channel(false);
        let status = Arc::new(std::sync::Mutex::new(None));
        let slot = status.clone();
        tokio::spawn(async move {
            let status = running.child.wait().await.ok();
            child::kill_group(pid);
            tracing::info!(pid, ?status, "agent process exited");
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = status;
            let _ = exited_tx.send(true);
        });
        Ok(Self {
            connection,
            pid,
            mode,
            generation,
            exited,
            status,
        })
    }

    pub fn is_alive(&self) -> bool {
        !*self.exited.borrow() && self.connection.is_alive()
    }

    /// A receiver that turns `true` when the process exits, and where its exit status will be.
    pub fn exited(
        &self,
    ) -> (
        watch::Receiver<bool>,
        Arc<std::sync::Mutex<Option<std::process::ExitStatus>>>,
    ) {
        (self.exited.clone(), self.status.clone())
    }

    /// SIGTERM to the group, `grace` to exit, then SIGKILL to the group. Returns how it exited.
    pub async fn stop(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let group = Pid::from_raw(self.pid as i32);
        let _ = killpg(group, Signal::SIGTERM);
        if tokio::time::timeout(grace, self.exited.wait_for(|gone| *gone))
            .await
            .is_err()
        {
            let _ = killpg(group, Signal::SIGKILL);
            let _ = self.exited.wait_for(|gone| *gone).await;
        }
        let _ = killpg(group, Signal::SIGKILL);
        *self.status.lock().unwrap_or_else(|e| e.into_inner())
    }
}
