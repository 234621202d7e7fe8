//! A fake Krobs monitor on 127.0.0.1: takes every POSTed event (answers 200 `{}`) and keeps
//! it with its path and content type.

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use super::http_server::{HttpServer, Reply, Request};

/// One POST the monitor received.
#[derive(Debug, Clone)]
pub struct Event {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// The body as JSON (a JSON string holding the text when it is not JSON).
    pub body: Value,
}

pub struct FakeMonitor {
    events: Arc<Mutex<Vec<Event>>>,
    server: HttpServer,
}

impl FakeMonitor {
    pub fn start() -> FakeMonitor {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let server = HttpServer::start(
            &[],
            Arc::new(move |req: Request| {
                let body =
                    serde_json::from_str(&req.body).unwrap_or(Value::String(req.body.clone()));
                seen.lock().unwrap().push(Event {
                    method: req.method,
                    path: req.path,
                    content_type: req.content_type,
                    body,
                });
                Reply::json(200, &json!({}))
            }),
        );
        FakeMonitor { events, server }
    }

    /// The URL events go to: `http://127.0.0.1:PORT/events`.
    pub fn url(&self) -> String {
        format!("{}/events", self.server.url())
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Forgets the events so far.
    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }
}
