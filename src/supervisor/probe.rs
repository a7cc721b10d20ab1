//! Readiness probes over loopback: a minimal HTTP/1.0 GET (no client library needed for two URLs).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_RESPONSE: usize = 1024 * 1024;

/// `GET http://<host>:<port><path>`: the status code and body, or `None` if nothing answered HTTP in time.
/// Reads exactly `Content-Length` bytes of body when given (some servers keep the connection open).
pub async fn http_get(host: &str, port: u16, path: &str, timeout: Duration) -> Option<(u16, Vec<u8>)> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect((host, port)).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::with_capacity(4096);
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(done) = complete(&response) {
                return done;
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return parse_response(&response);
            }
            response.extend_from_slice(&chunk[..n]);
            if response.len() > MAX_RESPONSE {
                return None;
            }
        }
    })
    .await
    .ok()
    .flatten()
}

/// `Some(answer)` once a response with a `Content-Length` has all of its body.
fn complete(response: &[u8]) -> Option<Option<(u16, Vec<u8>)>> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let length: usize = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })?;
    (response.len() >= head_end + 4 + length).then(|| parse_response(&response[..head_end + 4 + length]))
}

fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let head_end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..head_end]).ok()?;
    let mut parts = head.lines().next()?.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    Some((status, response[head_end + 4..].to_vec()))
}

/// True when nothing listens on `<host>:<port>` (checked by binding it for a moment).
pub fn port_is_free(host: &str, port: u16) -> bool {
    std::net::TcpListener::bind((host, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n{}"),
            Some((200, b"{}".to_vec()))
        );
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(complete(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{"), None);
        assert_eq!(
            complete(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"),
            Some(Some((200, b"{}".to_vec())))
        );
    }

    #[tokio::test]
    async fn nothing_listening_is_none_and_the_port_is_free() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(!port_is_free("127.0.0.1", port));
        drop(listener);
        assert!(port_is_free("127.0.0.1", port));
        assert_eq!(http_get("127.0.0.1", port, "/", Duration::from_millis(200)).await, None);
    }
}
