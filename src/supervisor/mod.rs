//! Supervision of Xvfb, Chromium and the Vite dev server.
//!
//! Each component is one [`runner::Runner`] task; the [`Supervisor`] owns them and hands out a cheap
//! [`SupervisorHandle`] (restart, logs). Chromium depends on Xvfb: it starts after Xvfb is ready and
//! restarts after it. On shutdown components stop in reverse dependency order.

pub mod cdp;
pub mod child;
pub mod logs;
pub mod policy;
pub mod probe;
pub mod runner;
pub mod services;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::components::Components;
use crate::events::EventBus;
use logs::LogRing;
use policy::RestartPolicy;
use runner::{Control, Reporter, Runner, Up};
use services::{Chromium, Service, Vite, Xvfb};

/// What the supervisor needs to know (from `Config`).
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    pub xvfb: Option<Xvfb>,
    pub chromium: Option<Chromium>,
    pub vite: Option<Vite>,
    pub ready_timeout: Duration,
    pub stop_grace: Duration,
    pub policy: RestartPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error("there is no component named `{name}`")]
    Unknown { name: String },
    #[error("component `{name}` is disabled")]
    Disabled { name: &'static str },
    #[error("component `{name}` is shutting down")]
    Stopping { name: &'static str },
}

struct Entry {
    control: mpsc::Sender<Control>,
    logs: Arc<LogRing>,
}

/// Cheap to clone; what the HTTP layer uses.
#[derive(Clone, Default)]
pub struct SupervisorHandle {
    entries: Arc<BTreeMap<&'static str, Entry>>,
    cdp_port: Option<u16>,
}

impl SupervisorHandle {
    fn entry(&self, name: &str) -> Result<(&'static str, &Entry), ComponentError> {
        match self.entries.get_key_value(name) {
            Some((name, entry)) => Ok((name, entry)),
            None => match crate::components::NAMES.iter().find(|n| **n == name && **n != "agent") {
                Some(name) => Err(ComponentError::Disabled { name }),
                None => Err(ComponentError::Unknown { name: name.to_owned() }),
            },
        }
    }

    /// Asks a component to restart (what depends on it restarts after it).
    pub fn restart(&self, name: &str) -> Result<(), ComponentError> {
        let (name, entry) = self.entry(name)?;
        match entry.control.try_send(Control::Restart) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ComponentError::Stopping { name }),
        }
    }

    /// The last `lines` lines of a component's output.
    pub fn logs(&self, name: &str, lines: usize) -> Result<Vec<Arc<str>>, ComponentError> {
        Ok(self.entry(name)?.1.logs.tail(lines))
    }

    /// The CDP port when chromium is supervised.
    pub fn cdp_port(&self) -> Option<u16> {
        self.cdp_port
    }
}

/// Owns the component tasks.
pub struct Supervisor {
    handle: SupervisorHandle,
    /// In start order; stopped in reverse.
    tasks: Vec<(&'static str, CancellationToken, JoinHandle<()>)>,
}

impl Supervisor {
    /// Starts every enabled component right away (Xvfb and Vite in parallel, Chromium after Xvfb).
    pub fn start(config: SupervisorConfig, components: Components, events: EventBus) -> Self {
        let mut entries = BTreeMap::new();
        let mut tasks = Vec::new();
        let mut xvfb_up: Option<watch::Receiver<Up>> = None;
        let cdp_port = config.chromium.as_ref().map(|c| c.port);

        let services = [
            config.xvfb.map(Service::Xvfb),
            config.vite.map(Service::Vite),
            config.chromium.map(Service::Chromium),
        ];
        for service in services.into_iter().flatten() {
            let name = service.name();
            let (control_tx, control_rx) = mpsc::channel(4);
            let (up_tx, up_rx) = watch::channel(Up::default());
            let logs = LogRing::new(name, service.noise());
            let dependency = match &service {
                Service::Chromium(_) => xvfb_up.clone().map(|up| ("xvfb", up)),
                _ => None,
            };
            if let Service::Xvfb(_) = service {
                xvfb_up = Some(up_rx);
            }
            let cancel = CancellationToken::new();
            let runner = Runner {
                service,
                logs: logs.clone(),
                control: control_rx,
                dependency,
                up: up_tx,
                report: Reporter::new(name, components.clone(), events.clone()),
                policy: config.policy,
                ready_timeout: config.ready_timeout,
                stop_grace: config.stop_grace,
                cancel: cancel.clone(),
            };
            tasks.push((name, cancel, tokio::spawn(runner.run())));
            entries.insert(
                name,
                Entry {
                    control: control_tx,
                    logs,
                },
            );
        }
        Self {
            handle: SupervisorHandle {
                entries: Arc::new(entries),
                cdp_port,
            },
            tasks,
        }
    }

    pub fn handle(&self) -> SupervisorHandle {
        self.handle.clone()
    }

    /// Stops every component, dependents first, and waits until their processes are gone.
    pub async fn shutdown(mut self) {
        // Chromium (started last, depends on Xvfb) goes first; Xvfb and Vite after it, together.
        if let Some(position) = self.tasks.iter().position(|(name, _, _)| *name == "chromium") {
            let (_, cancel, task) = self.tasks.remove(position);
            cancel.cancel();
            let _ = task.await;
        }
        for (_, cancel, _) in &self.tasks {
            cancel.cancel();
        }
        for (_, _, task) in self.tasks {
            let _ = task.await;
        }
    }
}

/// `/usr/lib/chromium/chromium` if present (Debian's `/usr/bin/chromium` is a wrapper script), else `chromium` on PATH.
pub fn default_chromium_bin() -> String {
    let debian = PathBuf::from("/usr/lib/chromium/chromium");
    if debian.is_file() {
        debian.display().to_string()
    } else {
        "chromium".to_owned()
    }
}
