//! Black-box tests: each starts the real `acp-bridge` binary with a temp HOME and config dir.

mod helper;

mod api;
mod auth;
mod credentials;
mod events;
mod fake_anthropic;
mod lifecycle;
mod supervisor;
