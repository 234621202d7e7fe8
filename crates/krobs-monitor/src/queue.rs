//! The bounded queue between the HTTP answers and Slack. When it is full, the oldest `message`
//! event goes first; `start`/`finish`/`failure` only when nothing else is left. Events of a run
//! whose `start` has not been sent yet wait here too ("parked", per run, in the order received),
//! and count in the bound like the others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::event::{Event, Kind};

/// An event taken from the queue; `seq` (the order received) ranks it when one must be dropped.
pub struct Queued {
    seq: u64,
    pub event: Event,
}

struct Parked {
    until: Instant,
    events: VecDeque<Queued>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Queued>,
    parked: HashMap<String, Parked>,
    next: u64,
}

impl Inner {
    fn len(&self) -> usize {
        self.items.len() + self.parked.values().map(|p| p.events.len()).sum::<usize>()
    }

    /// Removes the oldest event, queued or parked, that `keep_out` picks.
    fn remove_oldest(&mut self, keep_out: impl Fn(&Event) -> bool) -> Option<Event> {
        let queued = self.items.iter().position(|q| keep_out(&q.event));
        let mut oldest = queued.map(|at| (self.items[at].seq, None, at));
        for (run, parked) in &self.parked {
            if let Some(at) = parked.events.iter().position(|q| keep_out(&q.event)) {
                let seq = parked.events[at].seq;
                if oldest.as_ref().is_none_or(|(s, _, _)| seq < *s) {
                    oldest = Some((seq, Some(run.clone()), at));
                }
            }
        }
        let (_, run, at) = oldest?;
        let Some(run) = run else {
            return self.items.remove(at).map(|q| q.event);
        };
        let parked = self.parked.get_mut(&run)?;
        let removed = parked.events.remove(at).map(|q| q.event);
        if parked.events.is_empty() {
            self.parked.remove(&run);
        }
        removed
    }
}

pub struct Queue {
    inner: Mutex<Inner>,
    capacity: usize,
    ready: Notify,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            inner: Mutex::new(Inner::default()),
            capacity,
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("queue lock")
    }

    /// Queues `event`; returns the event dropped to make room, if one was.
    pub fn push(&self, event: Event) -> Option<Event> {
        let mut inner = self.lock();
        let mut dropped = None;
        if inner.len() >= self.capacity {
            dropped = inner.remove_oldest(|e| e.event == Kind::Message);
            if dropped.is_none() {
                if event.event == Kind::Message {
                    return Some(event);
                }
                dropped = inner.remove_oldest(|_| true);
            }
        }
        let seq = inner.next;
        inner.next += 1;
        inner.items.push_back(Queued { seq, event });
        drop(inner);
        self.ready.notify_one();
        dropped
    }

    /// The oldest queued event, waiting for one.
    pub async fn pop(&self) -> Queued {
        loop {
            let notified = self.ready.notified();
            if let Some(queued) = self.lock().items.pop_front() {
                return queued;
            }
            notified.await;
        }
    }

    /// Keeps `queued` back until its run's `start` is sent, at most `wait` from the run's first
    /// parked event.
    pub fn park(&self, queued: Queued, wait: Duration) {
        let run = queued.event.run();
        let mut inner = self.lock();
        let parked = inner.parked.entry(run).or_insert_with(|| Parked {
            until: Instant::now() + wait,
            events: VecDeque::new(),
        });
        parked.events.push_back(queued);
    }

    /// Whether events of `run` are parked (a later one must wait behind them).
    pub fn is_parked(&self, run: &str) -> bool {
        self.lock().parked.contains_key(run)
    }

    pub fn has_parked(&self) -> bool {
        !self.lock().parked.is_empty()
    }

    /// The runs with parked events, each with whether its wait is over.
    pub fn parked_runs(&self) -> Vec<(String, bool)> {
        let now = Instant::now();
        let inner = self.lock();
        let runs = inner.parked.iter();
        runs.map(|(run, p)| (run.clone(), p.until <= now)).collect()
    }

    /// The parked events of `run`, in the order received; they leave the queue.
    pub fn release(&self, run: &str) -> Vec<Event> {
        let parked = self.lock().parked.remove(run);
        parked.map_or_else(Vec::new, |p| {
            p.events.into_iter().map(|q| q.event).collect()
        })
    }

    /// Events waiting, queued or parked.
    pub fn len(&self) -> usize {
        self.lock().len()
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

    #[tokio::test]
    async fn parked_events_count_in_the_bound_and_go_first_when_oldest() {
        let q = Queue::new(2);
        q.push(event("message", 1));
        let first = q.pop().await;
        q.park(first, Duration::from_secs(5));
        assert!(q.is_parked("bash/x@p1") && q.has_parked());
        q.push(event("message", 2));
        assert_eq!(q.len(), 2);
        assert_eq!(q.push(event("start", 3)).unwrap().host, "p1");
        assert!(!q.has_parked());
        assert_eq!(q.len(), 2);
        assert!(q.release("bash/x@p1").is_empty());
    }

    #[tokio::test]
    async fn a_run_s_parked_events_are_released_in_order_once_its_wait_is_over() {
        let q = Queue::new(10);
        for text in ["a", "b"] {
            let mut e = event("message", 1);
            e.text = Some(text.into());
            q.push(e);
            let queued = q.pop().await;
            q.park(queued, Duration::ZERO);
        }
        assert_eq!(q.parked_runs(), [("bash/x@p1".to_owned(), true)]);
        let texts: Vec<_> = q.release("bash/x@p1").into_iter().map(|e| e.text).collect();
        assert_eq!(texts, [Some("a".to_owned()), Some("b".to_owned())]);
        assert_eq!(q.len(), 0);
    }
}
