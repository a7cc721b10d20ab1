//! The Claude credentials: the file format ([`document`]), the store that reads and writes it
//! ([`store`]) and the watcher that reports rotations made by the Claude CLI ([`watcher`]).

pub mod document;
pub mod error;
pub mod store;
pub mod watcher;

pub use error::CredentialsError;
pub use store::{CredentialsStore, Known};
