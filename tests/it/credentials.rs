use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helper::{Daemon, cli_document, mode_of, rewrite_in_place, wait_for};

fn flat(access: &str, refresh: &str, expires_at: Value) -> Value {
    json!({"accessToken": access, "refreshToken": refresh, "expiresAt": expires_at, "scopes": ["user:inference", "user:profile"]})
}

#[tokio::test]
async fn read_without_a_file_is_404_no_credentials() {
    let daemon = Daemon::start().await;
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(status, 404);
    assert!(body["type"].as_str().unwrap().ends_with("/no-credentials"));
}

#[tokio::test]
async fn write_then_read_round_trips_with_the_cli_file_shape_and_mode_0600() {
    let daemon = Daemon::start().await;
    assert!(!daemon.config_dir.exists());
    let mut body = flat("sk-ant-oat01-AAA", "sk-ant-ort01-RRR", json!(1_900_000_000_000u64));
    body["subscriptionType"] = json!("max");
    body["rateLimitTier"] = json!("default_claude_max_20x");
    let (status, written) = daemon.write_credentials(&body).await;
    assert_eq!(status, 200, "{written}");
    assert_eq!(written, json!({"written": true, "expiresAt": 1_900_000_000_000u64}));

    let file = daemon.credentials_file();
    assert_eq!(mode_of(&file), 0o600);
    assert_eq!(
        mode_of(&daemon.config_dir),
        0o700,
        "a missing config dir is created private"
    );
    let on_disk: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(
        on_disk,
        json!({"claudeAiOauth": {
            "accessToken": "sk-ant-oat01-AAA", "refreshToken": "sk-ant-ort01-RRR", "expiresAt": 1_900_000_000_000u64,
            "scopes": ["user:inference", "user:profile"], "subscriptionType": "max", "rateLimitTier": "default_claude_max_20x"
        }})
    );
    let leftovers: Vec<_> = std::fs::read_dir(&daemon.config_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind: {leftovers:?}");

    let (status, read) = daemon.read_credentials().await;
    assert_eq!(status, 200);
    assert_eq!(
        read,
        json!({"accessToken": "sk-ant-oat01-AAA", "refreshToken": "sk-ant-ort01-RRR", "expiresAt": 1_900_000_000_000u64,
               "scopes": ["user:inference", "user:profile"], "subscriptionType": "max", "rateLimitTier": "default_claude_max_20x"})
    );
}

#[tokio::test]
async fn write_keeps_every_other_key_of_the_existing_file() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let mut existing = cli_document("old-access", "old-refresh", 1_000);
    existing["claudeAiOauth"]["someFutureField"] = json!({"nested": true});
    existing["mcpOAuth"] = json!({"server": {"token": "kept"}});
    std::fs::write(daemon.credentials_file(), existing.to_string()).unwrap();

    let (status, _) = daemon
        .write_credentials(&json!({"claudeAiOauth": flat("new-access", "new-refresh", json!(2_000))}))
        .await;
    assert_eq!(status, 200);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(daemon.credentials_file()).unwrap()).unwrap();
    assert_eq!(on_disk["mcpOAuth"], json!({"server": {"token": "kept"}}));
    assert_eq!(on_disk["claudeAiOauth"]["someFutureField"], json!({"nested": true}));
    assert_eq!(on_disk["claudeAiOauth"]["accessToken"], "new-access");
    assert_eq!(on_disk["claudeAiOauth"]["expiresAt"], 2_000);
    assert_eq!(mode_of(&daemon.credentials_file()), 0o600);
}

#[tokio::test]
async fn older_credentials_never_replace_newer_ones_unless_forced() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let newer = cli_document("newer-access", "newer-refresh", 5_000).to_string();
    std::fs::write(daemon.credentials_file(), &newer).unwrap();
    let inode = std::fs::metadata(daemon.credentials_file()).unwrap().ino();

    let (status, body) = daemon
        .write_credentials(&flat("older-access", "older-refresh", json!(4_999)))
        .await;
    assert_eq!(status, 409);
    assert!(body["type"].as_str().unwrap().ends_with("/stale-credentials"));
    assert_eq!(body["currentExpiresAt"], 5_000);
    assert!(!body.to_string().contains("newer-access") && !body.to_string().contains("older-access"));
    assert_eq!(
        std::fs::read_to_string(daemon.credentials_file()).unwrap(),
        newer,
        "the file is untouched"
    );
    assert_eq!(std::fs::metadata(daemon.credentials_file()).unwrap().ino(), inode);

    // Equal expiresAt on disk: written.
    let (status, _) = daemon
        .write_credentials(&flat("same-access", "same-refresh", json!(5_000)))
        .await;
    assert_eq!(status, 200);
    let (_, read) = daemon.read_credentials().await;
    assert_eq!(read["accessToken"], "same-access");

    // Older with force: written.
    let mut forced = flat("forced-access", "forced-refresh", json!(10));
    forced["force"] = json!(true);
    let (status, body) = daemon.write_credentials(&forced).await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = daemon.read_credentials().await;
    assert_eq!(read["accessToken"], "forced-access");
    assert_eq!(read["expiresAt"], 10);
}

#[tokio::test]
async fn blanked_tokens_on_disk_do_not_block_a_write() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    std::fs::write(daemon.credentials_file(), cli_document("", "", 9_999_999).to_string()).unwrap();
    let (status, body) = daemon.write_credentials(&flat("a", "r", json!(5))).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn iso8601_expires_at_is_stored_as_epoch_ms() {
    let daemon = Daemon::start().await;
    let (status, body) = daemon
        .write_credentials(&flat("a", "r", json!("2030-01-01T00:00:00.250Z")))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expiresAt"], 1_893_456_000_250u64);
    let on_disk: Value = serde_json::from_slice(&std::fs::read(daemon.credentials_file()).unwrap()).unwrap();
    assert_eq!(on_disk["claudeAiOauth"]["expiresAt"], 1_893_456_000_250u64);
}

#[tokio::test]
async fn every_validation_error_is_a_400_naming_the_field() {
    let daemon = Daemon::start().await;
    let good = flat("sk-secret-access", "sk-secret-refresh", json!(1000));
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = vec![
        (without("accessToken"), "accessToken"),
        (with("accessToken", json!("")), "accessToken"),
        (with("accessToken", json!(42)), "accessToken"),
        (without("refreshToken"), "refreshToken"),
        (with("refreshToken", json!("  ")), "refreshToken"),
        (with("refreshToken", json!(["x"])), "refreshToken"),
        (without("expiresAt"), "expiresAt"),
        (with("expiresAt", json!(0)), "expiresAt"),
        (with("expiresAt", json!(-1)), "expiresAt"),
        (with("expiresAt", json!(1.5)), "expiresAt"),
        (with("expiresAt", json!("next tuesday")), "expiresAt"),
        (with("expiresAt", json!(true)), "expiresAt"),
        (without("scopes"), "scopes"),
        (with("scopes", json!("user:inference")), "scopes"),
        (with("scopes", json!(["user:profile"])), "scopes"),
        (with("scopes", json!([1, 2])), "scopes"),
        (with("subscriptionType", json!(7)), "subscriptionType"),
        (with("rateLimitTier", json!({})), "rateLimitTier"),
        (with("force", json!("yes")), "force"),
        (json!({"claudeAiOauth": []}), "claudeAiOauth"),
        (
            json!({"claudeAiOauth": {"accessToken": "a", "refreshToken": "r", "expiresAt": 1}}),
            "claudeAiOauth.scopes",
        ),
        (json!("just a string"), "body"),
    ];
    for (body, field) in cases {
        let (status, problem) = daemon.write_credentials(&body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(problem["field"], field, "{body} → {problem}");
        assert!(problem["type"].as_str().unwrap().ends_with("/invalid-request"));
        assert!(!problem.to_string().contains("sk-secret"), "no value echoed: {problem}");
    }
    assert!(!daemon.credentials_file().exists(), "nothing invalid was written");
}

#[tokio::test]
async fn malformed_json_oversized_bodies_and_wrong_content_types_are_problems() {
    let daemon = Daemon::start().await;
    let url = daemon.url("/credentials/write");
    let send = |body: Vec<u8>, content_type: &'static str| {
        let request = daemon
            .client
            .post(&url)
            .bearer_auth(&daemon.token)
            .header("content-type", content_type)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
            (status, content_type, response.json::<Value>().await.unwrap())
        }
    };
    let (status, content_type, body) = send(br#"{"accessToken": "#.to_vec(), "application/json").await;
    assert_eq!((status, content_type.as_str()), (400, "application/problem+json"));
    assert_eq!(body["field"], "body");

    let mut huge = br#"{"accessToken":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1024 * 1024 + 10));
    huge.extend(br#""}"#);
    let (status, content_type, body) = send(huge, "application/json").await;
    assert_eq!((status, content_type.as_str()), (413, "application/problem+json"));
    assert!(body["type"].as_str().unwrap().ends_with("/body-too-large"));

    let (status, _, _) = send(b"accessToken=x".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(status, 415);
}

#[tokio::test]
async fn unusable_files_are_422_naming_the_problem_but_not_the_content() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "empty"),
        (
            br#"{"claudeAiOauth":{"accessToken":"sk-leak-me","refre"#.to_vec(),
            "not valid JSON",
        ),
        (b"[\"sk-leak-me\"]".to_vec(), "not a JSON object"),
        (br#"{"other":"sk-leak-me"}"#.to_vec(), "claudeAiOauth"),
        (cli_document("", "", 5).to_string().into_bytes(), "empty"),
        (
            br#"{"claudeAiOauth":{"accessToken":"sk-leak-me","refreshToken":"r","expiresAt":"later"}}"#.to_vec(),
            "expiresAt",
        ),
        (vec![0xff, 0x00, 0x13, 0x37], "not valid JSON"),
    ];
    for (content, expected) in cases {
        std::fs::write(daemon.credentials_file(), &content).unwrap();
        let (status, body) = daemon.read_credentials().await;
        assert_eq!(status, 422, "{}", String::from_utf8_lossy(&content));
        assert!(body["type"].as_str().unwrap().ends_with("/credentials-unusable"));
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains(expected),
            "detail {detail:?} should mention {expected:?}"
        );
        assert!(!body.to_string().contains("sk-leak-me"));
    }
    // The daemon keeps going, and a later valid file is picked up.
    std::fs::write(
        daemon.credentials_file(),
        cli_document("good-access", "good-refresh", 77).to_string(),
    )
    .unwrap();
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(status, 200);
    assert_eq!(body["accessToken"], "good-access");
    assert!(!daemon.logs().contains("sk-leak-me"));
}

#[tokio::test]
async fn rotation_written_in_place_by_the_cli_is_visible_to_credentials_read() {
    let daemon = Daemon::start().await;
    let (status, _) = daemon
        .write_credentials(&flat("first-access", "first-refresh", json!(1_000)))
        .await;
    assert_eq!(status, 200);
    let inode = std::fs::metadata(daemon.credentials_file()).unwrap().ino();
    rewrite_in_place(
        &daemon.credentials_file(),
        cli_document("rotated-access", "rotated-refresh", 2_000)
            .to_string()
            .as_bytes(),
    );
    assert_eq!(
        std::fs::metadata(daemon.credentials_file()).unwrap().ino(),
        inode,
        "rewritten in place"
    );
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(status, 200);
    assert_eq!(body["accessToken"], "rotated-access");
    assert_eq!(body["refreshToken"], "rotated-refresh");
    assert_eq!(body["expiresAt"], 2_000);

    // /health and /status catch up through the watcher.
    let client = daemon.client.clone();
    let url = daemon.url("/status");
    let token = daemon.token.clone();
    let status = wait_for("/status to show the rotation", Duration::from_secs(3), || {
        let request = client.get(&url).bearer_auth(&token);
        async move {
            let body: Value = request.send().await.ok()?.json().await.ok()?;
            (body["credentials"]["rotations"] == 1).then_some(body)
        }
    })
    .await;
    assert_eq!(status["credentials"]["expiresAt"], 2_000);
    assert!(status["credentials"]["lastRotationAt"].as_u64().is_some());
    assert_eq!(status["credentials"]["subscriptionType"], "max");
}

/// A writer rewrites the file in place, in two chunks with a pause between them (so readers really do
/// see empty and half-written files), while readers hammer `/credentials/read`. Every answer must be a
/// 200 with a matching access/refresh/expiresAt triple.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_reads_during_in_place_rewrites_never_return_a_torn_or_mixed_pair() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let file = daemon.credentials_file();
    let document = |i: u64| cli_document(&format!("access-{i}"), &format!("refresh-{i}"), 1_000 + i).to_string();
    std::fs::write(&file, document(0)).unwrap();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let file = file.clone();
        std::thread::spawn(move || {
            use std::io::Write;
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 400 {
                i += 1;
                let text = document(i);
                let (head, tail) = text.as_bytes().split_at(text.len() / 2);
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .truncate(true)
                    .open(&file)
                    .unwrap();
                std::thread::sleep(Duration::from_micros(300));
                out.write_all(head).unwrap();
                out.flush().unwrap();
                std::thread::sleep(Duration::from_micros(300));
                out.write_all(tail).unwrap();
                drop(out);
                std::thread::sleep(Duration::from_millis(2));
            }
            i
        })
    };

    let mut readers = Vec::new();
    for _ in 0..8 {
        let client = daemon.client.clone();
        let url = daemon.url("/credentials/read");
        let token = daemon.token.clone();
        readers.push(tokio::spawn(async move {
            let mut seen = 0;
            for _ in 0..150 {
                let response = client.post(&url).bearer_auth(&token).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                assert_eq!(status, 200, "a read during a rewrite must not fail: {body}");
                let access = body["accessToken"].as_str().unwrap();
                let i: u64 = access.strip_prefix("access-").unwrap().parse().unwrap();
                assert_eq!(body["refreshToken"], format!("refresh-{i}"), "mixed pair");
                assert_eq!(body["expiresAt"], 1_000 + i, "mixed pair");
                seen += 1;
            }
            seen
        }));
    }
    let mut total = 0;
    for reader in readers {
        total += reader.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rewrites = writer.join().unwrap();
    assert_eq!(total, 8 * 150);
    assert!(
        rewrites > 20,
        "the writer must really have raced the readers ({rewrites} rewrites)"
    );
}

#[tokio::test]
async fn concurrent_writes_are_serialized_and_the_newest_wins() {
    let daemon = Daemon::start().await;
    let mut tasks = Vec::new();
    for i in 1..=20u64 {
        let client = daemon.client.clone();
        let url = daemon.url("/credentials/write");
        let token = daemon.token.clone();
        tasks.push(tokio::spawn(async move {
            let body = flat(&format!("access-{i}"), &format!("refresh-{i}"), json!(i * 100));
            client
                .post(&url)
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        let status = task.await.unwrap();
        assert!(status == 200 || status == 409, "{status}");
    }
    let (_, body) = daemon.read_credentials().await;
    assert_eq!(
        body["expiresAt"], 2_000,
        "the newest credentials survive any interleaving"
    );
    assert_eq!(body["accessToken"], "access-20");
}

#[tokio::test]
async fn a_file_with_newer_tokens_but_odd_fields_is_still_protected_from_older_writes() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let mut odd = cli_document("newer-access", "newer-refresh", 9_000);
    odd["claudeAiOauth"]["scopes"] = json!("user:inference");
    std::fs::write(daemon.credentials_file(), odd.to_string()).unwrap();
    let (status, body) = daemon
        .write_credentials(&flat("older-access", "older-refresh", json!(8_000)))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["currentExpiresAt"], 9_000);
}
