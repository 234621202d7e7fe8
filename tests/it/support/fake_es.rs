//! A fake Elasticsearch 8 on 127.0.0.1 for the krobs of `languages/`: a small cluster in memory
//! (nodes, indices with their documents, shards, cluster settings, tasks) behind the endpoints
//! the krobs call, answering the way Elasticsearch 8 does (`_cat` text and JSON, error bodies,
//! `X-elastic-product`). Mutating requests change the cluster as Elasticsearch would, so that a
//! second run sees the effect: a force merge with `only_expunge_deletes=true` drops the deleted
//! documents, `_delete_by_query` deletes (and leaves them counted in `docs.deleted`), an
//! exclusion moves the node's shards away (relocating, then started on the next look), a
//! reroute with `retry_failed=true` allocates the failed shards (initializing, then started).
//!
//! Every request is recorded ([`FakeEs::requests`]); [`FakeEs::fail`]
//! makes matching requests answer 500/503 or drop the connection. An endpoint that is not
//! served answers 400 `no handler found`, as Elasticsearch does, so a krob calling something
//! unexpected fails loudly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::http_server::{HttpServer, Reply, Request};

pub const DAY_MS: i64 = 86_400_000;

/// One node of the cluster.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub id: String,
    pub ip: String,
    /// Disk use in percent (`None`: no disk stats yet).
    pub disk_percent: Option<u32>,
}

/// One index.
#[derive(Debug, Clone)]
pub struct Index {
    pub name: String,
    pub open: bool,
    pub health: String,
    /// Documents with a timestamp field (field name to epoch milliseconds).
    pub docs: Vec<BTreeMap<String, i64>>,
    /// Documents without fields the fake looks at.
    pub other_docs: u64,
    /// Deleted documents not yet merged away.
    pub deleted: u64,
    /// Flat index settings (`index.blocks.read_only_allow_delete`, ...).
    pub settings: BTreeMap<String, String>,
}

impl Index {
    pub fn new(name: &str) -> Index {
        Index {
            name: name.to_string(),
            open: true,
            health: "green".to_string(),
            docs: Vec::new(),
            other_docs: 0,
            deleted: 0,
            settings: BTreeMap::new(),
        }
    }

    /// `docs.count` and `docs.deleted`.
    pub fn counts(mut self, count: u64, deleted: u64) -> Index {
        self.other_docs = count;
        self.deleted = deleted;
        self
    }

    pub fn closed(mut self) -> Index {
        self.open = false;
        self
    }

    pub fn health(mut self, health: &str) -> Index {
        self.health = health.to_string();
        self
    }

    pub fn setting(mut self, key: &str, value: &str) -> Index {
        self.settings.insert(key.to_string(), value.to_string());
        self
    }

    /// `n` documents whose `field` is `age_ms` before now.
    pub fn docs_aged(mut self, field: &str, age_ms: i64, n: usize) -> Index {
        let t = now_ms() - age_ms;
        for _ in 0..n {
            self.docs.push(BTreeMap::from([(field.to_string(), t)]));
        }
        self
    }

    pub fn docs_count(&self) -> u64 {
        self.docs.len() as u64 + self.other_docs
    }
}

/// One shard copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub index: String,
    pub shard: u32,
    pub primary: bool,
    /// STARTED, RELOCATING, INITIALIZING or UNASSIGNED.
    pub state: String,
    pub node: Option<String>,
    /// Where a RELOCATING shard goes.
    pub relocating_to: Option<String>,
    pub unassigned_reason: Option<String>,
}

impl Shard {
    pub fn started(index: &str, shard: u32, primary: bool, node: &str) -> Shard {
        Shard {
            index: index.to_string(),
            shard,
            primary,
            state: "STARTED".to_string(),
            node: Some(node.to_string()),
            relocating_to: None,
            unassigned_reason: None,
        }
    }

    pub fn unassigned(index: &str, shard: u32, primary: bool, reason: &str) -> Shard {
        Shard {
            index: index.to_string(),
            shard,
            primary,
            state: "UNASSIGNED".to_string(),
            node: None,
            relocating_to: None,
            unassigned_reason: Some(reason.to_string()),
        }
    }

    /// `index[shard]p`, as the krobs name shards.
    pub fn key(&self) -> String {
        format!(
            "{}[{}]{}",
            self.index,
            self.shard,
            if self.primary { "p" } else { "r" }
        )
    }
}

/// A task of `_delete_by_query?wait_for_completion=false`.
#[derive(Debug, Clone)]
pub struct Task {
    /// How many more `GET _tasks/<id>` answer "running".
    pub polls_left: u32,
    pub response: Value,
}

/// How a matching request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// An Elasticsearch error body with this status (500, 503, ...).
    Status(u16),
    /// The connection is closed without an answer.
    Close,
}

/// Which requests fail: all, or those of a method and path.
#[derive(Debug, Clone)]
pub struct Failure {
    pub method: Option<String>,
    pub path: Option<String>,
    pub how: How,
}

/// One request the fake received, with the status it answered (0: connection closed).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// The body as JSON (a JSON string holding the text when it is not JSON; null when empty).
    pub body: Value,
    pub status: u16,
}

impl Recorded {
    /// `METHOD /path?query` as sent (query parameters sorted by name).
    pub fn line(&self) -> String {
        let q: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if q.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, q.join("&"))
        }
    }

    /// Whether Elasticsearch changes anything for this request: PUT and DELETE, and POST to
    /// anything but the read-only search APIs.
    pub fn is_mutating(&self) -> bool {
        match self.method.as_str() {
            "PUT" | "DELETE" => true,
            "POST" => !(self.path.ends_with("/_count") || self.path.ends_with("/_search")),
            _ => false,
        }
    }
}

/// The cluster.
#[derive(Debug, Clone, Default)]
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub indices: BTreeMap<String, Index>,
    pub shards: Vec<Shard>,
    pub persistent: BTreeMap<String, Value>,
    pub transient: BTreeMap<String, Value>,
    pub defaults: BTreeMap<String, Value>,
    pub tasks: BTreeMap<String, Task>,
    next_task: u64,
    /// How many "running" answers a new task gives before it completes.
    pub task_polls: u32,
    /// Shards (`index[shard]p`) whose allocation keeps failing: a retry leaves them unassigned.
    pub allocation_fails: Vec<String>,
}

impl Cluster {
    /// Nodes `es-1`..`es-n`, no indices, Elasticsearch 8's defaults for the settings the
    /// krobs read.
    pub fn with_nodes(n: usize) -> Cluster {
        let nodes = (1..=n)
            .map(|i| Node {
                name: format!("es-{i}"),
                id: format!("nOdE{i}xXk3kSBQIqNRm9G8cY"),
                ip: format!("10.0.0.{i}"),
                disk_percent: Some(40 + i as u32),
            })
            .collect();
        let defaults = [
            ("action.destructive_requires_name", "true"),
            ("cluster.routing.allocation.enable", "all"),
            ("cluster.routing.rebalance.enable", "all"),
            ("cluster.routing.allocation.disk.threshold_enabled", "true"),
            ("cluster.routing.allocation.disk.watermark.low", "85%"),
            ("cluster.routing.allocation.disk.watermark.high", "90%"),
            (
                "cluster.routing.allocation.disk.watermark.flood_stage",
                "95%",
            ),
            ("cluster.max_shards_per_node", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
        Cluster {
            nodes,
            defaults,
            task_polls: 1,
            ..Cluster::default()
        }
    }

    pub fn add_index(&mut self, index: Index) {
        self.indices.insert(index.name.clone(), index);
    }

    /// The node names in `cluster.routing.allocation.exclude._name`, transient over persistent.
    pub fn excluded(&self) -> Vec<String> {
        let key = "cluster.routing.allocation.exclude._name";
        let v = self.transient.get(key).or_else(|| self.persistent.get(key));
        match v {
            Some(Value::String(s)) => s
                .split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The shards on `node` (started there, or relocating away or onto it).
    pub fn shards_on(&self, node: &str) -> Vec<&Shard> {
        self.shards
            .iter()
            .filter(|s| s.node.as_deref() == Some(node) || s.relocating_to.as_deref() == Some(node))
            .collect()
    }

    /// Names of the indices `expression` names (comma-separated names and wildcards, `-name`
    /// excludes), with `expand_wildcards` (open, closed, all) for the wildcards. `Err(name)`
    /// for a concrete index that does not exist.
    fn resolve(&self, expression: &str, expand: &str) -> Result<Vec<String>, String> {
        let mut out: Vec<String> = Vec::new();
        for (i, part) in expression.split(',').enumerate() {
            if let Some(excluded) = part.strip_prefix('-').filter(|_| i > 0) {
                out.retain(|n| !glob(excluded, n));
                continue;
            }
            if part == "_all" || part.contains('*') {
                let pattern = if part == "_all" { "*" } else { part };
                for idx in self.indices.values() {
                    // `open`, `closed`, `all`, `none`, or a list (`open,closed`)
                    let kinds: Vec<&str> = expand.split(',').collect();
                    let wanted = if kinds.contains(&"all") {
                        true
                    } else if kinds.contains(&"open") || kinds.contains(&"closed") {
                        (idx.open && kinds.contains(&"open"))
                            || (!idx.open && kinds.contains(&"closed"))
                    } else {
                        idx.open && !kinds.contains(&"none")
                    };
                    if wanted && glob(pattern, &idx.name) && !out.contains(&idx.name) {
                        out.push(idx.name.clone());
                    }
                }
            } else if self.indices.contains_key(part) {
                if !out.iter().any(|n| n == part) {
                    out.push(part.to_string());
                }
            } else {
                return Err(part.to_string());
            }
        }
        out.sort();
        Ok(out)
    }

    /// The cluster a moment later: relocations and initializations finish.
    fn settle(&mut self) {
        for s in &mut self.shards {
            match s.state.as_str() {
                "RELOCATING" => {
                    s.node = s.relocating_to.take();
                    s.state = "STARTED".to_string();
                }
                "INITIALIZING" => s.state = "STARTED".to_string(),
                _ => {}
            }
        }
    }

    /// Moves the started shards off excluded nodes (onto a node that holds no copy of them).
    fn move_off_excluded(&mut self) {
        let excluded = self.excluded();
        let names: Vec<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for i in 0..self.shards.len() {
            let s = &self.shards[i];
            let Some(node) = s.node.clone() else { continue };
            if s.state != "STARTED" || !excluded.contains(&node) {
                continue;
            }
            let target = names.iter().find(|n| {
                !excluded.contains(n)
                    && !self.shards.iter().any(|o| {
                        o.index == s.index
                            && o.shard == s.shard
                            && (o.node.as_ref() == Some(*n) || o.relocating_to.as_ref() == Some(*n))
                    })
            });
            if let Some(target) = target.cloned() {
                let s = &mut self.shards[i];
                s.state = "RELOCATING".to_string();
                s.relocating_to = Some(target);
            }
        }
    }
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct State {
    cluster: Cluster,
    failures: Vec<Failure>,
    requests: Vec<Recorded>,
}

/// The running fake.
pub struct FakeEs {
    state: Arc<Mutex<State>>,
    server: HttpServer,
}

impl FakeEs {
    pub fn start(cluster: Cluster) -> FakeEs {
        let state = Arc::new(Mutex::new(State {
            cluster,
            failures: Vec::new(),
            requests: Vec::new(),
        }));
        let shared = state.clone();
        // Elasticsearch 8 names itself in every answer (its clients check it).
        let headers = &[("X-elastic-product", "Elasticsearch")];
        let server = HttpServer::start(
            headers,
            Arc::new(move |req: Request| {
                let mut st = shared.lock().unwrap();
                let failure = st
                    .failures
                    .iter()
                    .find(|f| {
                        f.method.as_deref().is_none_or(|m| m == req.method)
                            && f.path.as_deref().is_none_or(|p| p == req.path)
                    })
                    .map(|f| f.how);
                let reply = match failure {
                    Some(How::Close) => Reply::Close,
                    Some(How::Status(status)) => error(
                        status,
                        if status == 503 {
                            "cluster_block_exception"
                        } else {
                            "exception"
                        },
                        "injected by the test",
                    ),
                    None => handle(&mut st.cluster, &req),
                };
                let status = reply.status();
                let body = if req.body.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&req.body).unwrap_or(Value::String(req.body.clone()))
                };
                st.requests.push(Recorded {
                    method: req.method.clone(),
                    path: req.path.clone(),
                    query: req.query.clone(),
                    body,
                    status,
                });
                reply
            }),
        );
        FakeEs { state, server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// A copy of the cluster as it is now.
    pub fn cluster(&self) -> Cluster {
        self.state.lock().unwrap().cluster.clone()
    }

    /// Changes the cluster.
    pub fn edit(&self, f: impl FnOnce(&mut Cluster)) {
        f(&mut self.state.lock().unwrap().cluster)
    }

    /// From now on, requests matching `method` (any when `None`) and `path` (any when `None`)
    /// fail as `how` says.
    pub fn fail(&self, method: Option<&str>, path: Option<&str>, how: How) {
        self.state.lock().unwrap().failures.push(Failure {
            method: method.map(str::to_string),
            path: path.map(str::to_string),
            how,
        });
    }
}

// -------------------------------------------------------------------------------------------------
// The endpoints
// -------------------------------------------------------------------------------------------------

fn error(status: u16, kind: &str, reason: &str) -> Reply {
    Reply::json(
        status,
        &json!({
            "error": {
                "root_cause": [{"type": kind, "reason": reason}],
                "type": kind,
                "reason": reason,
            },
            "status": status,
        }),
    )
}

fn index_not_found(name: &str) -> Reply {
    Reply::json(
        404,
        &json!({
            "error": {
                "root_cause": [{
                    "type": "index_not_found_exception",
                    "reason": format!("no such index [{name}]"),
                    "resource.type": "index_or_alias",
                    "resource.id": name,
                    "index_uuid": "_na_",
                    "index": name,
                }],
                "type": "index_not_found_exception",
                "reason": format!("no such index [{name}]"),
                "resource.type": "index_or_alias",
                "resource.id": name,
                "index_uuid": "_na_",
                "index": name,
            },
            "status": 404,
        }),
    )
}

fn no_handler(req: &Request) -> Reply {
    let uri = if req.raw_query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.raw_query)
    };
    Reply::json(
        400,
        &json!({"error": format!("no handler found for uri [{uri}] and method [{}]", req.method)}),
    )
}

fn handle(c: &mut Cluster, req: &Request) -> Reply {
    let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let m = req.method.as_str();
    match (m, segments.as_slice()) {
        ("GET", ["_cluster", "settings"]) => get_cluster_settings(c, req),
        ("PUT", ["_cluster", "settings"]) => put_cluster_settings(c, req),
        ("POST", ["_cluster", "reroute"]) => reroute(c, req),
        ("GET", ["_cat", "nodes"]) => cat_nodes(c, req),
        ("GET", ["_cat", "shards"]) => cat_shards(c, req, None),
        ("GET", ["_cat", "shards", index]) => cat_shards(c, req, Some(index)),
        ("GET", ["_cat", "allocation"]) => cat_allocation(c, req),
        ("GET", ["_cat", "indices"]) => cat_indices(c, req, "*"),
        ("GET", ["_cat", "indices", pattern]) => cat_indices(c, req, pattern),
        ("GET", ["_tasks", id]) => get_task(c, id),
        ("POST", ["_tasks", id, "_cancel"]) => cancel_task(c, id),
        ("GET", [target, "_settings", name]) => get_index_settings(c, req, target, Some(name)),
        ("GET", [target, "_settings"]) => get_index_settings(c, req, target, None),
        ("PUT", [target, "_settings"]) => put_index_settings(c, req, target),
        ("POST", [target, "_forcemerge"]) => forcemerge(c, req, target),
        ("POST" | "GET", [target, "_count"]) => count(c, req, target),
        ("POST", [target, "_delete_by_query"]) => delete_by_query(c, req, target),
        ("DELETE", [target]) if !target.starts_with('_') => delete_index(c, target),
        _ => no_handler(req),
    }
}

fn flag(req: &Request, name: &str) -> bool {
    matches!(req.param(name), Some("true") | Some(""))
}

/// `a.b.c: v` as `{"a": {"b": {"c": v}}}`.
fn nest(flat: &BTreeMap<String, Value>) -> Value {
    let mut root = Map::new();
    for (key, value) in flat {
        let parts: Vec<&str> = key.split('.').collect();
        let mut cur = &mut root;
        for p in &parts[..parts.len() - 1] {
            let entry = cur
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            cur = entry.as_object_mut().unwrap();
        }
        cur.insert(parts[parts.len() - 1].to_string(), value.clone());
    }
    Value::Object(root)
}

/// `{"a": {"b": v}}` as `a.b: v` (a value of null stays null: a reset).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        // Elasticsearch keeps setting values as strings (a list stays a list of strings).
        Value::Array(a) => {
            out.insert(
                prefix.to_string(),
                Value::Array(a.iter().map(|v| json!(scalar(v))).collect()),
            );
        }
        Value::Null => {
            out.insert(prefix.to_string(), Value::Null);
        }
        v => {
            out.insert(prefix.to_string(), json!(scalar(v)));
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn settings_view(flat: &BTreeMap<String, Value>, flat_settings: bool) -> Value {
    if flat_settings {
        json!(flat)
    } else {
        nest(flat)
    }
}

fn get_cluster_settings(c: &Cluster, req: &Request) -> Reply {
    let flat = flag(req, "flat_settings");
    let mut body = json!({
        "persistent": settings_view(&c.persistent, flat),
        "transient": settings_view(&c.transient, flat),
    });
    if flag(req, "include_defaults") {
        body["defaults"] = settings_view(&c.defaults, flat);
    }
    Reply::json(200, &body)
}

fn put_cluster_settings(c: &mut Cluster, req: &Request) -> Reply {
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return error(400, "parse_exception", "request body is required");
    };
    let flat = flag(req, "flat_settings");
    let mut answer = json!({"acknowledged": true});
    for level in ["persistent", "transient"] {
        let mut changes = BTreeMap::new();
        if let Some(v) = body.get(level) {
            flatten("", v, &mut changes);
        }
        let store = if level == "persistent" {
            &mut c.persistent
        } else {
            &mut c.transient
        };
        let mut applied = BTreeMap::new();
        for (k, v) in changes {
            if v.is_null() {
                store.remove(&k);
            } else {
                store.insert(k.clone(), v.clone());
                applied.insert(k, v);
            }
        }
        answer[level] = settings_view(&applied, flat);
    }
    c.move_off_excluded();
    Reply::json(200, &answer)
}

fn reroute(c: &mut Cluster, req: &Request) -> Reply {
    if flag(req, "retry_failed") {
        let names: Vec<String> = c.nodes.iter().map(|n| n.name.clone()).collect();
        let excluded = c.excluded();
        for i in 0..c.shards.len() {
            let s = c.shards[i].clone();
            if s.state != "UNASSIGNED"
                || s.unassigned_reason.as_deref() != Some("ALLOCATION_FAILED")
                || c.allocation_fails.contains(&s.key())
            {
                continue;
            }
            let target = names.iter().find(|n| {
                !excluded.contains(n)
                    && !c.shards.iter().any(|o| {
                        o.index == s.index && o.shard == s.shard && o.node.as_ref() == Some(*n)
                    })
            });
            if let Some(target) = target {
                let s = &mut c.shards[i];
                s.state = "INITIALIZING".to_string();
                s.node = Some(target.clone());
                s.unassigned_reason = Some("ALLOCATION_FAILED".to_string());
            }
        }
    }
    if req.param("metric") == Some("none") {
        Reply::json(200, &json!({"acknowledged": true}))
    } else {
        Reply::json(
            200,
            &json!({"acknowledged": true, "state": {"cluster_uuid": "fAkEcLuStEr"}}),
        )
    }
}

/// A `_cat` answer: JSON rows with `format=json`, else aligned text (with a header line when
/// `v` is set).
fn cat(
    req: &Request,
    default_columns: &[&str],
    rows: Vec<BTreeMap<&'static str, Option<String>>>,
) -> Reply {
    let columns: Vec<String> = match req.param("h") {
        Some(h) => h.split(',').map(str::to_string).collect(),
        None => default_columns.iter().map(|s| s.to_string()).collect(),
    };
    if req.param("format") == Some("json") {
        let out: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut o = Map::new();
                for col in &columns {
                    o.insert(
                        col.clone(),
                        r.get(col.as_str())
                            .cloned()
                            .flatten()
                            .map_or(Value::Null, Value::String),
                    );
                }
                Value::Object(o)
            })
            .collect();
        return Reply::json(200, &Value::Array(out));
    }
    let mut table: Vec<Vec<String>> = Vec::new();
    if flag(req, "v") {
        table.push(columns.clone());
    }
    for r in &rows {
        table.push(
            columns
                .iter()
                .map(|col| r.get(col.as_str()).cloned().flatten().unwrap_or_default())
                .collect(),
        );
    }
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| table.iter().map(|row| row[i].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for row in &table {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        text.push_str(&cells.join(" "));
        text.push('\n');
    }
    Reply::text(200, text)
}

fn cat_nodes(c: &Cluster, req: &Request) -> Reply {
    let rows = c
        .nodes
        .iter()
        .map(|n| {
            BTreeMap::from([
                ("name", Some(n.name.clone())),
                ("ip", Some(n.ip.clone())),
                ("id", Some(n.id[..4].to_string())),
                ("node.role", Some("cdfhilmrstw".to_string())),
                (
                    "master",
                    Some(if n.name == "es-1" { "*" } else { "-" }.to_string()),
                ),
            ])
        })
        .collect();
    cat(req, &["ip", "node.role", "master", "name"], rows)
}

fn cat_shards(c: &mut Cluster, req: &Request, target: Option<&str>) -> Reply {
    let names = match target {
        Some(t) => match c.resolve(t, "all") {
            Ok(n) => Some(n),
            Err(missing) => return index_not_found(&missing),
        },
        None => None,
    };
    let node_field = |s: &Shard| -> Option<String> {
        let node = s.node.as_ref()?;
        match (&s.relocating_to, s.state.as_str()) {
            (Some(to), "RELOCATING") => {
                let t = c.nodes.iter().find(|n| &n.name == to).unwrap();
                Some(format!("{node} -> {} {} {}", t.ip, t.id, t.name))
            }
            _ => Some(node.clone()),
        }
    };
    let rows = c
        .shards
        .iter()
        .filter(|s| names.as_ref().is_none_or(|n| n.contains(&s.index)))
        .map(|s| {
            BTreeMap::from([
                ("index", Some(s.index.clone())),
                ("shard", Some(s.shard.to_string())),
                (
                    "prirep",
                    Some(if s.primary { "p" } else { "r" }.to_string()),
                ),
                ("state", Some(s.state.clone())),
                ("node", node_field(s)),
                (
                    "unassigned.reason",
                    if s.state == "STARTED" || s.state == "RELOCATING" {
                        None
                    } else {
                        s.unassigned_reason.clone()
                    },
                ),
            ])
        })
        .collect();
    let reply = cat(
        req,
        &[
            "index", "shard", "prirep", "state", "docs", "store", "ip", "node",
        ],
        rows,
    );
    // Time passes between two looks at the cluster.
    c.settle();
    reply
}

fn cat_allocation(c: &Cluster, req: &Request) -> Reply {
    let mut rows: Vec<BTreeMap<&'static str, Option<String>>> = c
        .nodes
        .iter()
        .map(|n| {
            BTreeMap::from([
                ("node", Some(n.name.clone())),
                ("shards", Some(c.shards_on(&n.name).len().to_string())),
                ("disk.percent", n.disk_percent.map(|p| p.to_string())),
                ("host", Some(n.ip.clone())),
                ("ip", Some(n.ip.clone())),
            ])
        })
        .collect();
    let unassigned = c.shards.iter().filter(|s| s.state == "UNASSIGNED").count();
    if unassigned > 0 {
        rows.push(BTreeMap::from([
            ("node", Some("UNASSIGNED".to_string())),
            ("shards", Some(unassigned.to_string())),
        ]));
    }
    cat(
        req,
        &[
            "shards",
            "disk.indices",
            "disk.used",
            "disk.avail",
            "disk.total",
            "disk.percent",
            "host",
            "ip",
            "node",
        ],
        rows,
    )
}

fn cat_indices(c: &Cluster, req: &Request, pattern: &str) -> Reply {
    let expand = req.param("expand_wildcards").unwrap_or("all");
    let names = match c.resolve(pattern, expand) {
        Ok(n) => n,
        Err(missing) => return index_not_found(&missing),
    };
    let rows = names
        .iter()
        .map(|name| {
            let i = &c.indices[name];
            BTreeMap::from([
                ("index", Some(i.name.clone())),
                (
                    "health",
                    Some(if i.open {
                        i.health.clone()
                    } else {
                        String::new()
                    }),
                ),
                (
                    "status",
                    Some(if i.open { "open" } else { "close" }.to_string()),
                ),
                ("docs.count", i.open.then(|| i.docs_count().to_string())),
                ("docs.deleted", i.open.then(|| i.deleted.to_string())),
                ("pri", Some("1".to_string())),
                ("rep", Some("1".to_string())),
            ])
        })
        .collect();
    cat(
        req,
        &[
            "health",
            "status",
            "index",
            "pri",
            "rep",
            "docs.count",
            "docs.deleted",
        ],
        rows,
    )
}

fn get_index_settings(c: &Cluster, req: &Request, target: &str, name: Option<&str>) -> Reply {
    let expand = req.param("expand_wildcards").unwrap_or("open");
    let names = match c.resolve(target, expand) {
        Ok(n) => n,
        Err(missing) => return index_not_found(&missing),
    };
    let flat = flag(req, "flat_settings");
    let mut out = Map::new();
    for n in names {
        let settings: BTreeMap<String, Value> = c.indices[&n]
            .settings
            .iter()
            .filter(|(k, _)| name.is_none_or(|f| glob(f, k)))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        // Filtered by name, an index without the setting is left out.
        if name.is_some() && settings.is_empty() {
            continue;
        }
        out.insert(n, json!({"settings": settings_view(&settings, flat)}));
    }
    Reply::json(200, &Value::Object(out))
}

fn put_index_settings(c: &mut Cluster, req: &Request, target: &str) -> Reply {
    let Ok(body) = serde_json::from_str::<Value>(&req.body) else {
        return error(400, "parse_exception", "request body is required");
    };
    let names = match c.resolve(target, "open") {
        Ok(n) => n,
        Err(missing) => return index_not_found(&missing),
    };
    let mut changes = BTreeMap::new();
    flatten("", body.get("settings").unwrap_or(&body), &mut changes);
    for n in names {
        let idx = c.indices.get_mut(&n).unwrap();
        for (k, v) in &changes {
            let key = if k.starts_with("index.") {
                k.clone()
            } else {
                format!("index.{k}")
            };
            match v {
                Value::Null => {
                    idx.settings.remove(&key);
                }
                v => {
                    idx.settings.insert(key, scalar(v));
                }
            }
        }
    }
    Reply::json(200, &json!({"acknowledged": true}))
}

fn forcemerge(c: &mut Cluster, req: &Request, target: &str) -> Reply {
    let names = match c.resolve(target, "open") {
        Ok(n) => n,
        Err(missing) => return index_not_found(&missing),
    };
    if let Some(closed) = names.iter().find(|n| !c.indices[*n].open) {
        return error(400, "index_closed_exception", &format!("closed [{closed}]"));
    }
    let expunge = flag(req, "only_expunge_deletes");
    if expunge && req.param("max_num_segments").is_some() {
        return error(
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: cannot set only_expunge_deletes and max_num_segments at the same time;",
        );
    }
    let merges_all = req.param("max_num_segments") == Some("1");
    let mut total = 0;
    for n in &names {
        let idx = c.indices.get_mut(n).unwrap();
        if expunge || merges_all {
            idx.deleted = 0;
        }
        total += 2;
    }
    Reply::json(
        200,
        &json!({"_shards": {"total": total, "successful": total, "failed": 0}}),
    )
}

fn scope(c: &Cluster, req: &Request, target: &str) -> Result<Vec<String>, Reply> {
    let expand = req.param("expand_wildcards").unwrap_or("open");
    let ignore = flag(req, "ignore_unavailable");
    let mut names = Vec::new();
    for part in target.split(',') {
        match c.resolve(part, expand) {
            Ok(n) => names.extend(n),
            Err(missing) if ignore => {
                let _ = missing;
            }
            Err(missing) => return Err(index_not_found(&missing)),
        }
    }
    names.sort();
    names.dedup();
    if let Some(closed) = names.iter().find(|n| !c.indices[*n].open) {
        if ignore {
            let closed = closed.clone();
            names.retain(|n| *n != closed);
        } else {
            return Err(error(
                400,
                "index_closed_exception",
                &format!("closed [{closed}]"),
            ));
        }
    }
    if names.is_empty() && req.param("allow_no_indices") == Some("false") {
        return Err(index_not_found(target));
    }
    Ok(names)
}

/// A date math expression (`now-30d/d`, `now`, epoch milliseconds) as epoch milliseconds.
fn date_math(v: &Value, now: i64) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let s = v.as_str()?;
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    let mut rest = s.strip_prefix("now")?;
    let mut t = now;
    let unit_ms = |u: char| -> Option<i64> {
        Some(match u {
            'w' => 7 * DAY_MS,
            'd' => DAY_MS,
            'h' | 'H' => 3_600_000,
            'm' => 60_000,
            's' => 1000,
            _ => return None,
        })
    };
    while let Some(c) = rest.chars().next() {
        match c {
            '+' | '-' => {
                let digits: String = rest[1..].chars().take_while(char::is_ascii_digit).collect();
                let n: i64 = digits.parse().ok()?;
                let unit = rest[1 + digits.len()..].chars().next()?;
                let ms = unit_ms(unit)? * n;
                t = if c == '+' { t + ms } else { t - ms };
                rest = &rest[2 + digits.len()..];
            }
            '/' => {
                let unit = rest[1..].chars().next()?;
                let ms = unit_ms(unit)?;
                t = t.div_euclid(ms) * ms;
                rest = &rest[2..];
            }
            _ => return None,
        }
    }
    Some(t)
}

/// The documents of `index` that `query` matches: `match_all`, or a `range` on one field.
fn matching(query: &Value, index: &Index) -> Result<Vec<usize>, Reply> {
    if query.get("match_all").is_some() || query.is_null() {
        return Ok((0..index.docs.len()).collect());
    }
    let Some(range) = query.get("range").and_then(Value::as_object) else {
        return Err(error(
            400,
            "parsing_exception",
            &format!("unknown query [{query}]"),
        ));
    };
    let Some((field, bounds)) = range.iter().next() else {
        return Err(error(
            400,
            "parsing_exception",
            "[range] query malformed, no field",
        ));
    };
    let now = now_ms();
    let mut tests: Vec<(String, i64)> = Vec::new();
    for (op, v) in bounds.as_object().into_iter().flatten() {
        let Some(t) = date_math(v, now) else {
            return Err(error(
                400,
                "parse_exception",
                &format!("failed to parse date field [{v}]"),
            ));
        };
        tests.push((op.clone(), t));
    }
    Ok(index
        .docs
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.get(field).is_some_and(|&x| {
                tests.iter().all(|(op, t)| match op.as_str() {
                    "lt" => x < *t,
                    "lte" => x <= *t,
                    "gt" => x > *t,
                    "gte" => x >= *t,
                    _ => false,
                })
            })
        })
        .map(|(i, _)| i)
        .collect())
}

fn query_of(req: &Request) -> Result<Value, Reply> {
    if req.body.trim().is_empty() {
        return Ok(Value::Null);
    }
    let body: Value = serde_json::from_str(&req.body)
        .map_err(|e| error(400, "x_content_parse_exception", &e.to_string()))?;
    Ok(body.get("query").cloned().unwrap_or(Value::Null))
}

fn count(c: &Cluster, req: &Request, target: &str) -> Reply {
    let names = match scope(c, req, target) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let query = match query_of(req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let mut n = 0;
    for name in &names {
        match matching(&query, &c.indices[name]) {
            Ok(m) => n += m.len(),
            Err(r) => return r,
        }
    }
    let shards = names.len();
    Reply::json(
        200,
        &json!({"count": n, "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}}),
    )
}

fn delete_by_query(c: &mut Cluster, req: &Request, target: &str) -> Reply {
    let names = match scope(c, req, target) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let query = match query_of(req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let mut deleted = 0u64;
    for name in &names {
        let m = match matching(&query, &c.indices[name]) {
            Ok(m) => m,
            Err(r) => return r,
        };
        let idx = c.indices.get_mut(name).unwrap();
        for i in m.iter().rev() {
            idx.docs.remove(*i);
        }
        idx.deleted += m.len() as u64;
        deleted += m.len() as u64;
    }
    let rps = req
        .param("requests_per_second")
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(-1.0);
    let response = json!({
        "took": 12,
        "timed_out": false,
        "total": deleted,
        "deleted": deleted,
        "batches": if deleted > 0 { 1 } else { 0 },
        "version_conflicts": 0,
        "noops": 0,
        "retries": {"bulk": 0, "search": 0},
        "throttled_millis": 0,
        "requests_per_second": rps,
        "throttled_until_millis": 0,
        "failures": [],
    });
    if req.param("wait_for_completion") == Some("false") {
        c.next_task += 1;
        let id = format!("{}:{}", c.nodes[0].id, 1000 + c.next_task);
        c.tasks.insert(
            id.clone(),
            Task {
                polls_left: c.task_polls,
                response,
            },
        );
        Reply::json(200, &json!({"task": id}))
    } else {
        Reply::json(200, &response)
    }
}

fn task_status(response: &Value, done: bool) -> Value {
    let total = response["total"].as_u64().unwrap_or(0);
    let deleted = if done { total } else { total / 2 };
    json!({
        "slice_id": null,
        "total": total,
        "updated": 0,
        "created": 0,
        "deleted": deleted,
        "batches": 1,
        "version_conflicts": 0,
        "noops": 0,
        "retries": {"bulk": 0, "search": 0},
        "throttled_millis": 0,
        "requests_per_second": response["requests_per_second"],
        "throttled_until_millis": 0,
    })
}

fn get_task(c: &mut Cluster, id: &str) -> Reply {
    let node_id = c.nodes[0].id.clone();
    let Some(task) = c.tasks.get_mut(id) else {
        return error(
            404,
            "resource_not_found_exception",
            &format!("task [{id}] isn't running and hasn't stored its results"),
        );
    };
    let running = task.polls_left > 0;
    task.polls_left = task.polls_left.saturating_sub(1);
    let (_, number) = id.split_once(':').unwrap_or(("", "0"));
    let mut body = json!({
        "completed": !running,
        "task": {
            "node": node_id,
            "id": number.parse::<u64>().unwrap_or(0),
            "type": "transport",
            "action": "indices:data/write/delete/byquery",
            "status": task_status(&task.response, !running),
            "description": "delete-by-query",
            "start_time_in_millis": now_ms() - 1000,
            "running_time_in_nanos": 1_000_000_000u64,
            "cancellable": true,
            "cancelled": false,
            "headers": {},
        },
    });
    if !running {
        body["response"] = task.response.clone();
    }
    Reply::json(200, &body)
}

/// `DELETE /<names>`: exact names only, as `action.destructive_requires_name` (true since
/// Elasticsearch 8) demands; open or closed; a missing one is a 404 and deletes nothing.
fn delete_index(c: &mut Cluster, target: &str) -> Reply {
    if target.contains('*') || target.contains('?') || target == "_all" {
        return error(
            400,
            "illegal_argument_exception",
            "Wildcard expressions or all indices are not allowed",
        );
    }
    let names = match c.resolve(target, "all") {
        Ok(n) => n,
        Err(missing) => return index_not_found(&missing),
    };
    for name in &names {
        c.indices.remove(name);
        c.shards.retain(|s| &s.index != name);
    }
    Reply::json(200, &json!({"acknowledged": true}))
}

fn cancel_task(c: &mut Cluster, id: &str) -> Reply {
    let node_id = c.nodes[0].id.clone();
    if c.tasks.remove(id).is_none() {
        return error(
            404,
            "resource_not_found_exception",
            &format!("task [{id}] is not found"),
        );
    }
    Reply::json(200, &json!({"nodes": {node_id: {"tasks": {}}}}))
}
