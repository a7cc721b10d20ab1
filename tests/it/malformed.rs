//! Malformed credentials files of every kind, each written in place while the daemon runs: `POST
//! /credentials/read` answers a clear `422 credentials-unusable` naming the problem (never the content), the
//! watcher reports the file as cleared, `/health` keeps answering, and a valid file written afterwards is
//! picked up (`credentials.rotated`, then a `200` read).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helper::{Daemon, EventStream, cli_document, rewrite_in_place};

const WAIT: Duration = Duration::from_secs(10);
/// Every malformed file below holds this, where it can hold anything at all; no answer or log may.
const MARKER: &str = "sk-leak-5f3a";

struct Case {
    kind: &'static str,
    content: Vec<u8>,
    /// What the detail must say.
    detail: &'static str,
    /// The `reason` of the `credentials.cleared` event.
    cleared: &'static str,
}

fn case(kind: &'static str, content: impl Into<Vec<u8>>, detail: &'static str) -> Case {
    Case {
        kind,
        content: content.into(),
        detail,
        cleared: "unusable",
    }
}

/// The CLI's document with one field of `claudeAiOauth` replaced.
fn with_field(field: &str, value: Value) -> Vec<u8> {
    let mut document = cli_document(
        &format!("{MARKER}-access"),
        &format!("{MARKER}-refresh"),
        1_900_000_000_000,
    );
    document["claudeAiOauth"][field] = value;
    document.to_string().into_bytes()
}

fn valid(n: u64) -> Vec<u8> {
    cli_document(&format!("good-access-{n}"), &format!("good-refresh-{n}"), 1_000 + n)
        .to_string()
        .into_bytes()
}

async fn read_raw(daemon: &Daemon) -> (u16, String, String) {
    let response = daemon
        .client
        .post(daemon.url("/credentials/read"))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .expect("read");
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    (status, content_type, response.text().await.unwrap())
}

/// Writes a valid file in place and waits until the watcher announced it and a read returns it.
async fn valid_file_is_picked_up(daemon: &Daemon, events: &mut EventStream, n: u64) {
    rewrite_in_place(&daemon.credentials_file(), &valid(n));
    let rotated = events.next_named("credentials.rotated", WAIT).await;
    assert_eq!(rotated.data["expiresAt"], 1_000 + n);
    let (status, body) = daemon.read_credentials().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accessToken"], format!("good-access-{n}"));
    assert_eq!(body["refreshToken"], format!("good-refresh-{n}"));
}

/// For each case in turn, on one daemon: valid file, then the malformed one, then the checks.
async fn each_is_422_and_the_daemon_recovers(cases: Vec<Case>) {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let mut events = daemon.events(None).await;
    for (n, case) in (0..).zip(&cases) {
        println!("case: {}", case.kind);
        valid_file_is_picked_up(&daemon, &mut events, n).await;

        rewrite_in_place(&daemon.credentials_file(), &case.content);
        let cleared = events.next_named("credentials.cleared", WAIT).await;
        assert_eq!(cleared.data["reason"], case.cleared, "{}", case.kind);
        assert_eq!(cleared.data["previousExpiresAt"], 1_000 + n, "{}", case.kind);

        let asked = Instant::now();
        let (status, content_type, text) = read_raw(&daemon).await;
        assert_eq!(status, 422, "{}: {text}", case.kind);
        assert!(
            asked.elapsed() < Duration::from_secs(3),
            "{}: answered after {:?}; a read retries a torn-looking file for 1 s only",
            case.kind,
            asked.elapsed()
        );
        assert_eq!(content_type, "application/problem+json");
        let problem: Value = serde_json::from_str(&text).unwrap();
        assert!(
            problem["type"].as_str().unwrap().ends_with("/credentials-unusable"),
            "{}: {problem}",
            case.kind
        );
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(case.detail),
            "{}: the detail {detail:?} should say {:?}",
            case.kind,
            case.detail
        );
        assert!(!text.contains(MARKER), "{}: the content leaked: {text}", case.kind);

        let health = daemon.get_public("/health").await;
        assert_eq!(health.status(), 200, "{}", case.kind);
        let health: Value = health.json().await.unwrap();
        assert_eq!(
            health["credentials"],
            json!({"present": false, "expiresAt": null}),
            "{}",
            case.kind
        );
    }
    valid_file_is_picked_up(&daemon, &mut events, 999).await;
    assert!(
        !daemon.logs().contains(MARKER),
        "no content of a malformed file is logged"
    );
}

/// Files that cannot be read as JSON at all. These look like a file caught mid-rewrite, so a read retries
/// them for up to 1 s before it answers.
#[tokio::test]
async fn files_that_are_not_json_are_422_and_a_later_valid_file_is_picked_up() {
    let document = String::from_utf8(with_field("subscriptionType", json!("max"))).unwrap();
    let nested = format!(
        r#"{{"claudeAiOauth":{{"accessToken":"{MARKER}","refreshToken":"r","expiresAt":5,"deep":{}{}}}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let mut garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    garbage.extend(MARKER.as_bytes());
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(document.as_bytes());
    each_is_422_and_the_daemon_recovers(vec![
        case("empty", b"".to_vec(), "is empty"),
        case("only whitespace", b" \n\t \n".to_vec(), "is empty"),
        case(
            "truncated JSON",
            &document.as_bytes()[..document.len() / 2],
            "not valid JSON",
        ),
        case("binary garbage", garbage, "not valid JSON"),
        case("a byte order mark", bom, "not valid JSON"),
        case("nested 100 000 deep", nested, "nests deeper than 127 levels"),
        case("two documents", format!("{document}{document}"), "not valid JSON"),
    ])
    .await;
}

/// JSON of the wrong shape or with fields of the wrong type, too large a file, and blanked tokens.
#[tokio::test]
async fn documents_of_the_wrong_shape_are_422_naming_the_problem_and_a_later_valid_file_is_picked_up() {
    let mut huge = cli_document(
        &format!("{MARKER}-access"),
        &format!("{MARKER}-refresh"),
        1_900_000_000_000,
    );
    huge["padding"] = json!(MARKER.repeat(300 * 1024 / MARKER.len()));
    let huge = huge.to_string();
    assert!(huge.len() > 256 * 1024, "bigger than the store's MAX_FILE_BYTES");
    let blanked = |kind, access: Value, refresh: Value| Case {
        kind,
        content: cli_document("a", "r", 1_900_000_000_000)
            .to_string()
            .replace(r#""a""#, &access.to_string())
            .replace(r#""r""#, &refresh.to_string())
            .into_bytes(),
        detail: "token is empty",
        cleared: "tokens-empty",
    };
    each_is_422_and_the_daemon_recovers(vec![
        case("null", "null", "not a JSON object"),
        case(
            "a JSON array",
            format!(r#"[{{"claudeAiOauth":"{MARKER}"}}]"#),
            "not a JSON object",
        ),
        case("a JSON string", format!(r#""{MARKER}""#), "not a JSON object"),
        case("a number", "1900000000000", "not a JSON object"),
        case(
            "no claudeAiOauth",
            format!(r#"{{"mcpOAuth":"{MARKER}"}}"#),
            "no `claudeAiOauth` object",
        ),
        case(
            "claudeAiOauth a string",
            format!(r#"{{"claudeAiOauth":"{MARKER}"}}"#),
            "no `claudeAiOauth` object",
        ),
        case(
            "accessToken a number",
            with_field("accessToken", json!(123_456)),
            "`claudeAiOauth.accessToken`",
        ),
        case(
            "refreshToken an object",
            with_field("refreshToken", json!({"value": MARKER})),
            "`claudeAiOauth.refreshToken`",
        ),
        case(
            "expiresAt not a date",
            with_field("expiresAt", json!("half past never")),
            "`claudeAiOauth.expiresAt`",
        ),
        case(
            "expiresAt negative",
            with_field("expiresAt", json!(-5)),
            "`claudeAiOauth.expiresAt`",
        ),
        case(
            "expiresAt a fraction",
            with_field("expiresAt", json!(1.5)),
            "`claudeAiOauth.expiresAt`",
        ),
        case(
            "scopes a number",
            with_field("scopes", json!(7)),
            "`claudeAiOauth.scopes`",
        ),
        case(
            "scopes of numbers",
            with_field("scopes", json!([1, 2])),
            "`claudeAiOauth.scopes`",
        ),
        case(
            "subscriptionType an object",
            with_field("subscriptionType", json!({})),
            "`claudeAiOauth.subscriptionType`",
        ),
        case("larger than MAX_FILE_BYTES", huge, "larger than 262144 bytes"),
        blanked("blanked tokens", json!(""), json!("")),
        blanked("null tokens", json!(null), json!(null)),
        blanked("a blank access token", json!("   "), json!(format!("{MARKER}-refresh"))),
        blanked(
            "a blank refresh token",
            json!(format!("{MARKER}-access")),
            json!("\t\n"),
        ),
    ])
    .await;
}

/// A directory or a FIFO where the file should be (the agent runs as the same user and can create either).
/// Reading must neither fail with a 500 nor block: `open(2)` of a FIFO waits for a writer.
#[tokio::test]
async fn a_path_that_is_not_a_regular_file_is_422_and_never_blocks_the_daemon() {
    let daemon = Daemon::start().await;
    std::fs::create_dir_all(&daemon.config_dir).unwrap();
    let file = daemon.credentials_file();
    let mut events = daemon.events(None).await;
    for (n, kind) in (0..).zip(["a directory", "a FIFO"]) {
        valid_file_is_picked_up(&daemon, &mut events, n).await;
        std::fs::remove_file(&file).unwrap();
        if kind == "a directory" {
            std::fs::create_dir(&file).unwrap();
        } else {
            nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        let read = tokio::time::timeout(Duration::from_secs(5), read_raw(&daemon)).await;
        let (status, _, text) = read.unwrap_or_else(|_| panic!("{kind}: no answer to a read within 5 s"));
        assert_eq!(status, 422, "{kind}: {text}");
        assert!(
            text.contains("credentials-unusable") && text.contains("regular file"),
            "{kind}: {text}"
        );
        let health = tokio::time::timeout(Duration::from_secs(5), daemon.get_public("/health")).await;
        assert_eq!(health.expect("/health answers").status(), 200, "{kind}");
        if std::fs::metadata(&file).unwrap().is_dir() {
            std::fs::remove_dir(&file).unwrap();
        } else {
            std::fs::remove_file(&file).unwrap();
        }
    }
    valid_file_is_picked_up(&daemon, &mut events, 99).await;
}
