//! One prompt turn: send `session/prompt`, relay every update, answer permission requests by policy,
//! keep the updates that arrive just after the response, then finish with `done` or `error`.
//! The turn runs in its own task: a client that stops listening does not cancel it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::permission::{self, PermissionPolicy};
use super::rpc::{CallError, Connection, Inbound};
use super::{Agent, TurnInfo};
use crate::http::problem::TYPE_PREFIX;
use crate::repo;

/// After the prompt's response, updates keep belonging to the turn until this much quiet…
const LATE_QUIET: Duration = Duration::from_millis(25);
/// …but no longer than this.
const LATE_MAX: Duration = Duration::from_millis(500);
/// How many events may wait for the prompt's client. When it is full the turn waits for the client (and the
/// agent for the turn): a flood of updates costs bounded memory.
pub const CLIENT_BUFFER: usize = 256;
/// A client that takes nothing for this long is cut off; the turn goes on (its events are on `/events`).
const CLIENT_STALL: Duration = Duration::from_secs(10);
/// After an idle agent was sent `session/cancel`, how long it gets to answer before it is stopped.
const IDLE_CANCEL_GRACE: Duration = Duration::from_secs(5);

/// What a streaming client receives, in order; the last one is `Done` or `Error`.
#[derive(Debug, Clone)]
pub enum TurnEvent {
    /// The ACP `session/update` notification's `update` object, verbatim.
    Update(Value),
    /// `{"toolCall", "options", "selected"}`.
    Permission(Value),
    /// `{"stopReason", "commit", "credentialsRotated"}`.
    Done(Value),
    /// A problem object.
    Error(Value),
}

pub type Receiver = mpsc::Receiver<TurnEvent>;

pub struct Turn {
    /// Held until the turn's commit is written (see [`crate::history`]).
    pub gate: crate::history::TurnGate,
    pub agent: Agent,
    pub connection: Connection,
    pub info: TurnInfo,
    pub prompt: Value,
    pub policy: PermissionPolicy,
    /// Taken by [`Turn::run`]: the stream closes when the turn drops it.
    pub stream: Option<mpsc::Sender<TurnEvent>>,
}

/// The prompt's client, as the turn sees it: gone once it stops listening or falls too far behind.
struct Client {
    sender: Option<mpsc::Sender<TurnEvent>>,
    turn_id: String,
}

impl Client {
    async fn send(&mut self, event: TurnEvent) {
        let Some(sender) = &self.sender else { return };
        match tokio::time::timeout(CLIENT_STALL, sender.send(event)).await {
            Ok(Ok(())) => {}
            // It stopped listening: the turn goes on without it.
            Ok(Err(_)) => self.sender = None,
            Err(_) => {
                tracing::warn!(
                    turn = %self.turn_id,
                    stalled_s = CLIENT_STALL.as_secs(),
                    "the prompt's client stopped reading; its stream is closed, the turn goes on (follow it on /events)"
                );
                self.sender = None;
            }
        }
    }
}

enum Ended {
    Response(Value),
    AgentError(super::rpc::RpcError),
    Crashed,
}

/// The idle limit (`--agent-idle-timeout`): first a cancel, then, if the agent still says nothing, a stop.
struct Idle {
    limit: Option<Duration>,
    deadline: Option<Instant>,
    /// Set once the limit was reached: the turn ends as `agent-idle`, however the agent then ends it.
    tripped: bool,
}

impl Idle {
    fn new(limit: Option<Duration>) -> Idle {
        Idle {
            limit,
            deadline: limit.map(|limit| Instant::now() + limit),
            tripped: false,
        }
    }

    /// The agent said something: the clock starts again (unless the turn is already being cancelled for idling).
    fn heard(&mut self) {
        if !self.tripped {
            self.deadline = self.limit.map(|limit| Instant::now() + limit);
        }
    }

    async fn expired(&self) {
        match self.deadline {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    }
}

impl Turn {
    pub async fn run(mut self) {
        let ids = json!({"sessionId": self.info.session_id, "turnId": self.info.turn_id});
        self.agent.events().publish("turn.started", ids.clone());
        tracing::info!(session = %self.info.session_id, turn = %self.info.turn_id, "turn started");
        let rotations_before = self.agent.credentials().known().rotations;
        let mut client = Client {
            sender: self.stream.take(),
            turn_id: self.info.turn_id.clone(),
        };

        let (sink, mut inbound) = mpsc::channel(super::rpc::ROUTE_BUFFER);
        self.connection.route_to(sink);
        let params = json!({"sessionId": self.info.session_id, "prompt": self.prompt});
        let request = self.connection.request("session/prompt", params);
        tokio::pin!(request);
        let mut crashed = false;
        let mut idle = Idle::new(self.agent.idle_timeout());
        let ended = loop {
            tokio::select! {
                // Everything the agent sent before its response is relayed before the response is looked at.
                biased;
                message = inbound.recv() => match message {
                    Some(Inbound::Closed) | None => crashed = true,
                    Some(message) => {
                        idle.heard();
                        self.handle(message, &mut client).await;
                    }
                },
                result = &mut request => break match result {
                    Ok(response) => Ended::Response(response),
                    Err(CallError::Rpc(error)) => Ended::AgentError(error),
                    Err(CallError::Gone) => Ended::Crashed,
                },
                () = idle.expired() => self.on_idle(&mut idle).await,
            }
            if crashed {
                break Ended::Crashed;
            }
        };

        if let Ended::Response(_) = ended {
            let deadline = Instant::now() + LATE_MAX;
            loop {
                let until = (Instant::now() + LATE_QUIET).min(deadline);
                match tokio::time::timeout_at(until, inbound.recv()).await {
                    Ok(Some(Inbound::Closed)) | Ok(None) | Err(_) => break,
                    Ok(Some(message)) => self.handle(message, &mut client).await,
                }
            }
        }
        self.connection.clear_route();

        // A rotation by the CLI during the turn must be on record before `done` says so.
        let credentials = self.agent.credentials();
        credentials.observe(true).await;
        let rotated = credentials.known().rotations > rotations_before;
        // The trailer says why the turn ended from the app's point of view: a cancel sent for shutdown is a shutdown.
        let stop_reason = match &ended {
            _ if self.agent.shutting_down() => "shutdown".to_owned(),
            _ if idle.tripped => "idle".to_owned(),
            Ended::Response(response) => response["stopReason"].as_str().unwrap_or("unknown").to_owned(),
            Ended::AgentError(_) => "error".to_owned(),
            Ended::Crashed => "crashed".to_owned(),
        };
        let message = repo::turn_message(
            &prompt_text(&self.prompt),
            &self.info.session_id,
            &self.info.turn_id,
            &stop_reason,
        );
        let commit = match self.agent.history().commit_turn(message).await {
            Some(commit) => serde_json::to_value(commit).unwrap_or(Value::Null),
            None => Value::Null,
        };

        let crashed = matches!(ended, Ended::Crashed);
        match ended {
            _ if idle.tripped => {
                let limit = idle.limit.unwrap_or_default().as_secs();
                let problem = problem(
                    "agent-idle",
                    "Agent idle",
                    504,
                    &format!(
                        "the agent sent nothing for {limit} s (--agent-idle-timeout); the turn was cancelled and what it changed is committed"
                    ),
                );
                tracing::warn!(turn = %self.info.turn_id, idle_s = limit, "turn ended: the agent was idle too long");
                self.fail(&ids, problem, commit, &mut client).await;
            }
            Ended::Response(response) => {
                let stop_reason = response["stopReason"].clone();
                let done = json!({"stopReason": stop_reason, "commit": commit, "credentialsRotated": rotated});
                tracing::info!(turn = %self.info.turn_id, stop_reason = %stop_reason, rotated, "turn finished");
                self.publish("turn.finished", &ids, &done);
                client.send(TurnEvent::Done(done)).await;
            }
            Ended::AgentError(error) => {
                let problem = problem(
                    "agent-error",
                    "Agent error",
                    502,
                    &format!(
                        "the agent answered session/prompt with an error: {} (code {})",
                        error.message, error.code
                    ),
                );
                tracing::warn!(turn = %self.info.turn_id, code = error.code, message = %error.message, "turn failed");
                self.fail(&ids, problem, commit, &mut client).await;
            }
            Ended::Crashed => {
                let problem = problem(
                    "agent-crashed",
                    "Agent crashed",
                    502,
                    "the agent process exited during the turn",
                );
                tracing::warn!(turn = %self.info.turn_id, "agent crashed during the turn");
                self.fail(&ids, problem, commit, &mut client).await;
            }
        }
        self.agent.finish_turn(crashed);
    }

    /// The agent has been silent too long: cancel the turn; if it stays silent, stop the agent (which ends the
    /// turn as its stdout closes; the next session starts a fresh one).
    async fn on_idle(&self, idle: &mut Idle) {
        let limit = idle.limit.unwrap_or_default();
        if !idle.tripped {
            idle.tripped = true;
            idle.deadline = Some(Instant::now() + IDLE_CANCEL_GRACE.min(limit));
            tracing::warn!(turn = %self.info.turn_id, idle_s = limit.as_secs(), "the agent has been silent too long; cancelling the turn");
            self.connection
                .notify("session/cancel", json!({"sessionId": self.info.session_id}));
        } else {
            idle.deadline = None;
            tracing::warn!(turn = %self.info.turn_id, "the agent did not answer the cancel; stopping it");
            self.agent
                .stop_because("stopped: it stayed silent after a turn was cancelled for idling")
                .await;
        }
    }

    async fn fail(&self, ids: &Value, problem: Value, commit: Value, client: &mut Client) {
        self.publish("turn.failed", ids, &json!({"error": problem, "commit": commit}));
        client.send(TurnEvent::Error(problem)).await;
    }

    fn publish(&self, kind: &'static str, ids: &Value, payload: &Value) {
        let mut data = ids.clone();
        if let (Some(data), Some(payload)) = (data.as_object_mut(), payload.as_object()) {
            data.extend(payload.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        self.agent.events().publish(kind, data);
    }

    async fn handle(&self, message: Inbound, client: &mut Client) {
        match message {
            Inbound::Update(mut params) => {
                if params["sessionId"] != self.info.session_id.as_str() {
                    return;
                }
                let update = params.get_mut("update").map(Value::take).unwrap_or(Value::Null);
                self.agent.events().publish(
                    "turn.update",
                    json!({"sessionId": self.info.session_id, "turnId": self.info.turn_id, "update": update}),
                );
                client.send(TurnEvent::Update(update)).await;
            }
            Inbound::Request { id, method, params } if method == "session/request_permission" => {
                let (outcome, chosen) = permission::decide(self.policy, &params["options"]);
                self.connection.respond(id, outcome);
                let event = json!({
                    "toolCall": params["toolCall"],
                    "options": params["options"],
                    "selected": chosen.as_ref().map(|o| o["optionId"].clone()).unwrap_or(Value::Null),
                });
                let kind = chosen.as_ref().map(|o| o["kind"].clone()).unwrap_or(Value::Null);
                tracing::info!(turn = %self.info.turn_id, selected = %event["selected"], %kind, "permission answered");
                self.publish(
                    "turn.permission",
                    &json!({"sessionId": self.info.session_id, "turnId": self.info.turn_id}),
                    &event,
                );
                client.send(TurnEvent::Permission(event)).await;
            }
            Inbound::Request { id, method, .. } => {
                tracing::warn!(%method, "agent request not supported; answered with an error");
                self.connection
                    .respond_error(id, -32601, "method not supported by acp-bridge");
            }
            Inbound::Closed => {}
        }
    }
}

/// The text of the prompt's first text block.
fn prompt_text(prompt: &Value) -> String {
    prompt
        .as_array()
        .and_then(|blocks| blocks.iter().find(|b| b["type"] == "text"))
        .and_then(|b| b["text"].as_str())
        .unwrap_or_default()
        .to_owned()
}

fn problem(slug: &str, title: &str, status: u16, detail: &str) -> Value {
    json!({"type": format!("{TYPE_PREFIX}{slug}"), "title": title, "status": status, "detail": detail})
}
