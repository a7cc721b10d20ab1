//! Command line and environment: every flag of `acp-bridge serve` also reads `ACP_BRIDGE_<FLAG>`,
//! so a systemd `EnvironmentFile` can configure the daemon. Everything ends up in one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::secret::Secret;

#[derive(Debug, Parser)]
#[command(name = "acp-bridge", version, about = "Daemon inside each app-builder sandbox VM")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "ACP_BRIDGE_LISTEN", default_value = "0.0.0.0:8420")]
    pub listen: SocketAddr,

    /// File holding the bearer token. It may appear or change while the daemon runs.
    #[arg(long, env = "ACP_BRIDGE_TOKEN_FILE", default_value = "/run/acp-bridge/token")]
    pub token_file: PathBuf,

    /// The bearer token itself (takes precedence over --token-file).
    #[arg(long, env = "ACP_BRIDGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Serve every endpoint without authentication. Local development only.
    #[arg(long, env = "ACP_BRIDGE_INSECURE_NO_AUTH")]
    pub insecure_no_auth: bool,

    /// Claude configuration directory holding `.credentials.json`
    /// [default: $CLAUDE_CONFIG_DIR, else $HOME/.claude].
    #[arg(long, env = "ACP_BRIDGE_CLAUDE_CONFIG_DIR")]
    pub claude_config_dir: Option<PathBuf>,

    /// The app the agent builds.
    #[arg(long, env = "ACP_BRIDGE_APP_DIR", default_value = "/app")]
    pub app_dir: PathBuf,

    /// Log line format.
    #[arg(long, env = "ACP_BRIDGE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in tracing's `EnvFilter` syntax.
    #[arg(long, env = "ACP_BRIDGE_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Seconds to let in-flight requests finish after SIGTERM before exiting anyway.
    #[arg(long, env = "ACP_BRIDGE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,
}

/// How requests are authenticated.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// `--insecure-no-auth`: everything is public.
    Disabled,
    /// `--token`: a fixed token.
    Token(Secret),
    /// `--token-file`: read and watched; absent means not provisioned.
    TokenFile(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub auth: AuthConfig,
    pub claude_config_dir: PathBuf,
    pub app_dir: PathBuf,
    pub log_format: LogFormat,
    pub log_level: String,
    pub shutdown_grace: Duration,
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Self {
        let auth = if args.insecure_no_auth {
            AuthConfig::Disabled
        } else if let Some(token) = args.token.filter(|t| !t.trim().is_empty()) {
            AuthConfig::Token(Secret::new(token.trim()))
        } else {
            AuthConfig::TokenFile(args.token_file)
        };
        Self {
            listen: args.listen,
            auth,
            claude_config_dir: args.claude_config_dir.unwrap_or_else(default_claude_config_dir),
            app_dir: args.app_dir,
            log_format: args.log_format,
            log_level: args.log_level,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
        }
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.claude_config_dir.join(".credentials.json")
    }
}

/// `$CLAUDE_CONFIG_DIR`, else `$HOME/.claude` — where the Claude CLI itself looks.
fn default_claude_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".claude")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        let cli = Cli::try_parse_from(args).expect("valid arguments");
        let Command::Serve(serve) = cli.command;
        Config::from_args(serve)
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = parse(&["acp-bridge", "serve", "--claude-config-dir", "/c"]);
        assert_eq!(config.listen, "0.0.0.0:8420".parse().unwrap());
        assert!(matches!(config.auth, AuthConfig::TokenFile(ref p) if p == &PathBuf::from("/run/acp-bridge/token")));
        assert_eq!(config.app_dir, PathBuf::from("/app"));
        assert_eq!(config.credentials_file(), PathBuf::from("/c/.credentials.json"));
    }

    #[test]
    fn token_flag_wins_over_token_file_and_no_auth_wins_over_both() {
        let config = parse(&["acp-bridge", "serve", "--token", "t0k", "--claude-config-dir", "/c"]);
        assert!(matches!(config.auth, AuthConfig::Token(ref t) if t.expose() == "t0k"));
        let config = parse(&[
            "acp-bridge",
            "serve",
            "--token",
            "t0k",
            "--insecure-no-auth",
            "--claude-config-dir",
            "/c",
        ]);
        assert!(matches!(config.auth, AuthConfig::Disabled));
    }

    #[test]
    fn debug_output_of_the_config_hides_the_token() {
        let config = parse(&[
            "acp-bridge",
            "serve",
            "--token",
            "hunter2-token",
            "--claude-config-dir",
            "/c",
        ]);
        assert!(!format!("{config:?}").contains("hunter2-token"));
    }
}
