//! krobs-monitor: receives krob events and turns them into Slack threads and DogStatsD metrics.

mod config;
mod deliver;
mod event;
mod metrics;
mod queue;
mod release;
mod server;
mod shared;
mod slack;
mod statsd;
mod store;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .json()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KROBS_MONITOR_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime starts");
    match runtime.block_on(run()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("krobs-monitor: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let config = config::Config::from_env().map_err(|e| e.to_string())?;
    let metrics = Arc::new(metrics::Metrics::default());
    let store = open_store(&config).await?;
    let store = Arc::new(store);
    let scripts = match &config.release {
        Some(path) => release::Scripts::load(path)?,
        None => release::Scripts::default(),
    };
    let scripts = Arc::new(scripts);
    let queue = Arc::new(queue::Queue::new(config.queue_size));
    let statsd = statsd::Statsd::new(&config.statsd, &config.env_tag)
        .map_err(|e| format!("cannot open a DogStatsD socket: {e}"))?;
    let app = Arc::new(server::App {
        validator: event::Validator::new(),
        queue: queue.clone(),
        store: store.clone(),
        statsd,
        metrics: metrics.clone(),
        scripts: scripts.clone(),
        token: config.token.clone(),
        ready: AtomicBool::new(true),
    });
    let busy = Arc::new(AtomicBool::new(false));
    let deliverer = deliver::Deliverer {
        queue: queue.clone(),
        slack: slack::Slack::new(&config.slack_api_url, &config.slack_token, metrics),
        store,
        scripts,
        default_channel: config.default_channel.clone(),
        start_wait: config.start_wait,
        busy: busy.clone(),
    };
    tokio::spawn(deliverer.run());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {} (KROBS_MONITOR_LISTEN): {e}",
                config.listen
            )
        })?;
    tracing::info!(listen = %listener.local_addr().map_err(|e| e.to_string())?, "krobs-monitor ready");
    let stopping = app.clone();
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(async move {
            stop_signal().await;
            stopping.ready.store(false, Ordering::SeqCst);
            tracing::info!("shutting down: no new events; draining the queue");
        })
        .await
        .map_err(|e| format!("server: {e}"))?;
    drain(&queue, &busy, config.drain).await;
    Ok(())
}

async fn open_store(config: &config::Config) -> Result<store::Store, String> {
    if let Some(url) = &config.redis_url {
        let redis = shared::RedisStore::connect(url, config.dedup_window).await;
        // The URL may hold a password: never shown.
        return redis.map(store::Store::Redis).map_err(|e| {
            let (category, kind) = (e.category(), e.kind());
            format!("cannot reach Redis (KROBS_MONITOR_REDIS_URL): {category} ({kind:?})")
        });
    }
    store::FileStore::open(&config.store_path, config.dedup_window)
        .map(store::Store::File)
        .map_err(|e| {
            let path = config.store_path.display();
            format!("cannot open the store {path} (KROBS_MONITOR_STORE): {e}")
        })
}

async fn stop_signal() {
    let mut term = signal(SignalKind::terminate()).expect("a SIGTERM handler installs");
    let mut int = signal(SignalKind::interrupt()).expect("a SIGINT handler installs");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Waits until the queue is sent, at most `bound`; what is left is counted in the log.
async fn drain(queue: &queue::Queue, busy: &AtomicBool, bound: Duration) {
    let emptied = tokio::time::timeout(bound, async {
        while queue.len() > 0 || busy.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    match emptied {
        Ok(()) => tracing::info!("queue drained; stopped"),
        Err(_) => tracing::error!(
            left = queue.len(),
            bound_seconds = bound.as_secs(),
            "queue not drained within the bound; these events are not delivered"
        ),
    }
}
