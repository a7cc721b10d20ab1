//! Answering the agent's permission requests by policy, always with one of the options it offered.

use agent_client_protocol_schema::v1::{PermissionOption, PermissionOptionKind};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PermissionPolicy {
    /// Allow (the VM is the sandbox).
    Allow,
    /// Reject.
    Reject,
}

/// The outcome to send for a `session/request_permission` with these `options`, and the chosen option (if any).
/// Options are read with the official ACP schema types; one that does not parse is never chosen.
pub fn decide(policy: PermissionPolicy, options: &Value) -> (Value, Option<Value>) {
    let preference: [PermissionOptionKind; 2] = match policy {
        PermissionPolicy::Allow => [PermissionOptionKind::AllowAlways, PermissionOptionKind::AllowOnce],
        PermissionPolicy::Reject => [PermissionOptionKind::RejectOnce, PermissionOptionKind::RejectAlways],
    };
    let offered: Vec<(PermissionOption, &Value)> = options
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|raw| {
            serde_json::from_value::<PermissionOption>(raw.clone())
                .ok()
                .map(|option| (option, raw))
        })
        .collect();
    let chosen = preference
        .iter()
        .find_map(|kind| offered.iter().find(|(option, _)| option.kind == *kind));
    match chosen {
        Some((option, raw)) => {
            let id = serde_json::to_value(&option.option_id).unwrap_or(Value::Null);
            (
                json!({"outcome": {"outcome": "selected", "optionId": id}}),
                Some((*raw).clone()),
            )
        }
        None => (json!({"outcome": {"outcome": "cancelled"}}), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Value {
        json!([
            {"optionId": "a-1", "name": "Always", "kind": "allow_always"},
            {"optionId": "o-2", "name": "Once", "kind": "allow_once"},
            {"optionId": "r-3", "name": "Reject", "kind": "reject_once"}
        ])
    }

    #[test]
    fn allow_prefers_allow_always_then_allow_once() {
        let (outcome, chosen) = decide(PermissionPolicy::Allow, &options());
        assert_eq!(outcome["outcome"]["optionId"], "a-1");
        assert_eq!(chosen.unwrap()["kind"], "allow_always");
        let only_once = json!([{"optionId": "x", "name": "Once", "kind": "allow_once"}, {"optionId": "y", "name": "No", "kind": "reject_once"}]);
        assert_eq!(
            decide(PermissionPolicy::Allow, &only_once).0["outcome"]["optionId"],
            "x"
        );
    }

    #[test]
    fn reject_picks_the_offered_reject_option() {
        assert_eq!(
            decide(PermissionPolicy::Reject, &options()).0["outcome"]["optionId"],
            "r-3"
        );
    }

    #[test]
    fn nothing_suitable_is_cancelled_never_an_invented_id() {
        let (outcome, chosen) = decide(
            PermissionPolicy::Reject,
            &json!([{"optionId": "a", "kind": "allow_once"}]),
        );
        assert_eq!(outcome, json!({"outcome": {"outcome": "cancelled"}}));
        assert!(chosen.is_none());
        assert_eq!(
            decide(PermissionPolicy::Allow, &Value::Null).0["outcome"]["outcome"],
            "cancelled"
        );
    }
}
