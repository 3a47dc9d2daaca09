//! Baselines the broker's figures are divided by: what loopback TCP and the data disk can do
//! on this machine with no broker in the way, plus page-cache eviction and /proc sampling.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::stats::{mbps, percentiles_us};

/// Raw loopback throughput: `conns` clients each write `chunk`-byte buffers to an in-process
/// sink that reads and discards, for `secs` or `max_bytes`, whichever comes first. Like the
/// broker, the sink shares this 2-core box with its clients, so this is the ceiling a produce
/// or fetch over loopback could reach if the broker did nothing but move bytes.
pub async fn loopback(conns: usize, chunk: usize, secs: f64, max_bytes: u64) -> Result<Value> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let sink = tokio::spawn(async move {
        let mut readers = Vec::new();
        for _ in 0..conns {
            let (mut s, _) = listener.accept().await?;
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 20];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return total,
                        Ok(n) => total += n as u64,
                    }
                }
            }));
        }
        let mut total = 0u64;
        for r in readers {
            total += r.await?;
        }
        anyhow::Ok(total)
    });
    let per_conn = max_bytes / conns as u64;
    let deadline = Duration::from_secs_f64(secs);
    let cpu0 = self_cpu()?;
    let started = Instant::now();
    let mut writers = Vec::new();
    for _ in 0..conns {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        writers.push(tokio::spawn(async move {
            let buf = vec![0x5au8; chunk];
            let mut sent = 0u64;
            while sent < per_conn && started.elapsed() < deadline {
                s.write_all(&buf).await?;
                sent += chunk as u64;
            }
            s.shutdown().await?;
            anyhow::Ok(sent)
        }));
    }
    for w in writers {
        w.await??;
    }
    let received = sink.await??;
    let secs = started.elapsed().as_secs_f64();
    // Sender and sink together: the kernel's cost of moving a GB through loopback once.
    let cpu = self_cpu()? - cpu0;
    Ok(
        json!({"bytes": received, "secs": secs, "mb_s": mbps(received, secs),
              "conns": conns, "chunk": chunk,
              "cpu_s_per_gb": cpu / (received.max(1) as f64 / 1e9)}),
    )
}

/// Sequential writes of `block` bytes to one new file in `dir`, each followed by fdatasync:
/// the best a log that syncs every `block` bytes could do on this disk. With `sync` false it is
/// the page-cache write alone, whose CPU cost per GB is part of any acks=1 produce.
pub fn sync_write(
    dir: &Path,
    block: usize,
    secs: f64,
    max_bytes: u64,
    sync: bool,
) -> Result<Value> {
    let cpu0 = self_cpu()?;
    let path = dir.join(format!("loadgen-syncwrite-{block}.tmp"));
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    let buf = vec![0xa5u8; block];
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut written = 0u64;
    let mut lat = Vec::new();
    while written < max_bytes && started.elapsed() < deadline {
        let t = Instant::now();
        f.write_all(&buf)?;
        if sync {
            f.sync_data()?;
        }
        lat.push(t.elapsed().as_nanos() as u64);
        written += block as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&path)?;
    let cpu = self_cpu()? - cpu0;
    let mut j = json!({"bytes": written, "secs": secs, "mb_s": mbps(written, secs),
                       "block": block, "writes": lat.len(), "sync": sync,
                       "cpu_s_per_gb": cpu / (written.max(1) as f64 / 1e9)});
    j["latency_us"] = percentiles_us(&mut lat);
    Ok(j)
}

/// fdatasync latency: overwrite-free 4 KiB appends, each synced, `count` times or `secs`.
pub fn fsync_latency(dir: &Path, count: usize, secs: f64) -> Result<Value> {
    let path = dir.join("loadgen-fsynclat.tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    let buf = vec![0x11u8; 4096];
    let deadline = Duration::from_secs_f64(secs);
    let started = Instant::now();
    let mut lat = Vec::with_capacity(count);
    while lat.len() < count && started.elapsed() < deadline {
        let t = Instant::now();
        f.write_all(&buf)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_nanos() as u64);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    let n = lat.len();
    Ok(json!({"samples": n, "latency_us": percentiles_us(&mut lat)}))
}

fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let t = e.file_type()?;
        if t.is_dir() {
            files_under(&e.path(), out)?;
        } else if t.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

/// Resident and total pages of one file, via mmap + mincore (read-only, never faults pages in).
#[allow(unsafe_code, reason = "mmap and mincore have no safe std wrapper")]
fn residency(f: &File) -> Result<(u64, u64)> {
    let len = f.metadata()?.len() as usize;
    if len == 0 {
        return Ok((0, 0));
    }
    let page = 4096usize;
    let pages = len.div_ceil(page);
    // SAFETY: a private read-only mapping of a file we hold open, unmapped before returning;
    // mincore only reads the page tables and writes into `vec`, which has one byte per page.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        if p == libc::MAP_FAILED {
            bail!("mmap failed: {}", std::io::Error::last_os_error());
        }
        let mut vec = vec![0u8; pages];
        let rc = libc::mincore(p, len, vec.as_mut_ptr());
        libc::munmap(p, len);
        if rc != 0 {
            bail!("mincore failed: {}", std::io::Error::last_os_error());
        }
        Ok((
            vec.iter().filter(|b| *b & 1 == 1).count() as u64,
            pages as u64,
        ))
    }
}

/// Share of the files under `dir` resident in the page cache, in percent.
pub fn cached_percent(dir: &Path) -> Result<f64> {
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    let (mut res, mut tot) = (0u64, 0u64);
    for p in files {
        if let Ok(f) = File::open(&p) {
            let (r, t) = residency(&f)?;
            res += r;
            tot += t;
        }
    }
    Ok(if tot == 0 {
        0.0
    } else {
        100.0 * res as f64 / tot as f64
    })
}

/// Evicts every file under `dir` from the page cache: fdatasync (only clean pages can be
/// dropped) then POSIX_FADV_DONTNEED. Unlike drop_caches this touches only the broker's files,
/// so the other users of this shared box keep their caches. Reports residency before/after.
#[allow(unsafe_code, reason = "posix_fadvise has no safe std wrapper")]
pub fn evict(dir: &Path) -> Result<Value> {
    let before = cached_percent(dir)?;
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    for p in &files {
        if let Ok(f) = File::open(p) {
            f.sync_data().ok();
            // SAFETY: plain syscall on an open descriptor.
            unsafe {
                libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED);
            }
        }
    }
    let after = cached_percent(dir)?;
    Ok(json!({"files": files.len(), "cached_before_pct": before, "cached_after_pct": after}))
}

/// Broker process figures from /proc: RSS now and peak (kB), CPU seconds (user+system).
pub fn procstat(pid: u32) -> Result<Value> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let (user, sys) = cpu_split(pid)?;
    Ok(
        json!({"rss_kb": kb("VmRSS:"), "hwm_kb": kb("VmHWM:"), "cpu_s": user + sys,
              "user_s": user, "sys_s": sys, "threads": kb("Threads:")}),
    )
}

/// (utime, stime) of `pid` in seconds: fields 14 and 15 of /proc/pid/stat. The split matters:
/// system time is copying through the kernel (sockets, page cache), user time is the broker.
#[allow(unsafe_code, reason = "sysconf has no safe std wrapper")]
pub fn cpu_split(pid: u32) -> Result<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // comm may contain spaces; fields after the closing parenthesis are fixed.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) as f64;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Ok((field(11) / hz, field(12) / hz))
}

/// Seconds all threads of `pid` spent runnable but waiting for a CPU (second field of
/// /proc/PID/task/*/schedstat). On a shared box this says whether a slow row was the broker's
/// doing or other processes' (builds, tests) taking the cores.
pub fn runq_wait_seconds(pid: u32) -> Result<f64> {
    let mut ns = 0u64;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = t?.path().join("schedstat");
        if let Ok(text) = std::fs::read_to_string(path) {
            ns += text
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Ok(ns as f64 / 1e9)
}

/// CPU seconds (user + system) this process has used so far.
fn self_cpu() -> Result<f64> {
    let (user, sys) = cpu_split(std::process::id())?;
    Ok(user + sys)
}
