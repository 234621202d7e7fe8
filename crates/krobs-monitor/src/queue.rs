//! The bounded queue between the HTTP answers and Slack. When it is full, the oldest `message`
//! event goes first; `start`/`finish`/`failure` only when nothing else is left.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::event::{Event, Kind};

pub struct Queue {
    items: Mutex<VecDeque<Event>>,
    capacity: usize,
    ready: Notify,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::new()),
            capacity,
            ready: Notify::new(),
        }
    }

    /// Queues `event`; returns the event dropped to make room, if one was.
    pub fn push(&self, event: Event) -> Option<Event> {
        let mut items = self.items.lock().expect("queue lock");
        let mut dropped = None;
        if items.len() >= self.capacity {
            if let Some(at) = items.iter().position(|e| e.event == Kind::Message) {
                dropped = items.remove(at);
            } else if event.event == Kind::Message {
                return Some(event);
            } else {
                dropped = items.pop_front();
            }
        }
        items.push_back(event);
        drop(items);
        self.ready.notify_one();
        dropped
    }

    /// The oldest event, waiting for one.
    pub async fn pop(&self) -> Event {
        loop {
            let notified = self.ready.notified();
            if let Some(event) = self.items.lock().expect("queue lock").pop_front() {
                return event;
            }
            notified.await;
        }
    }

    pub fn len(&self) -> usize {
        self.items.lock().expect("queue lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, n: usize) -> Event {
        serde_json::from_value(serde_json::json!({"event": kind, "krob": "bash/x",
            "host": format!("p{n}"), "time": "t"}))
        .unwrap()
    }

    #[test]
    fn full_queue_drops_oldest_message_then_new_messages_then_oldest_lifecycle() {
        let q = Queue::new(3);
        assert!(q.push(event("start", 0)).is_none());
        assert!(q.push(event("message", 1)).is_none());
        assert!(q.push(event("message", 2)).is_none());
        assert_eq!(q.push(event("finish", 3)).unwrap().host, "p1");
        assert_eq!(q.push(event("failure", 4)).unwrap().host, "p2");
        assert_eq!(q.push(event("message", 5)).unwrap().host, "p5");
        assert_eq!(q.push(event("start", 6)).unwrap().host, "p0");
        assert_eq!(q.len(), 3);
    }
}
