//! Black-box tests: each starts the real `acp-bridge` binary with a temp HOME and config dir.

mod helper;
mod history;
mod image;

mod agent;
mod api;
mod auth;
mod credentials;
mod e2e;
mod events;
mod fake_anthropic;
mod faults;
mod lifecycle;
mod load;
mod malformed;
mod secrets;
mod security;
mod supervisor;
