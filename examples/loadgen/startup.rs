//! Start-up timing: spawn the broker ourselves so the clock starts at exec, poll ApiVersions
//! every millisecond until it answers, then sample idle RSS and stop it with SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::baseline::procstat;
use crate::wire;

/// Polls ApiVersions until it succeeds or `timeout` seconds pass; returns the wait in ms.
pub async fn wait_ready(addr: SocketAddr, timeout: f64) -> Result<Value> {
    let t = Instant::now();
    let limit = Duration::from_secs_f64(timeout);
    loop {
        let probe = tokio::time::timeout(Duration::from_secs(2), wire::api_versions(addr)).await;
        if matches!(probe, Ok(Ok(()))) {
            return Ok(json!({"ready_ms": t.elapsed().as_secs_f64() * 1e3}));
        }
        if t.elapsed() > limit {
            bail!("{addr} did not answer ApiVersions within {timeout} s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The `elapsed_ms` the broker itself logs with "gregor is ready", if present.
fn logged_ready_ms(log: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("gregor is ready"))?;
    let rest = &line[line.find("elapsed_ms=")? + "elapsed_ms=".len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.parse().ok()
}

#[allow(unsafe_code, reason = "kill(2) has no safe std wrapper")]
pub async fn run(
    bin: &Path,
    dir: &Path,
    port: u16,
    log: &Path,
    idle_secs: f64,
    timeout: f64,
    set: &[String],
) -> Result<Value> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(bin);
    cmd.arg("--listeners")
        .arg(format!("PLAINTEXT://127.0.0.1:{port}"))
        .arg("--log-dirs")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log)?);
    for s in set {
        cmd.arg("--set").arg(s);
    }
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child.id();
    let ready = wait_ready(addr, timeout).await;
    let ready_ms = t0.elapsed().as_secs_f64() * 1e3;
    let mut out = json!({"ready_ms": ready_ms, "pid": pid});
    if let Err(e) = &ready {
        out["error"] = json!(e.to_string());
    } else {
        out["at_ready"] = procstat(pid)?;
        tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
        out["idle"] = procstat(pid)?;
    }
    // SAFETY: signalling the child we spawned and have not yet reaped.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let t1 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if t1.elapsed() > Duration::from_secs(30) {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    out["shutdown_ms"] = json!(t1.elapsed().as_secs_f64() * 1e3);
    out["exit_code"] = json!(status.and_then(|s| s.code()));
    out["logged_ready_ms"] = json!(logged_ready_ms(log));
    ready?;
    Ok(out)
}
