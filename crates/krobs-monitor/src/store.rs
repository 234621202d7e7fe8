//! Where the run -> Slack thread mapping and the dedup keys live so that they survive a
//! restart: an append-only journal of JSON lines on the monitor's volume.
//!
//! Why a journal rather than an embedded database: the state is two small maps that fit in
//! memory, written once per event and read on the hot path; a line appended with one write(2)
//! survives the process being killed (SIGKILL, OOM, eviction), is read back at start (a torn
//! last line is skipped), and the file is rewritten without expired entries at start and when it
//! grows. No extra dependency, nothing to tune, and `cat` shows what it holds.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// How long a run keeps its thread until its outcome is sent: longer than any Job's deadline.
/// Once the outcome is sent the thread is kept only for the dedup window (a retried `finish`
/// is a duplicate within it), so memory follows the runs in flight, not the runs of a week.
pub const THREAD_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The journal is rewritten when it holds this many lines more than live entries.
const COMPACT_SLACK: usize = 200_000;

/// The store of this deployment: the journal (one replica) or Redis (shared by replicas).
pub enum Store {
    File(FileStore),
    Redis(crate::shared::RedisStore),
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("journal: {0}")]
    Io(#[from] std::io::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

impl Store {
    /// Records an event's key; true when no replica saw it within the window.
    pub async fn first_seen(&self, key: [u8; 16]) -> Result<bool, StoreError> {
        match self {
            Store::File(f) => Ok(f.first_seen(key)?),
            Store::Redis(r) => Ok(r.first_seen(key).await?),
        }
    }

    pub async fn thread(&self, run: &str) -> Result<Option<Thread>, StoreError> {
        match self {
            Store::File(f) => Ok(f.thread(run)),
            Store::Redis(r) => Ok(r.thread(run).await?),
        }
    }

    pub async fn set_thread(&self, run: &str, thread: &Thread) -> Result<(), StoreError> {
        match self {
            Store::File(f) => Ok(f.set_thread(run, thread)?),
            Store::Redis(r) => Ok(r.set_thread(run, thread).await?),
        }
    }

    /// The run's outcome is in its thread: keep the thread only for the dedup window.
    pub async fn finished(&self, run: &str) -> Result<(), StoreError> {
        match self {
            Store::File(f) => Ok(f.finished(run)?),
            Store::Redis(r) => Ok(r.finished(run).await?),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thread {
    pub channel: String,
    pub ts: String,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Seen {
        seen: String,
        until: u64,
    },
    Run {
        run: String,
        channel: String,
        ts: String,
        until: u64,
    },
}

pub struct FileStore {
    path: PathBuf,
    window: Duration,
    state: Mutex<State>,
}

struct State {
    seen: HashMap<[u8; 16], u64>,
    /// Keys in the order they expire, to forget them cheaply.
    expiry: VecDeque<([u8; 16], u64)>,
    threads: HashMap<String, (Thread, u64)>,
    /// Finished runs in the order their threads expire (all kept for the same window).
    finished: VecDeque<(String, u64)>,
    file: File,
    lines: usize,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl FileStore {
    /// Opens (or creates) the journal at `path`, keeping dedup keys for `window`.
    pub fn open(path: &Path, window: Duration) -> std::io::Result<FileStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut state = State {
            seen: HashMap::new(),
            expiry: VecDeque::new(),
            threads: HashMap::new(),
            finished: VecDeque::new(),
            file: OpenOptions::new().create(true).append(true).open(path)?,
            lines: 0,
        };
        let skipped = replay(path, window, &mut state)?;
        if skipped > 0 {
            tracing::warn!(path = %path.display(), skipped, "store: unreadable journal lines skipped");
        }
        let store = FileStore {
            path: path.to_owned(),
            window,
            state: Mutex::new(state),
        };
        store.compact(&mut store.state.lock().expect("store lock"))?;
        Ok(store)
    }

    /// Records `key`; true when it was not seen within the window.
    pub fn first_seen(&self, key: [u8; 16]) -> std::io::Result<bool> {
        let now = now();
        let mut state = self.state.lock().expect("store lock");
        forget_expired(&mut state, now);
        if state.seen.contains_key(&key) {
            return Ok(false);
        }
        let until = now + self.window.as_secs();
        append(
            &mut state,
            &Line::Seen {
                seen: hex::encode(key),
                until,
            },
        )?;
        state.seen.insert(key, until);
        state.expiry.push_back((key, until));
        self.compact_if_big(&mut state)?;
        Ok(true)
    }

    pub fn thread(&self, run: &str) -> Option<Thread> {
        let state = self.state.lock().expect("store lock");
        state.threads.get(run).map(|(t, _)| t.clone())
    }

    pub fn set_thread(&self, run: &str, thread: &Thread) -> std::io::Result<()> {
        let until = now() + THREAD_RETENTION.as_secs();
        let mut state = self.state.lock().expect("store lock");
        record_thread(&mut state, run, thread, until)
    }

    /// Shortens the run's thread to the dedup window; forgets expired finished runs.
    pub fn finished(&self, run: &str) -> std::io::Result<()> {
        let now = now();
        let mut state = self.state.lock().expect("store lock");
        forget_expired(&mut state, now);
        let Some((thread, _)) = state.threads.get(run).cloned() else {
            return Ok(());
        };
        let until = now + self.window.as_secs();
        record_thread(&mut state, run, &thread, until)?;
        state.finished.push_back((run.to_owned(), until));
        self.compact_if_big(&mut state)
    }

    fn compact_if_big(&self, state: &mut State) -> std::io::Result<()> {
        if state.lines > state.seen.len() + state.threads.len() + COMPACT_SLACK {
            self.compact(state)?;
        }
        Ok(())
    }

    /// Rewrites the journal with only the live entries (temp file, fsync, rename).
    fn compact(&self, state: &mut State) -> std::io::Result<()> {
        let now = now();
        forget_expired(state, now);
        state.threads.retain(|_, (_, until)| *until > now);
        let tmp = self.path.with_extension("compacting");
        let mut out = std::io::BufWriter::new(File::create(&tmp)?);
        let mut lines = 0;
        for (key, until) in &state.expiry {
            serde_json::to_writer(
                &mut out,
                &Line::Seen {
                    seen: hex::encode(key),
                    until: *until,
                },
            )?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        for (run, (t, until)) in &state.threads {
            let line = Line::Run {
                run: run.clone(),
                channel: t.channel.clone(),
                ts: t.ts.clone(),
                until: *until,
            };
            serde_json::to_writer(&mut out, &line)?;
            out.write_all(b"\n")?;
            lines += 1;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        state.file = OpenOptions::new().append(true).open(&self.path)?;
        state.lines = lines;
        Ok(())
    }
}

fn record_thread(state: &mut State, run: &str, thread: &Thread, until: u64) -> std::io::Result<()> {
    let line = Line::Run {
        run: run.to_owned(),
        channel: thread.channel.clone(),
        ts: thread.ts.clone(),
        until,
    };
    append(state, &line)?;
    state
        .threads
        .insert(run.to_owned(), (thread.clone(), until));
    Ok(())
}

fn append(state: &mut State, line: &Line) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line)?;
    bytes.push(b'\n');
    state.file.write_all(&bytes)?;
    state.lines += 1;
    Ok(())
}

fn forget_expired(state: &mut State, now: u64) {
    while let Some((key, until)) = state.expiry.front().copied() {
        if until > now {
            break;
        }
        state.expiry.pop_front();
        state.seen.remove(&key);
    }
    while let Some((_, until)) = state.finished.front() {
        if *until > now {
            break;
        }
        let (run, until) = state.finished.pop_front().expect("a front entry");
        // A run opened again after it finished (a new `start` for the same pod) keeps its
        // thread: only the entry written with this expiry goes.
        if state.threads.get(&run).is_some_and(|(_, u)| *u == until) {
            state.threads.remove(&run);
        }
    }
}

/// Loads the journal into `state`; returns how many lines could not be read.
fn replay(path: &Path, window: Duration, state: &mut State) -> std::io::Result<usize> {
    let now = now();
    let mut skipped = 0;
    let mut seen = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        match serde_json::from_str::<Line>(&line?) {
            Ok(Line::Seen { seen: key, until }) if until > now => {
                let mut k = [0u8; 16];
                if hex::decode_to_slice(&key, &mut k).is_ok() {
                    seen.push((k, until));
                } else {
                    skipped += 1;
                }
            }
            // A later line for a run supersedes an earlier one (a finished run's shorter
            // expiry), also when it has expired.
            Ok(Line::Run {
                run,
                channel,
                ts,
                until,
            }) => {
                if until > now {
                    state.threads.insert(run, (Thread { channel, ts }, until));
                } else {
                    state.threads.remove(&run);
                }
            }
            Ok(_) => {}
            Err(_) => skipped += 1,
        }
    }
    let horizon = now + window.as_secs();
    let mut finished: Vec<(String, u64)> = state
        .threads
        .iter()
        .filter(|(_, (_, until))| *until <= horizon)
        .map(|(run, (_, until))| (run.clone(), *until))
        .collect();
    finished.sort_by_key(|(_, until)| *until);
    state.finished = finished.into();
    seen.sort_by_key(|(_, until)| *until);
    for (key, until) in seen {
        if state.seen.insert(key, until).is_none() {
            state.expiry.push_back((key, until));
        }
    }
    Ok(skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_threads_survive_reopening_and_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("krobs-monitor-store-{}", std::process::id()));
        let path = dir.join("store.journal");
        let _ = std::fs::remove_dir_all(&dir);
        let window = Duration::from_secs(60);
        {
            let store = FileStore::open(&path, window).unwrap();
            assert!(store.first_seen([1; 16]).unwrap());
            assert!(!store.first_seen([1; 16]).unwrap());
            let t = Thread {
                channel: "C1".into(),
                ts: "1.2".into(),
            };
            store.set_thread("bash/x@p", &t).unwrap();
        }
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seen\":\"ab").unwrap();
        let store = FileStore::open(&path, window).unwrap();
        assert!(!store.first_seen([1; 16]).unwrap());
        assert!(store.first_seen([2; 16]).unwrap());
        assert_eq!(store.thread("bash/x@p").unwrap().ts, "1.2");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_finished_run_keeps_its_thread_only_for_the_window() {
        let dir = std::env::temp_dir().join(format!("krobs-monitor-done-{}", std::process::id()));
        let path = dir.join("store.journal");
        let _ = std::fs::remove_dir_all(&dir);
        let t = Thread {
            channel: "C1".into(),
            ts: "1.2".into(),
        };
        {
            let store = FileStore::open(&path, Duration::from_secs(60)).unwrap();
            store.set_thread("bash/done@p", &t).unwrap();
            store.set_thread("bash/running@p", &t).unwrap();
            store.finished("bash/done@p").unwrap();
            // Within the window a late retry still finds the thread.
            assert_eq!(store.thread("bash/done@p"), Some(t.clone()));
            let state = store.state.lock().unwrap();
            let until = state.threads["bash/done@p"].1;
            assert!(until <= now() + 60, "expiry {until} not shortened");
            assert!(state.threads["bash/running@p"].1 > now() + 60);
        }
        // A zero window: the finished run is forgotten at the next store call and after a
        // restart; the running one stays.
        let store = FileStore::open(&path, Duration::ZERO).unwrap();
        store.set_thread("bash/now@p", &t).unwrap();
        store.finished("bash/now@p").unwrap();
        assert!(store.first_seen([3; 16]).unwrap());
        assert_eq!(store.thread("bash/now@p"), None);
        assert_eq!(store.thread("bash/running@p"), Some(t.clone()));
        drop(store);
        let store = FileStore::open(&path, Duration::ZERO).unwrap();
        assert_eq!(store.thread("bash/now@p"), None);
        assert_eq!(store.thread("bash/running@p"), Some(t));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
