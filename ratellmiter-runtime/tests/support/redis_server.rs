//! A real `redis-server` on a free loopback port, one per test binary (or per test),
//! stopped when dropped. The redis tests never skip: without the server (Debian package
//! `redis-server`, or the binary named by `REDIS_SERVER`) they fail, on CI and locally.
#![allow(dead_code)] // each test binary uses part of it

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` child process.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let mut server = Self {
            port,
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
        };
        server.restart();
        server
    }

    /// The binary: `$REDIS_SERVER`, else `redis-server` on the `PATH`.
    pub fn binary() -> PathBuf {
        std::env::var_os("REDIS_SERVER").map_or_else(|| "redis-server".into(), PathBuf::from)
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server (the port stays reserved for [`restart`](Self::restart)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new(Self::binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {:?} ({e}): install the Debian package `redis-server` \
                     (apt-get install -y redis-server) or set REDIS_SERVER to the binary; \
                     the redis tests fail rather than skip without it",
                    Self::binary()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() && self.ping() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// A synchronous connection, for assertions on the server's state.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection())
            .expect("a connection to the test redis-server")
    }

    /// Calls of `command` since the last `CONFIG RESETSTAT`, from `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }

    /// Commands clients sent since the last `CONFIG RESETSTAT`, the test's own `INFO` and
    /// `CONFIG` aside: the round trips. `INFO commandstats` also counts the commands a
    /// Lua script calls, which cost no round trip; they are left out by name.
    pub fn round_trips(&self) -> u64 {
        const IN_SCRIPTS: [&str; 23] = [
            "time",
            "get",
            "set",
            "hget",
            "hset",
            "hgetall",
            "hincrby",
            "hdel",
            "pttl",
            "exists",
            "del",
            "pexpire",
            "zadd",
            "zrem",
            "zcard",
            "zrange",
            "zrangebyscore",
            "zremrangebyscore",
            "zscore",
            "lpush",
            "ltrim",
            "llen",
            "lindex",
        ];
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.connection())
            .expect("INFO commandstats");
        info.lines()
            .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(":calls="))
            .filter(|(name, _)| {
                !IN_SCRIPTS.contains(name) && *name != "info" && !name.starts_with("config")
            })
            .map(|(_, rest)| rest.split(',').next().unwrap().parse::<u64>().unwrap())
            .sum()
    }

    /// Zeroes the command statistics.
    pub fn reset_stats(&self) {
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut self.connection())
            .expect("CONFIG RESETSTAT");
    }

    /// Whether `key` exists.
    pub fn exists(&self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query::<u64>(&mut self.connection())
            .expect("EXISTS")
            == 1
    }

    /// Empties the server (`FLUSHALL`).
    pub fn flush(&self) {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut self.connection())
            .expect("FLUSHALL");
    }

    /// A field of the hash at `key`.
    pub fn hget(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query(&mut self.connection())
            .expect("HGET")
    }

    /// Redis's clock, µs since the epoch.
    pub fn time_us(&self) -> u64 {
        let (s, us): (u64, u64) = redis::cmd("TIME")
            .query(&mut self.connection())
            .expect("TIME");
        s * 1_000_000 + us
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
