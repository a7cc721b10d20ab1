//! `acp-bridge`: the daemon inside each app-builder sandbox VM.
//!
//! Crate map:
//! - [`config`]: flags and `ACP_BRIDGE_*` variables, folded into one [`config::Config`].
//! - [`agent`]: the ACP bridge — the Claude Code adapter, sessions, prompt turns.
//! - [`app`]: wiring and lifecycle (`app::run(config, shutdown)`).
//! - [`http`]: the API — router, one module per resource, problem+json errors, OpenAPI.
//! - [`auth`]: the bearer token, fixed or from a watched file.
//! - [`credentials`]: the Claude credentials file — format, store, watcher.
//! - [`events`]: the event bus behind `GET /events`.
//! - [`components`]: the state of supervised components, as `/health` shows it.
//! - [`repo`]: the app folder as a git repository — turn commits, history, undo, redo, checkout.
//! - [`history`]: the app's history as the daemon uses it — gated with turns, off the runtime, with events.
//! - [`fswatch`]: watching a file whose directory may not exist yet.
//! - [`json_depth`]: telling JSON nested too deeply apart from malformed JSON.
//! - [`supervisor`]: Xvfb, Chromium and Vite — start, readiness, restart with backoff, logs, screenshot.
//! - [`secret`]: a type for values that must never be printed.
//! - [`systemd`]: `READY=1` and the watchdog.

pub mod agent;
pub mod app;
pub mod auth;
pub mod components;
pub mod config;
pub mod credentials;
pub mod events;
pub mod fswatch;
pub mod history;
pub mod http;
pub mod json_depth;
pub mod repo;
pub mod secret;
pub mod supervisor;
pub mod systemd;

/// An error and its sources, joined with `: ` — for log lines (never for responses).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
