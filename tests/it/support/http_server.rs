//! The one HTTP/1.1 server of the tests, on 127.0.0.1 (a free port), for every fake the krobs
//! and krobs-build talk to (Elasticsearch, the monitor, a registry or its token front): hyper's
//! server on a thread of its own with a single-threaded tokio runtime. Every request goes to a
//! handler as a [`Request`] (method, decoded path, query parameters, headers, body), on tokio's
//! blocking pool, so a handler may itself wait on the network (a front calling its upstream);
//! the handler answers with a [`Reply`]: a status and a body, with headers of its own if need
//! be, or [`Reply::Close`], which drops the connection without an answer (a server that dies
//! mid-request). Every answer carries the server's own headers (Elasticsearch's
//! `X-elastic-product`, say). The server keeps every request ([`HttpServer::requests`]).
//! Stopped on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// One request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The query parameters, decoded (a repeated name keeps its last value).
    pub query: BTreeMap<String, String>,
    /// The raw query string, as sent (empty when there is none).
    pub raw_query: String,
    pub content_type: Option<String>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// Every header, names in lowercase, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body as text (not UTF-8: with replacement characters).
    pub body: String,
    /// The body as sent.
    pub bytes: Bytes,
}

impl Request {
    /// The path and, when there is one, `?` and the raw query: the request's target.
    pub fn target(&self) -> String {
        if self.raw_query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.raw_query)
        }
    }

    /// The first header of that name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// What the handler answers.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, content type and body.
    Body(u16, &'static str, String),
    /// Status, headers (the content type among them) and bytes.
    Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Close the connection without an answer.
    Close,
}

impl Reply {
    /// The status answered; 0 for [`Reply::Close`].
    pub fn status(&self) -> u16 {
        match self {
            Reply::Body(status, _, _) | Reply::Raw { status, .. } => *status,
            Reply::Close => 0,
        }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::Body(status, "application/json", value.to_string())
    }

    pub fn text(status: u16, text: impl Into<String>) -> Reply {
        Reply::Body(status, "text/plain; charset=UTF-8", text.into())
    }
}

/// The answer when the handler says [`Reply::Close`]: hyper closes a connection whose service
/// fails, without writing a response.
#[derive(Debug)]
struct Closed;

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection closed on purpose")
    }
}

impl std::error::Error for Closed {}

pub type Handler = Arc<dyn Fn(Request) -> Reply + Send + Sync>;

/// The running server.
pub struct HttpServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn start(headers: &'static [(&'static str, &'static str)], handler: Handler) -> HttpServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut stopped => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let (handler, seen) = (handler.clone(), seen.clone());
                            tokio::spawn(async move {
                                let service = service_fn(move |req| {
                                    serve(headers, handler.clone(), seen.clone(), req)
                                });
                                // A closed or broken connection is the client's business.
                                let _ = http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                    }
                }
            });
        });
        HttpServer {
            addr,
            requests,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Every request received so far, in the order they came.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    headers: &'static [(&'static str, &'static str)],
    handler: Handler,
    seen: Arc<Mutex<Vec<Request>>>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Closed> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Err(Closed),
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let request = Request {
        method: parts.method.to_string(),
        path: percent_decode(parts.uri.path()),
        query: parse_query(&raw_query),
        raw_query,
        content_type: parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        authorization: parts
            .headers
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    };
    seen.lock().unwrap().push(request.clone());
    let reply = tokio::task::spawn_blocking(move || handler(request))
        .await
        .map_err(|_| Closed)?;
    let (status, own, body) = match reply {
        Reply::Body(status, content_type, text) => (
            status,
            vec![("content-type".to_string(), content_type.to_string())],
            text.into_bytes(),
        ),
        Reply::Raw {
            status,
            headers,
            body,
        } => (status, headers, body),
        Reply::Close => return Err(Closed),
    };
    let mut response = hyper::Response::builder().status(status);
    for (name, value) in own {
        response = response.header(name, value);
    }
    for (name, value) in headers {
        response = response.header(*name, *value);
    }
    Ok(response
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}

/// `a=1&b=x%2Cy` as a map, `+` as a space (a repeated name keeps its last value).
pub fn parse_query(query: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// `%XX` decoded (not UTF-8: with replacement characters).
pub fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}
