//! Shared by the Rust compat suites: the gregor process and the results file.
//!
//! Broker binary: `$GREGOR_TEST_BINARY`, else `$GREGOR_BIN`, else `../../target/debug/gregor`
//! relative to this crate. Every `GREGOR_*` variable is removed from the broker's environment
//! (the broker reads GREGOR_* as settings and refuses unknown ones).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;

pub const STEP: Duration = Duration::from_secs(60);

pub async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

// ------------------------------------------------------------------ results file

static RESULTS: Mutex<()> = Mutex::new(());

/// Record `status` for `features` in compat/results/<client>.json (read-merge-write under a lock).
pub fn record(
    client: &str,
    version: &str,
    features: &[&str],
    status: &str,
    test: &str,
    note: &str,
) {
    let _g = RESULTS.lock().unwrap_or_else(|e| e.into_inner());
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../results/{client}.json"));
    let mut doc: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    if !doc.is_object() {
        doc = serde_json::json!({});
    }
    doc["client"] = client.into();
    doc["version"] = version.into();
    doc["generated"] = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string().into();
    if !doc["features"].is_object() {
        doc["features"] = serde_json::json!({});
    }
    for f in features {
        doc["features"][*f] = serde_json::json!({"status": status, "test": test, "note": note});
    }
    let _ = std::fs::create_dir_all(path.parent().unwrap());
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc).unwrap() + "\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

/// Records pass, or fail if the test panicked, when dropped at the end of the test.
pub struct Feature {
    pub client: &'static str,
    pub version: &'static str,
    pub names: &'static [&'static str],
    pub test: &'static str,
}

impl Drop for Feature {
    fn drop(&mut self) {
        let (status, note) = if std::thread::panicking() {
            let id = format!("{:?}", std::thread::current().id());
            let msg = PANICS.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            ("fail", msg.unwrap_or_default())
        } else {
            ("pass", String::new())
        };
        record(
            self.client,
            self.version,
            self.names,
            status,
            self.test,
            &note,
        );
    }
}

static PANICS: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
static HOOK: std::sync::Once = std::sync::Once::new();

/// Keep each thread's panic message (first line) so a failing Feature can note it.
pub fn keep_panic_messages() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let first: String = msg.lines().next().unwrap_or("").chars().take(300).collect();
            PANICS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(format!("{:?}", std::thread::current().id()))
                .or_insert(first);
            prev(info);
        }));
    });
}

// ------------------------------------------------------------------ broker process

pub struct Broker {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Broker {
    pub fn start(extra: &[&str]) -> Broker {
        let bin = std::env::var_os("GREGOR_TEST_BINARY")
            .or_else(|| std::env::var_os("GREGOR_BIN"))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/gregor")
            });
        assert!(bin.exists(), "gregor binary not found at {}: cargo build in the repo root, or set GREGOR_TEST_BINARY", bin.display());
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let dir = std::env::temp_dir().join(format!(
            "gregor-compat-rust-{}-{}",
            std::process::id(),
            port
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let log = std::fs::File::create(dir.join("broker.stderr.log")).unwrap();
        let mut cmd = Command::new(&bin);
        cmd.arg("--listeners")
            .arg(format!("PLAINTEXT://127.0.0.1:{port}"))
            .arg("--log-dirs")
            .arg(dir.join("data"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GREGOR_") {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("spawn gregor");
        let mut b = Broker { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        loop {
            if let Some(st) = b.child.try_wait().unwrap() {
                panic!("gregor exited {st} before listening\n{}", b.stderr_tail());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return b;
            }
            assert!(
                Instant::now() < deadline,
                "gregor did not listen within 20s\n{}",
                b.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("broker.stderr.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- gregor stderr tail ({}) ---\n{}",
                self.dir.display(),
                self.stderr_tail()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
