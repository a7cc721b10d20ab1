//! A bounded ring of a component's recent output lines, fed from its stdout and stderr.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::broadcast;

const MAX_LINES: usize = 2000;
const MAX_LINE_BYTES: usize = 4096;

pub struct LogRing {
    name: &'static str,
    lines: Mutex<VecDeque<Arc<str>>>,
    /// Live lines, for readiness checks that wait for a particular line.
    live: broadcast::Sender<Arc<str>>,
    noise: &'static [&'static str],
}

impl LogRing {
    pub fn new(name: &'static str, noise: &'static [&'static str]) -> Arc<Self> {
        let (live, _) = broadcast::channel(256);
        Arc::new(Self {
            name,
            lines: Mutex::new(VecDeque::with_capacity(64)),
            live,
            noise,
        })
    }

    pub fn push(&self, line: &str) {
        if self.noise.iter().any(|pattern| line.contains(pattern)) {
            tracing::trace!(component = self.name, line, "output (known noise)");
            return;
        }
        tracing::debug!(component = self.name, line, "output");
        let line: Arc<str> = Arc::from(line);
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() == MAX_LINES {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        drop(lines);
        let _ = self.live.send(line);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<Arc<str>> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().skip(lines.len().saturating_sub(n)).cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.live.subscribe()
    }

    /// Copies `reader` into the ring line by line until EOF; over-long lines are cut.
    pub async fn pump(self: Arc<Self>, mut reader: impl AsyncRead + Unpin) {
        let mut buffer = vec![0u8; 8192];
        let mut line = Vec::with_capacity(256);
        loop {
            let n = match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for &byte in &buffer[..n] {
                if byte == b'\n' {
                    self.push_bytes(&line);
                    line.clear();
                } else if line.len() < MAX_LINE_BYTES {
                    line.push(byte);
                }
            }
        }
        if !line.is_empty() {
            self.push_bytes(&line);
        }
    }

    fn push_bytes(&self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        self.push(text.trim_end_matches('\r'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_tail_cuts_long_lines_and_drops_noise() {
        let ring = LogRing::new("t", &["harmless"]);
        let mut input = Vec::new();
        for i in 0..(MAX_LINES + 5) {
            input.extend(format!("line {i}\n").as_bytes());
        }
        input.extend(b"a harmless warning\n");
        input.extend(vec![b'x'; MAX_LINE_BYTES * 2]);
        input.extend(b"\nlast without newline");
        ring.clone().pump(&input[..]).await;
        let tail = ring.tail(3);
        assert_eq!(&*tail[0], format!("line {}", MAX_LINES + 4));
        assert_eq!(tail[1].len(), MAX_LINE_BYTES);
        assert_eq!(&*tail[2], "last without newline");
        assert_eq!(ring.tail(usize::MAX).len(), MAX_LINES);
    }
}
