//! The service as a real process (`cronhook serve`), for tests that kill
//! it with SIGKILL or run several on one database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_cronhook");

pub struct ServiceProcess {
    pub child: Child,
    /// `http://127.0.0.1:port`
    pub base: String,
    /// Its instance id (lease owner).
    pub instance: String,
    /// Its log lines (JSON), after the start-up line.
    pub logs: mpsc::Receiver<String>,
}

impl ServiceProcess {
    /// Starts `cronhook serve` on `database_url` with JSON logs, on a port
    /// of its own, with `args` and `env` added; returns once it serves.
    pub fn start(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir =
            std::env::temp_dir().join(format!("cronhook-proc-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new(BIN)
            .current_dir(&dir)
            .arg("serve")
            .args(args)
            .env("DATABASE_URL", database_url)
            .env("CRONHOOK_LISTEN", "127.0.0.1:0")
            .env("CRONHOOK_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("CRONHOOK_ENCRYPTION_KEY", super::TEST_KEY)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("cronhook starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let started = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a start-up log line");
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON log lines");
            if log["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("cronhook started"))
            {
                break log;
            }
        };
        Self {
            child,
            base: format!("http://{}", started["listen"].as_str().unwrap()),
            instance: started["instance"].as_str().unwrap().to_string(),
            logs: rx,
        }
    }

    /// SIGKILL: no drain, no release, no goodbye.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a graceful exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        // Keep reading so the shutdown lines find an open pipe.
        while self.logs.recv_timeout(Duration::from_secs(30)).is_ok() {}
        self.child.wait().unwrap();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
