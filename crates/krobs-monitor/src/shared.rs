//! The store shared by replicas: Redis. Dedup keys are `SET NX EX` (the first replica to see an
//! event takes it), runs' threads plain keys with an expiry.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::AsyncCommands;

use crate::store::{Thread, THREAD_RETENTION};

const TIMEOUT: Duration = Duration::from_secs(2);
const PREFIX: &str = "krobs-monitor";

pub struct RedisStore {
    connection: ConnectionManager,
    window: Duration,
}

impl RedisStore {
    pub async fn connect(url: &str, window: Duration) -> redis::RedisResult<RedisStore> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2);
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisStore { connection, window })
    }

    pub async fn first_seen(&self, key: [u8; 16]) -> redis::RedisResult<bool> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("{PREFIX}:seen:{}", hex::encode(key)))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(self.window.as_secs())
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(set.is_some())
    }

    pub async fn thread(&self, run: &str) -> redis::RedisResult<Option<Thread>> {
        let value: Option<String> = self
            .connection
            .clone()
            .get(format!("{PREFIX}:run:{run}"))
            .await?;
        Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
    }

    pub async fn set_thread(&self, run: &str, thread: &Thread) -> redis::RedisResult<()> {
        let value = serde_json::to_string(thread).expect("a thread serializes");
        let key = format!("{PREFIX}:run:{run}");
        self.connection
            .clone()
            .set_ex(key, value, THREAD_RETENTION.as_secs())
            .await
    }

    /// The run's outcome is sent: its thread expires with the dedup window.
    pub async fn finished(&self, run: &str) -> redis::RedisResult<()> {
        let key = format!("{PREFIX}:run:{run}");
        let seconds = i64::try_from(self.window.as_secs()).unwrap_or(i64::MAX);
        let _existed: bool = self.connection.clone().expire(key, seconds).await?;
        Ok(())
    }
}
