//! A Strata node under test: the real binary, started on port 0 with a fresh data directory,
//! and what `/proc` says about its CPU time and memory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running node.
pub struct Node {
    child: Child,
    pub data_dir: PathBuf,
    pub grpc: String,
    pub http: String,
    pub api: String,
    args: Vec<String>,
    bin: PathBuf,
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let Some(rest) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// A field of `/proc/<pid>/status` in bytes (`VmRSS`, `VmHWM`).
pub fn status_bytes(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl Node {
    /// Starts `bin serve` on a data directory with extra flags; returns once it is ready.
    pub fn start(bin: &Path, data_dir: &Path, extra: &[String]) -> Result<Node, String> {
        std::fs::create_dir_all(data_dir).map_err(|e| e.to_string())?;
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--grpc-listen".into(),
            "127.0.0.1:0".into(),
            "--otlp-http-listen".into(),
            "127.0.0.1:0".into(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "warn,strata_server=info".into(),
        ];
        args.extend(extra.iter().cloned());
        let mut child = Command::new(bin)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel::<serde_json::Value>();
        let log_path = data_dir.join("strata.log");
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(log_path).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let (mut grpc, mut http, mut api) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(600);
        while Instant::now() < deadline {
            let Ok(v) = rx.recv_timeout(Duration::from_secs(1)) else {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("strata exited during start: {status}"));
                }
                continue;
            };
            let message = v["message"].as_str().unwrap_or("");
            if message == "listening" {
                let addr = v["addr"].as_str().unwrap_or("").to_string();
                match v["listener"].as_str() {
                    Some("otlp-grpc") => grpc = Some(addr),
                    Some("otlp-http") => http = Some(addr),
                    Some("http") => api = Some(addr),
                    _ => {}
                }
            }
            if message == "strata node ready" {
                break;
            }
        }
        match (grpc, http, api) {
            (Some(grpc), Some(http), Some(api)) => Ok(Node {
                child,
                data_dir: data_dir.to_path_buf(),
                grpc,
                http,
                api,
                args: extra.to_vec(),
                bin: bin.to_path_buf(),
            }),
            _ => {
                let _ = child.kill();
                Err("strata did not become ready".into())
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Stops the node with SIGTERM (which flushes its buffer) and waits for it.
    pub fn stop(mut self) -> Result<(), String> {
        // SAFETY: kill with a pid we own.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("strata exited with {status}"))
        }
    }

    /// Stops and starts the node again on the same data directory, with `extra` flags.
    pub fn restart(self, extra: &[String]) -> Result<Node, String> {
        let (bin, dir) = (self.bin.clone(), self.data_dir.clone());
        let _ = &self.args;
        self.stop()?;
        Node::start(&bin, &dir, extra)
    }

    /// Runs SQL through the API; returns the JSON body.
    pub async fn sql(
        &self,
        client: &reqwest::Client,
        tenant: &str,
        sql: &str,
    ) -> Result<serde_json::Value, String> {
        let r = client
            .post(format!("http://{}/api/v1/sql", self.api))
            .header("x-scope-orgid", tenant)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status();
        let body: serde_json::Value = r.json().await.map_err(|e| e.to_string())?;
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{status}: {body}"))
        }
    }

    /// A value from `/metrics` (summing every label set of the name).
    pub async fn metric(&self, client: &reqwest::Client, name: &str) -> f64 {
        let Ok(r) = client
            .get(format!("http://{}/metrics", self.api))
            .send()
            .await
        else {
            return 0.0;
        };
        let text = r.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with(name)
                    && matches!(l.as_bytes().get(name.len()), Some(b' ') | Some(b'{'))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // A node that was not stopped (an error path) must not outlive the run.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
