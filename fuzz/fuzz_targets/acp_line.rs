//! `decode_line` on any bytes, as the agent's stdout delivers them, one line at a time.
//!
//! Properties:
//! - it never panics, and its verdict matches the JSON-RPC 2.0 reading of the line: blank, not a JSON object,
//!   a request (`method` and `id`), `session/update` or another notification (`method`, no `id`), a response
//!   (`id`, no `method`) whose id must be a non-negative integer, or none of these;
//! - what it reads, encoded again the way the daemon and the agent write messages (one line of JSON), decodes to
//!   the same thing.

#![no_main]

use acp_bridge::agent::rpc::{Decoded, RpcError, decode_line};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

fuzz_target!(|line: &[u8]| {
    let decoded = decode_line(line);
    let trimmed = line.trim_ascii();
    match (&decoded, serde_json::from_slice::<Value>(trimmed)) {
        (Decoded::Empty, _) => assert!(trimmed.is_empty()),
        (Decoded::NotObject { bytes }, parsed) => {
            assert!(!trimmed.is_empty());
            assert_eq!(*bytes, trimmed.len());
            assert!(!matches!(parsed, Ok(Value::Object(_))));
        }
        (decoded, Ok(Value::Object(message))) => {
            assert_eq!(*decoded, expected(&message));
            check_round_trip(decoded);
        }
        (decoded, _) => panic!("{decoded:?} from a line that is not a JSON object"),
    }
});

/// What a JSON-RPC 2.0 object is, spelled out independently of the decoder.
fn expected(message: &Map<String, Value>) -> Decoded {
    match (message.get("method"), message.get("id")) {
        (Some(Value::String(method)), id) => {
            let params = message.get("params").cloned().unwrap_or(Value::Null);
            match id {
                Some(id) => Decoded::Request {
                    id: id.clone(),
                    method: method.clone(),
                    params,
                },
                None if method == "session/update" => Decoded::Update(params),
                None => Decoded::Notification { method: method.clone() },
            }
        }
        (None, Some(id)) => match id {
            Value::Number(n) if n.as_u64().is_some() => Decoded::Response {
                id: n.as_u64().unwrap_or_default(),
                outcome: match message.get("error") {
                    None => Ok(message.get("result").cloned().unwrap_or(Value::Null)),
                    Some(error) => Err(RpcError {
                        code: error.get("code").and_then(Value::as_i64).unwrap_or(0),
                        message: error
                            .get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown error")
                            .to_owned(),
                    }),
                },
            },
            _ => Decoded::BadResponseId,
        },
        _ => Decoded::NotJsonRpc,
    }
}

fn check_round_trip(decoded: &Decoded) {
    let message = match decoded.clone() {
        Decoded::Request { id, method, params } => {
            json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
        }
        Decoded::Update(params) => json!({"jsonrpc": "2.0", "method": "session/update", "params": params}),
        Decoded::Notification { method } => json!({"jsonrpc": "2.0", "method": method, "params": null}),
        Decoded::Response {
            id,
            outcome: Ok(result),
        } => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Decoded::Response {
            id,
            outcome: Err(error),
        } => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": error.code, "message": error.message}})
        }
        Decoded::Empty | Decoded::NotObject { .. } | Decoded::BadResponseId | Decoded::NotJsonRpc => return,
    };
    let mut line = message.to_string().into_bytes();
    assert!(!line.contains(&b'\n'), "a message is one line");
    line.push(b'\n');
    assert_eq!(decode_line(&line), *decoded);
}
