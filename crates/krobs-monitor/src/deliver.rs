//! Turns queued events into Slack threads: `start` opens a run's thread, `finish`/`failure`
//! reply in it and update its parent with the outcome, `message` goes into it. An event that
//! comes before its run's `start` waits for it a little (see `Deliverer::start_wait`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::event::{Event, Kind};
use crate::queue::{Queue, Queued};
use crate::release::{Script, Scripts};
use crate::slack::Slack;
use crate::store::{Store, Thread};

/// Slack's advice for a message's text; the tail is cut to fit.
const TEXT_MAX: usize = 3_500;
/// How often parked runs are looked up in the store (another replica may have opened their
/// thread) and their wait checked.
const RECHECK: Duration = Duration::from_millis(200);

pub struct Deliverer {
    pub queue: Arc<Queue>,
    pub slack: Slack,
    pub store: Arc<Store>,
    pub scripts: Arc<Scripts>,
    pub default_channel: String,
    /// How long a run's events wait for its `start` (krobs-run sends it in the background, so
    /// the script's own `message` may come first).
    pub start_wait: Duration,
    /// True while an event taken from the queue is being sent.
    pub busy: Arc<AtomicBool>,
}

impl Deliverer {
    /// Sends queued events, in order, for ever; a run waiting for its `start` holds back only
    /// its own events.
    pub async fn run(self) {
        let mut check = Instant::now() + RECHECK;
        loop {
            if Instant::now() >= check {
                if self.queue.has_parked() {
                    self.busy.store(true, Ordering::SeqCst);
                    self.recheck().await;
                    self.busy.store(false, Ordering::SeqCst);
                }
                check = Instant::now() + RECHECK;
            }
            tokio::select! {
                queued = self.queue.pop() => {
                    self.busy.store(true, Ordering::SeqCst);
                    self.take(queued).await;
                    self.busy.store(false, Ordering::SeqCst);
                }
                _ = tokio::time::sleep_until(check) => {}
            }
        }
    }

    /// Sends `queued`, or parks it while its run has no thread yet.
    async fn take(&self, queued: Queued) {
        let event = &queued.event;
        let run = event.run();
        if event.event == Kind::Start {
            self.deliver(event, None).await;
            return self.flush(&run).await;
        }
        if !self.queue.is_parked(&run) {
            if let Some(thread) = self.thread(&run).await {
                return self.deliver(event, Some(thread)).await;
            }
        }
        self.queue.park(queued, self.start_wait);
    }

    /// Parked runs whose thread now exists (opened by another replica), or whose wait is over,
    /// go out.
    async fn recheck(&self) {
        for (run, over) in self.queue.parked_runs() {
            let opened = self.thread(&run).await.is_some();
            if !opened && over {
                let wait_seconds = self.start_wait.as_secs();
                tracing::warn!(
                    run,
                    wait_seconds,
                    "no start for the run within the wait: its events are sent without its thread"
                );
            }
            if opened || over {
                self.flush(&run).await;
            }
        }
    }

    /// Sends the run's parked events, in the order received.
    async fn flush(&self, run: &str) {
        for event in self.queue.release(run) {
            // A `finish` sent without a thread opens one: look again each time.
            let thread = self.thread(run).await;
            self.deliver(&event, thread).await;
        }
    }

    async fn deliver(&self, event: &Event, thread: Option<Thread>) {
        let run = event.run();
        let script = self.scripts.get(&event.krob);
        let channel = script
            .channel
            .clone()
            .unwrap_or_else(|| self.default_channel.clone());
        let result = match (event.event, thread) {
            (Kind::Start, _) => self.open(&run, &channel, &parent(event, &script)).await,
            (Kind::Finish | Kind::Failure, Some(t)) => {
                let reply = self
                    .slack
                    .post(&t.channel, &outcome(event), Some(&t.ts))
                    .await;
                match reply {
                    Ok(_) => {
                        self.slack
                            .update(&t.channel, &t.ts, &parent(event, &script))
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            (Kind::Finish | Kind::Failure, None) => {
                let text = format!("{}\n{}", parent(event, &script), outcome(event));
                self.open(&run, &channel, &text).await
            }
            (Kind::Message, thread) => {
                let text = escape(event.text.as_deref().unwrap_or(""));
                let (channel, ts) = match &thread {
                    Some(t) => (t.channel.as_str(), Some(t.ts.as_str())),
                    None => (channel.as_str(), None),
                };
                self.slack.post(channel, &text, ts).await.map(|_| ())
            }
            (Kind::Metric, _) => Ok(()),
        };
        match result {
            Err(e) => {
                tracing::error!(run = %run, event = event.event.as_str(), error = %e, "event not delivered to Slack");
            }
            Ok(()) if matches!(event.event, Kind::Finish | Kind::Failure) => {
                if let Err(e) = self.store.finished(&run).await {
                    tracing::error!(run = %run, error = %e, "store: the run's end was not recorded");
                }
            }
            Ok(()) => {}
        }
    }

    async fn thread(&self, run: &str) -> Option<Thread> {
        match self.store.thread(run).await {
            Ok(thread) => thread,
            Err(e) => {
                tracing::error!(run, error = %e, "store: cannot read the run's thread");
                None
            }
        }
    }

    async fn open(
        &self,
        run: &str,
        channel: &str,
        text: &str,
    ) -> Result<(), crate::slack::Refused> {
        let posted = self.slack.post(channel, text, None).await?;
        let thread = Thread {
            channel: posted.channel,
            ts: posted.ts,
        };
        if let Err(e) = self.store.set_thread(run, &thread).await {
            tracing::error!(run, error = %e, "store: the run's thread was not recorded");
        }
        Ok(())
    }
}

/// The thread's parent: the run, and its outcome once known.
fn parent(event: &Event, script: &Script) -> String {
    let state = match event.event {
        Kind::Finish => ":white_check_mark: finished",
        Kind::Failure => ":x: failed",
        _ => ":arrow_forward: started",
    };
    let mut text = format!(
        "{state}: *{}* on `{}`",
        escape(&event.krob),
        escape(&event.host)
    );
    if let Some(owner) = &script.owner {
        text.push_str(&format!("\nowner: {}", escape(owner)));
    }
    if let Some(image) = &script.image {
        text.push_str(&format!("\nimage: `{}`", escape(image)));
    }
    text
}

/// The reply with the outcome: exit code, signal, duration, and for a failure the output tail.
fn outcome(event: &Event) -> String {
    let signal = event
        .signal
        .as_deref()
        .map(|s| format!(", signal {}", escape(s)))
        .unwrap_or_default();
    let mut text = format!(
        "{} after {:.1}s: exit code {}{signal}",
        if event.event == Kind::Finish {
            "Finished"
        } else {
            "Failed"
        },
        event.duration_seconds.unwrap_or(0.0),
        event.exit_code.unwrap_or(0),
    );
    if event.event == Kind::Failure && !event.output_tail.is_empty() {
        let tail = escape(&event.output_tail.join("\n")).replace("```", "'''");
        let room = TEXT_MAX.saturating_sub(text.len() + 10);
        text.push_str(&format!("\n```\n{}\n```", keep_end(&tail, room)));
    }
    text
}

/// Slack's control characters as entities.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The last `max` bytes of `text` (on a character boundary), marked when cut.
fn keep_end(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max + 4;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...\n{}", &text[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_reply_escapes_and_bounds_the_tail() {
        let event: Event = serde_json::from_value(serde_json::json!({"event": "failure",
            "krob": "bash/x", "host": "p", "time": "t", "exit_code": 3, "signal": "TERM",
            "duration_seconds": 1.25, "output_tail": ["<b>&", "```", "é".repeat(5000)]}))
        .unwrap();
        let text = outcome(&event);
        assert!(
            text.starts_with("Failed after 1.2s: exit code 3, signal TERM"),
            "{text}"
        );
        assert!(text.contains("&lt;b&gt;&amp;") || text.contains("..."));
        assert!(text.len() <= TEXT_MAX);
        assert_eq!(text.matches("```").count(), 2);
    }
}
