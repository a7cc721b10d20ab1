//! Command line and environment: every flag of `acp-bridge serve` also reads `ACP_BRIDGE_<FLAG>`,
//! so a systemd `EnvironmentFile` can configure the daemon. Everything ends up in one [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::FalseyValueParser;
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::agent::AgentConfig;
use crate::agent::permission::PermissionPolicy;
use crate::repo::Author;
use crate::secret::Secret;
use crate::supervisor::SupervisorConfig;
use crate::supervisor::policy::RestartPolicy;
use crate::supervisor::services::{Chromium, Vite, Xvfb};

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
    #[arg(long, env = "ACP_BRIDGE_INSECURE_NO_AUTH", value_parser = FalseyValueParser::new(), action = ArgAction::SetTrue)]
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

    /// X display number Xvfb serves and Chromium uses (`99` or `:99`).
    #[arg(long, env = "ACP_BRIDGE_DISPLAY", default_value = ":99", value_parser = parse_display)]
    pub display: u32,

    /// Chromium's remote debugging (CDP) port, bound to 127.0.0.1.
    #[arg(long, env = "ACP_BRIDGE_CDP_PORT", default_value_t = 9222)]
    pub cdp_port: u16,

    /// The Vite dev server's port.
    #[arg(long, env = "ACP_BRIDGE_VITE_PORT", default_value_t = 5173)]
    pub vite_port: u16,

    /// The address the Vite dev server listens on (0.0.0.0 so E2B's proxy can reach it).
    #[arg(long, env = "ACP_BRIDGE_VITE_HOST", default_value = "0.0.0.0")]
    pub vite_host: String,

    /// The Xvfb program.
    #[arg(long, env = "ACP_BRIDGE_XVFB_BIN", default_value = "Xvfb")]
    pub xvfb_bin: String,

    /// The Chromium program [default: /usr/lib/chromium/chromium, else `chromium` on PATH].
    #[arg(long, env = "ACP_BRIDGE_CHROMIUM_BIN")]
    pub chromium_bin: Option<String>,

    /// A shell command replacing `node node_modules/vite/bin/vite.js --host <vite-host> --port <vite-port> --strictPort`
    /// (run with `exec` in the app dir; `$PORT` holds the port).
    #[arg(long, env = "ACP_BRIDGE_VITE_COMMAND")]
    pub vite_command: Option<String>,

    /// The page Chromium opens [default: http://localhost:<vite-port>].
    #[arg(long, env = "ACP_BRIDGE_CHROMIUM_URL")]
    pub chromium_url: Option<String>,

    /// Chromium's profile directory [default: $HOME/.cache/acp-bridge/chromium].
    #[arg(long, env = "ACP_BRIDGE_CHROMIUM_PROFILE_DIR")]
    pub chromium_profile_dir: Option<PathBuf>,

    /// Do not run Xvfb (Chromium, unless disabled too, then expects another X server on --display).
    #[arg(long, env = "ACP_BRIDGE_NO_XVFB", value_parser = FalseyValueParser::new(), action = ArgAction::SetTrue)]
    pub no_xvfb: bool,

    /// Do not run Chromium.
    #[arg(long, env = "ACP_BRIDGE_NO_CHROMIUM", value_parser = FalseyValueParser::new(), action = ArgAction::SetTrue)]
    pub no_chromium: bool,

    /// Do not run the Vite dev server.
    #[arg(long, env = "ACP_BRIDGE_NO_VITE", value_parser = FalseyValueParser::new(), action = ArgAction::SetTrue)]
    pub no_vite: bool,

    /// Seconds a component may take to become ready before it is killed and counted as a failed start.
    #[arg(long, env = "ACP_BRIDGE_READY_TIMEOUT", default_value = "30", value_parser = parse_seconds)]
    pub ready_timeout: Duration,

    /// Seconds a component gets between SIGTERM and SIGKILL when it is stopped.
    #[arg(long, env = "ACP_BRIDGE_STOP_GRACE", default_value = "5", value_parser = parse_seconds)]
    pub stop_grace: Duration,

    /// The ACP agent program (the Claude Code ACP adapter).
    #[arg(long, env = "ACP_BRIDGE_AGENT_COMMAND", default_value = "claude-agent-acp")]
    pub agent_command: String,

    /// An argument for the agent program (repeatable; in the environment, comma-separated).
    #[arg(
        long = "agent-arg",
        env = "ACP_BRIDGE_AGENT_ARGS",
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub agent_args: Vec<String>,

    /// Name of a daemon environment variable passed through to the agent (repeatable; comma-separated in the environment).
    #[arg(
        long = "agent-env-pass",
        env = "ACP_BRIDGE_AGENT_ENV_PASS",
        value_delimiter = ',',
        default_value = "ANTHROPIC_BASE_URL,HTTPS_PROXY,HTTP_PROXY,NO_PROXY,https_proxy,http_proxy,no_proxy,NODE_EXTRA_CA_CERTS"
    )]
    pub agent_env_pass: Vec<String>,

    /// Seconds a turn's agent may stay silent (no update, request or answer) before the turn is cancelled as
    /// hung; 0 turns the limit off. Not a turn timeout: a turn may run as long as the agent keeps talking.
    #[arg(long, env = "ACP_BRIDGE_AGENT_IDLE_TIMEOUT", default_value = "600", value_parser = parse_seconds)]
    pub agent_idle_timeout: Duration,

    /// How the agent's permission requests are answered.
    #[arg(long, env = "ACP_BRIDGE_PERMISSION_POLICY", value_enum, default_value = "allow")]
    pub permission_policy: PermissionPolicy,

    /// The Playwright MCP server attached to every session while Chromium is enabled; empty turns it off
    /// [default: playwright-mcp --cdp-endpoint http://127.0.0.1:<cdp-port>].
    #[arg(long, env = "ACP_BRIDGE_PLAYWRIGHT_MCP_COMMAND")]
    pub playwright_mcp_command: Option<String>,

    /// The app-builder system prompt appended to Claude Code's own (the image ships one).
    #[arg(long, env = "ACP_BRIDGE_SYSTEM_PROMPT_FILE")]
    pub system_prompt_file: Option<PathBuf>,

    /// The author and committer of the app's commits ("Name <email>"); no git config is needed.
    #[arg(
        long,
        env = "ACP_BRIDGE_GIT_AUTHOR",
        default_value = "acp-bridge <acp-bridge@localhost>"
    )]
    pub git_author: Author,

    /// Seconds to let in-flight requests finish after SIGTERM before exiting anyway.
    #[arg(long, env = "ACP_BRIDGE_SHUTDOWN_GRACE", default_value_t = 10)]
    pub shutdown_grace: u64,

    /// Seconds a client has to send a request's head (an idle keep-alive connection is closed after this long).
    #[arg(long, env = "ACP_BRIDGE_HEAD_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub head_timeout: Duration,

    /// Seconds a client has to send a request's body once its head has arrived (else 408).
    #[arg(long, env = "ACP_BRIDGE_BODY_TIMEOUT", default_value = "30", value_parser = parse_seconds)]
    pub body_timeout: Duration,

    /// Connections served at once; past this many, new ones wait in the listen queue until one closes.
    #[arg(long, env = "ACP_BRIDGE_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
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
    pub http_limits: crate::http::server::Limits,
    pub supervisor: SupervisorConfig,
    pub agent: AgentConfig,
    pub git_author: Author,
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
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| "/root".into());
        let xvfb = (!args.no_xvfb).then(|| Xvfb {
            bin: args.xvfb_bin.clone(),
            display: args.display,
        });
        let chromium = (!args.no_chromium).then(|| Chromium {
            bin: args
                .chromium_bin
                .clone()
                .unwrap_or_else(crate::supervisor::default_chromium_bin),
            display: args.display,
            port: args.cdp_port,
            url: args
                .chromium_url
                .clone()
                .unwrap_or_else(|| format!("http://localhost:{}", args.vite_port)),
            profile_dir: args
                .chromium_profile_dir
                .clone()
                .unwrap_or_else(|| home.join(".cache/acp-bridge/chromium")),
        });
        let vite = (!args.no_vite).then(|| Vite {
            app_dir: args.app_dir.clone(),
            host: args.vite_host.clone(),
            port: args.vite_port,
            command: args.vite_command.clone().filter(|c| !c.trim().is_empty()),
        });
        let supervisor = SupervisorConfig {
            xvfb,
            chromium,
            vite,
            ready_timeout: args.ready_timeout,
            stop_grace: args.stop_grace,
            policy: RestartPolicy::default(),
        };
        let claude_config_dir = args.claude_config_dir.clone().unwrap_or_else(default_claude_config_dir);
        let agent = AgentConfig {
            command: args.agent_command.clone(),
            args: args.agent_args.clone(),
            env_pass: args
                .agent_env_pass
                .iter()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect(),
            permission_policy: args.permission_policy,
            // An empty command turns Playwright MCP off.
            playwright_mcp: (!args.no_chromium)
                .then(|| {
                    args.playwright_mcp_command
                        .clone()
                        .unwrap_or_else(|| format!("playwright-mcp --cdp-endpoint http://127.0.0.1:{}", args.cdp_port))
                })
                .filter(|command| !command.trim().is_empty()),
            system_prompt_file: args.system_prompt_file.clone(),
            display: args.display,
            app_dir: args.app_dir.clone(),
            claude_config_dir: claude_config_dir.clone(),
            stop_grace: args.stop_grace,
            idle_timeout: (!args.agent_idle_timeout.is_zero()).then_some(args.agent_idle_timeout),
        };
        Self {
            git_author: args.git_author.clone(),
            agent,
            supervisor,
            listen: args.listen,
            auth,
            claude_config_dir,
            app_dir: args.app_dir,
            log_format: args.log_format,
            log_level: args.log_level,
            shutdown_grace: Duration::from_secs(args.shutdown_grace),
            http_limits: crate::http::server::Limits {
                head_timeout: args.head_timeout.max(Duration::from_millis(1)),
                body_timeout: args.body_timeout.max(Duration::from_millis(1)),
                max_connections: args.max_connections as usize,
            },
        }
    }

    pub fn credentials_file(&self) -> PathBuf {
        self.claude_config_dir.join(".credentials.json")
    }
}

/// A number of seconds, fractions allowed, from 0 to one hour.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if !(0.0..=3600.0).contains(&seconds) {
        return Err(format!("`{text}` must be between 0 and 3600 seconds"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// `:99` or `99`.
fn parse_display(text: &str) -> Result<u32, String> {
    text.trim()
        .trim_start_matches(':')
        .parse()
        .map_err(|_| format!("`{text}` is not an X display like :99"))
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
    fn durations_must_be_finite_seconds_in_range() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["NaN", "inf", "-1", "abc", "4000"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert!(Cli::try_parse_from(["acp-bridge", "serve", "--ready-timeout", "NaN"]).is_err());
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
