//! The registry of supervised components (`xvfb`, `chromium`, `vite`, `agent`) as `/health` and
//! `/status` show them. Supervisors publish into it; the HTTP layer only reads.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use utoipa::ToSchema;

pub const NAMES: [&str; 4] = ["xvfb", "chromium", "vite", "agent"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The agent is not spawned yet (it starts with the first session).
    Idle,
    Starting,
    Ready,
    Backoff,
    Failed,
    Stopped,
    Disabled,
    /// The agent is running a turn.
    Busy,
}

/// How a child last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastExit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    pub state: State,
    pub restarts: u32,
    pub pid: Option<u32>,
    pub last_exit: Option<LastExit>,
    /// When the component entered its current state (epoch ms).
    pub since_ms: Option<u64>,
    /// Why it is failed or in backoff; never contains a secret.
    pub reason: Option<String>,
}

impl ComponentStatus {
    pub fn disabled() -> Self {
        Self {
            state: State::Disabled,
            restarts: 0,
            pid: None,
            last_exit: None,
            since_ms: None,
            reason: None,
        }
    }
}

/// `ok` when every enabled component is ready, `starting` while some are still coming up, else `degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Ok,
    Starting,
    Degraded,
}

#[derive(Clone)]
pub struct Components {
    inner: Arc<RwLock<BTreeMap<&'static str, ComponentStatus>>>,
}

impl Default for Components {
    fn default() -> Self {
        Self::new()
    }
}

impl Components {
    /// Every known component, disabled until a supervisor takes it over.
    pub fn new() -> Self {
        let map = NAMES.iter().map(|name| (*name, ComponentStatus::disabled())).collect();
        Self {
            inner: Arc::new(RwLock::new(map)),
        }
    }

    pub fn set(&self, name: &'static str, status: ComponentStatus) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, status);
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, ComponentStatus> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

pub fn overall<'a>(statuses: impl IntoIterator<Item = &'a ComponentStatus>) -> Overall {
    let mut result = Overall::Ok;
    for status in statuses {
        match status.state {
            State::Ready | State::Disabled | State::Idle | State::Busy => {}
            State::Starting => result = Overall::Starting.max_with(result),
            State::Backoff | State::Failed | State::Stopped => return Overall::Degraded,
        }
    }
    result
}

impl Overall {
    fn max_with(self, other: Overall) -> Overall {
        if other == Overall::Degraded { other } else { self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(state: State) -> ComponentStatus {
        ComponentStatus {
            state,
            ..ComponentStatus::disabled()
        }
    }

    #[test]
    fn all_disabled_is_ok() {
        assert_eq!(overall(Components::new().snapshot().values()), Overall::Ok);
    }

    #[test]
    fn starting_and_degraded() {
        assert_eq!(
            overall([&with(State::Ready), &with(State::Starting)]),
            Overall::Starting
        );
        assert_eq!(
            overall([&with(State::Starting), &with(State::Backoff)]),
            Overall::Degraded
        );
        assert_eq!(
            overall([&with(State::Failed), &with(State::Starting)]),
            Overall::Degraded
        );
        assert_eq!(overall([&with(State::Ready), &with(State::Disabled)]), Overall::Ok);
    }
}
