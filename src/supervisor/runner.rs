//! The lifecycle of one component: wait for what it depends on, start, wait until really ready
//! (within a deadline), watch, and on any exit restart with backoff. One task per component.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::child::{self, Running};
use super::logs::LogRing;
use super::policy::{self, RestartPolicy};
use super::services::{Preflight, ReadyInput, Service};
use crate::components::{ComponentStatus, Components, LastExit, State};
use crate::events::{EventBus, now_ms};

#[derive(Debug)]
pub enum Control {
    Restart,
}

/// Published by each component for those that depend on it. `generation` grows with every start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Up {
    pub ready: bool,
    pub generation: u64,
}

pub struct Runner {
    pub service: Service,
    pub logs: Arc<LogRing>,
    pub control: mpsc::Receiver<Control>,
    pub dependency: Option<(&'static str, watch::Receiver<Up>)>,
    pub up: watch::Sender<Up>,
    pub report: Reporter,
    pub policy: RestartPolicy,
    pub ready_timeout: Duration,
    pub stop_grace: Duration,
    pub cancel: CancellationToken,
}

enum Ended {
    Exited(Option<ExitStatus>),
    NotReady(String),
    Restart,
    Dependency,
    Cancelled,
}

impl Runner {
    pub async fn run(mut self) {
        let mut failures = 0u32;
        let mut started_once = false;
        loop {
            let Some(dependency_generation) = self.wait_for_dependency().await else {
                break;
            };
            match self.service.preflight() {
                Ok(()) => {}
                Err(Preflight::Permanent(reason)) => {
                    tracing::error!(component = self.service.name(), %reason, "not starting");
                    self.report.set(State::Failed, None, Some(reason));
                    tokio::select! {
                        control = self.control.recv() => if control.is_none() { break },
                        _ = self.cancel.cancelled() => break,
                    }
                    failures = 0;
                    continue;
                }
                Err(Preflight::Retry(reason)) => {
                    let delay;
                    (failures, delay) = self.policy.after_failure(failures, Duration::ZERO, policy::jitter());
                    if !self.backoff(delay, reason).await {
                        break;
                    }
                    continue;
                }
            }

            let prepared = match self.service.prepare() {
                Ok(prepared) => prepared,
                Err(error) => {
                    let delay;
                    (failures, delay) = self.policy.after_failure(failures, Duration::ZERO, policy::jitter());
                    if !self.backoff(delay, format!("cannot prepare: {error}")).await {
                        break;
                    }
                    continue;
                }
            };
            // Subscribed before the spawn, so no line of this run is missed.
            let lines = self.logs.subscribe();
            // Restart requests made while nothing ran are satisfied by this start.
            while self.control.try_recv().is_ok() {}
            let spawned = child::spawn(prepared.command, &self.logs, prepared.child_fd.as_ref());
            drop(prepared.child_fd);
            let mut running = match spawned {
                Ok(running) => running,
                Err(error) => {
                    let delay;
                    (failures, delay) = self.policy.after_failure(failures, Duration::ZERO, policy::jitter());
                    if !self.backoff(delay, format!("cannot start: {error}")).await {
                        break;
                    }
                    continue;
                }
            };
            if started_once {
                self.report.status.restarts += 1;
            }
            started_once = true;
            let pid = running.pid;
            let started = Instant::now();
            let mut ready_at = None;
            self.report.set(State::Starting, Some(pid), None);
            tracing::info!(component = self.service.name(), pid, "started");

            let input = ReadyInput {
                lines,
                ready_fd: prepared.ready_fd,
            };
            let ready = tokio::time::timeout(self.ready_timeout, self.service.wait_ready(input));
            let ended = tokio::select! {
                result = ready => match result {
                    Ok(Ok(())) => None,
                    Ok(Err(reason)) => Some(Ended::NotReady(reason)),
                    Err(_) => Some(Ended::NotReady(format!("not ready within {} s; killed", self.ready_timeout.as_secs_f32()))),
                },
                status = running.child.wait() => Some(Ended::Exited(status.ok())),
                control = self.control.recv() => Some(if control.is_some() { Ended::Restart } else { Ended::Cancelled }),
                _ = dependency_changed(&mut self.dependency, dependency_generation) => Some(Ended::Dependency),
                _ = self.cancel.cancelled() => Some(Ended::Cancelled),
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    tracing::info!(
                        component = self.service.name(),
                        pid,
                        ms = started.elapsed().as_millis() as u64,
                        "ready"
                    );
                    ready_at = Some(Instant::now());
                    self.report.set(State::Ready, Some(pid), None);
                    self.up.send_modify(|up| {
                        up.ready = true;
                        up.generation += 1;
                    });
                    tokio::select! {
                        status = running.child.wait() => Ended::Exited(status.ok()),
                        control = self.control.recv() => if control.is_some() { Ended::Restart } else { Ended::Cancelled },
                        _ = dependency_changed(&mut self.dependency, dependency_generation) => Ended::Dependency,
                        _ = self.cancel.cancelled() => Ended::Cancelled,
                    }
                }
            };
            self.up.send_modify(|up| up.ready = false);
            let ran_for = started.elapsed();
            // Only time spent ready counts as healthy running for the backoff reset.
            let healthy_for = ready_at.map(|at| at.elapsed()).unwrap_or_default();

            match ended {
                Ended::Exited(status) => {
                    child::kill_group(pid);
                    let reason = format!("exited ({}) after {:.1} s", describe(status), ran_for.as_secs_f32());
                    tracing::warn!(component = self.service.name(), pid, %reason, "exited");
                    self.report.exited(status);
                    let delay;
                    (failures, delay) = self.policy.after_failure(failures, healthy_for, policy::jitter());
                    if !self.backoff(delay, reason).await {
                        break;
                    }
                }
                Ended::NotReady(reason) => {
                    tracing::warn!(component = self.service.name(), pid, %reason, "failed to become ready");
                    self.report.set(State::Stopped, Some(pid), Some(reason.clone()));
                    let status = stop(running, self.stop_grace).await;
                    self.report.exited(status);
                    let delay;
                    (failures, delay) = self.policy.after_failure(failures, Duration::ZERO, policy::jitter());
                    if !self.backoff(delay, reason).await {
                        break;
                    }
                }
                Ended::Restart => {
                    tracing::info!(component = self.service.name(), pid, "restart requested");
                    self.report
                        .set(State::Stopped, Some(pid), Some("restart requested".to_owned()));
                    let status = stop(running, self.stop_grace).await;
                    self.report.exited(status);
                    failures = 0;
                }
                Ended::Dependency => {
                    let name = self.dependency.as_ref().map(|(name, _)| *name).unwrap_or("dependency");
                    tracing::info!(
                        component = self.service.name(),
                        pid,
                        dependency = name,
                        "restarting after its dependency"
                    );
                    self.report
                        .set(State::Stopped, Some(pid), Some(format!("restarting after {name}")));
                    let status = stop(running, self.stop_grace).await;
                    self.report.exited(status);
                }
                Ended::Cancelled => {
                    let status = stop(running, self.stop_grace).await;
                    self.report.exited(status);
                    break;
                }
            }
        }
        self.report.set(State::Stopped, None, None);
        tracing::info!(component = self.service.name(), "stopped");
    }

    /// Waits until the dependency (if any) is ready; `None` when cancelled.
    async fn wait_for_dependency(&mut self) -> Option<u64> {
        let Some((name, dependency)) = &mut self.dependency else {
            return Some(0);
        };
        if !dependency.borrow().ready {
            self.report
                .set(State::Starting, None, Some(format!("waiting for {name}")));
        }
        tokio::select! {
            up = dependency.wait_for(|up| up.ready) => up.ok().map(|up| up.generation),
            _ = self.cancel.cancelled() => None,
        }
    }

    /// Sits in `backoff` for `delay`; a restart request cuts it short. `false` when cancelled.
    async fn backoff(&mut self, delay: Duration, reason: String) -> bool {
        tracing::info!(component = self.service.name(), delay_ms = delay.as_millis() as u64, %reason, "backing off");
        self.report.set(State::Backoff, None, Some(reason));
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            control = self.control.recv() => control.is_some(),
            _ = self.cancel.cancelled() => false,
        }
    }
}

async fn stop(running: Running, grace: Duration) -> Option<ExitStatus> {
    running.stop(grace).await
}

/// Resolves when the dependency stops being ready or restarts; never without a dependency.
async fn dependency_changed(dependency: &mut Option<(&'static str, watch::Receiver<Up>)>, generation: u64) {
    match dependency {
        Some((_, receiver)) => {
            let _ = receiver.wait_for(|up| !up.ready || up.generation != generation).await;
        }
        None => std::future::pending().await,
    }
}

fn describe(status: Option<ExitStatus>) -> String {
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("code {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => "unknown status".to_owned(),
        },
        None => "status unknown".to_owned(),
    }
}

/// Publishes a component's status to the registry and a `component` event on every state change.
pub struct Reporter {
    pub name: &'static str,
    pub components: Components,
    pub events: EventBus,
    pub status: ComponentStatus,
}

impl Reporter {
    pub fn new(name: &'static str, components: Components, events: EventBus) -> Self {
        let status = ComponentStatus {
            state: State::Starting,
            since_ms: Some(now_ms()),
            ..ComponentStatus::disabled()
        };
        components.set(name, status.clone());
        Self {
            name,
            components,
            events,
            status,
        }
    }

    fn set(&mut self, state: State, pid: Option<u32>, reason: Option<String>) {
        let changed = self.status.state != state;
        if changed {
            self.status.since_ms = Some(now_ms());
        }
        self.status.state = state;
        self.status.pid = pid;
        self.status.reason = reason;
        self.components.set(self.name, self.status.clone());
        if changed {
            self.events.publish(
                "component",
                json!({"name": self.name, "state": state, "restarts": self.status.restarts}),
            );
        }
    }

    fn exited(&mut self, status: Option<ExitStatus>) {
        self.status.last_exit = Some(LastExit {
            code: status.and_then(|s| s.code()),
            signal: status.and_then(|s| s.signal()),
            at_ms: now_ms(),
        });
        self.status.pid = None;
        self.components.set(self.name, self.status.clone());
    }
}
