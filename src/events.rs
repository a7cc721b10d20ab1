//! The event bus behind `GET /events`: a numbered ring of recent events plus a broadcast channel.
//!
//! Ids start at the boot time in epoch milliseconds and grow by one per event, so they keep growing
//! across daemon restarts and a client's `Last-Event-ID` from before a restart never hides new events.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tokio::sync::broadcast;

/// How many past events a reconnecting client can replay…
pub const RING_CAPACITY: usize = 2048;
/// …as long as their data stays under this many bytes (agent updates can be large).
pub const RING_BYTES: usize = 4 << 20;
/// How far a live subscriber may fall behind before it is cut off (it can resume with `Last-Event-ID`).
const SUBSCRIBER_BUFFER: usize = 1024;

#[derive(Debug)]
pub struct Event {
    pub id: u64,
    pub kind: &'static str,
    /// The JSON `data` line, serialized once for every subscriber.
    pub data: String,
}

#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Mutex<Ring>>,
    sender: broadcast::Sender<Arc<Event>>,
}

struct Ring {
    next_id: u64,
    events: VecDeque<Arc<Event>>,
    /// Sum of the `data` lengths in `events`.
    bytes: usize,
}

/// What a new subscriber gets: the events it missed, then the live ones.
pub struct Subscription {
    pub replay: Vec<Arc<Event>>,
    /// True when the client asked to resume from an event that already fell out of the ring.
    pub gap: bool,
    pub live: broadcast::Receiver<Arc<Event>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new()
    }
}

impl EventBus {
    pub fn new() -> Self {
        let first_id = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(1)
            .max(1);
        Self::starting_at(first_id)
    }

    fn starting_at(first_id: u64) -> Self {
        let (sender, _) = broadcast::channel(SUBSCRIBER_BUFFER);
        let ring = Ring {
            next_id: first_id,
            events: VecDeque::with_capacity(RING_CAPACITY),
            bytes: 0,
        };
        Self {
            inner: Arc::new(Mutex::new(ring)),
            sender,
        }
    }

    /// Publishes an event. `payload` must serialize to a JSON object; `type` and `timeMs` are added to it.
    pub fn publish(&self, kind: &'static str, payload: Value) -> u64 {
        let mut object = match payload {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        object.insert("type".into(), Value::from(kind));
        object.insert("timeMs".into(), Value::from(now_ms()));
        let data = Value::Object(object).to_string();

        let mut ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = ring.next_id;
        ring.next_id += 1;
        ring.bytes += data.len();
        let event = Arc::new(Event { id, kind, data });
        ring.events.push_back(event.clone());
        while ring.events.len() > RING_CAPACITY || (ring.bytes > RING_BYTES && ring.events.len() > 1) {
            if let Some(old) = ring.events.pop_front() {
                ring.bytes -= old.data.len();
            }
        }
        // Sent under the lock so that a concurrent `subscribe` sees each event exactly once.
        let _ = self.sender.send(event);
        id
    }

    /// Subscribes; with `last_event_id`, first replays every event newer than it that is still in the ring.
    pub fn subscribe(&self, last_event_id: Option<u64>) -> Subscription {
        let ring = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.sender.subscribe();
        let Some(last) = last_event_id else {
            return Subscription {
                replay: Vec::new(),
                gap: false,
                live,
            };
        };
        let oldest = ring.events.front().map(|e| e.id).unwrap_or(ring.next_id);
        let gap = last.saturating_add(1) < oldest && last < ring.next_id;
        let replay = ring
            .events
            .iter()
            .filter(|e| e.id > last || last >= ring.next_id)
            .cloned()
            .collect();
        Subscription { replay, gap, live }
    }

    pub fn subscriber_count(&self) -> usize {
        self.sender.receiver_count()
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_consecutive_and_data_carries_type() {
        let bus = EventBus::starting_at(10);
        assert_eq!(bus.publish("a", json!({"x": 1})), 10);
        assert_eq!(bus.publish("b", json!({})), 11);
        let sub = bus.subscribe(Some(9));
        assert_eq!(sub.replay.iter().map(|e| e.id).collect::<Vec<_>>(), vec![10, 11]);
        let data: Value = serde_json::from_str(&sub.replay[0].data).unwrap();
        assert_eq!(data["type"], "a");
        assert_eq!(data["x"], 1);
    }

    #[test]
    fn resume_replays_only_newer_events_then_live_ones() {
        let bus = EventBus::starting_at(1);
        for _ in 0..5 {
            bus.publish("e", json!({}));
        }
        let mut sub = bus.subscribe(Some(3));
        assert_eq!(sub.replay.iter().map(|e| e.id).collect::<Vec<_>>(), vec![4, 5]);
        assert!(!sub.gap);
        bus.publish("e", json!({}));
        assert_eq!(sub.live.try_recv().unwrap().id, 6);
    }

    #[test]
    fn resume_from_before_the_ring_reports_a_gap() {
        let bus = EventBus::starting_at(1);
        for _ in 0..RING_CAPACITY + 10 {
            bus.publish("e", json!({}));
        }
        let sub = bus.subscribe(Some(2));
        assert!(sub.gap);
        assert_eq!(sub.replay.len(), RING_CAPACITY);
        assert_eq!(sub.replay[0].id, 11);
    }

    #[test]
    fn the_ring_keeps_its_data_under_the_byte_budget() {
        let bus = EventBus::starting_at(1);
        let big = "x".repeat(RING_BYTES / 8);
        for _ in 0..20 {
            bus.publish("e", json!({ "big": big }));
        }
        let sub = bus.subscribe(Some(0));
        let kept: usize = sub.replay.iter().map(|e| e.data.len()).sum();
        assert!(kept <= RING_BYTES, "{kept} bytes kept");
        assert!(
            sub.replay.len() >= 7,
            "only the oldest are dropped: {} kept",
            sub.replay.len()
        );
        assert_eq!(sub.replay.last().unwrap().id, 20);
        assert!(sub.gap);
    }

    #[test]
    fn an_id_from_a_future_boot_replays_the_whole_ring() {
        let bus = EventBus::starting_at(100);
        bus.publish("e", json!({}));
        let sub = bus.subscribe(Some(5_000));
        assert_eq!(sub.replay.len(), 1);
    }
}
