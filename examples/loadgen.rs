//! `loadgen`: Gregor's benchmark client and baseline meter, driven by `scripts/bench.sh`.
//!
//! Every mode prints one JSON object on stdout (human notes go to stderr), so the script can
//! collect results without parsing prose. All traffic goes to 127.0.0.1, and every loop is
//! bounded by both a count/byte budget and a wall-clock limit, so a run always ends by itself.
//!
//! Modes: `loopback`, `sync-write`, `fsync-latency` (baselines); `produce`, `fetch`, `e2e`
//! (broker load); `create`, `wait-ready`, `startup`, `procstat`, `evict`, `cached` (plumbing).

#[path = "loadgen/baseline.rs"]
mod baseline;
#[path = "loadgen/e2e.rs"]
mod e2e;
#[path = "loadgen/fetch.rs"]
mod fetch;
#[path = "loadgen/produce.rs"]
mod produce;
#[path = "loadgen/records.rs"]
mod records;
#[path = "loadgen/startup.rs"]
mod startup;
#[path = "loadgen/stats.rs"]
mod stats;
#[path = "loadgen/wire.rs"]
mod wire;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(about = "Gregor benchmark load generator (loopback only)")]
struct Cli {
    /// Tokio worker threads; 1 keeps the client's CPU share small on a 2-core box.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Raw loopback TCP throughput through an in-process sink.
    Loopback {
        #[arg(long, default_value_t = 4)]
        conns: usize,
        #[arg(long, default_value_t = 1 << 20)]
        chunk: usize,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 20_000_000_000)]
        max_bytes: u64,
    },
    /// Sequential `block`-byte writes, each followed by fdatasync, in `dir`.
    SyncWrite {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 1 << 20)]
        block: usize,
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        #[arg(long, default_value_t = 1 << 30)]
        max_bytes: u64,
        /// Skip the fdatasync: measures the page-cache write alone.
        #[arg(long)]
        no_sync: bool,
    },
    /// 4 KiB write + fdatasync latency in `dir`.
    FsyncLatency {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        count: usize,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
    },
    /// Pipelined pre-encoded Produce requests over N connections.
    Produce {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Uncompressed bytes per partition batch.
        #[arg(long, default_value_t = 64 * 1024)]
        batch_bytes: usize,
        /// 1 or -1 (all).
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        acks: i16,
        #[arg(long, default_value = "none")]
        codec: String,
        #[arg(long, default_value_t = 4)]
        conns: usize,
        /// Requests in flight per connection.
        #[arg(long, default_value_t = 4)]
        inflight: usize,
        /// Stop after this many uncompressed bytes...
        #[arg(long, default_value_t = 1 << 30)]
        max_bytes: u64,
        /// ...or this many seconds.
        #[arg(long, default_value_t = 3.0)]
        secs: f64,
        /// Broker pid: report its CPU seconds and RSS for this run.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Read a topic from offset 0 to its high watermark.
    Fetch {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 2)]
        conns: usize,
        #[arg(long, default_value_t = 1 << 20)]
        partition_max_bytes: i32,
        #[arg(long, default_value_t = 10.0)]
        secs: f64,
        /// Broker pid: report its CPU seconds for the read.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// End-to-end latency at a fixed record rate.
    E2e {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        rate: u64,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
        acks: i16,
        /// Records sent during the first seconds are not counted (connection set-up, first
        /// segment allocation).
        #[arg(long, default_value_t = 0.5)]
        warmup_secs: f64,
        /// Broker pid: report how long its threads waited for a CPU.
        #[arg(long)]
        pid: Option<u32>,
    },
    /// Create a topic.
    Create {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long)]
        topic: String,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        /// Every partition's replicas, e.g. `1,2,3` (the first leads them all, so one
        /// connection target serves the whole topic); default: one replica, the broker's pick.
        #[arg(long, value_delimiter = ',')]
        replicas: Vec<i32>,
    },
    /// Wait until the broker answers ApiVersions.
    WaitReady {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 30.0)]
        timeout: f64,
    },
    /// Spawn the broker, time it until it answers ApiVersions, sample idle RSS, stop it.
    Startup {
        #[arg(long)]
        bin: PathBuf,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        log: PathBuf,
        /// Seconds to stay idle before sampling RSS.
        #[arg(long, default_value_t = 1.0)]
        idle_secs: f64,
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Extra `--set name=value` for the broker (repeatable).
        #[arg(long = "set")]
        set: Vec<String>,
    },
    /// RSS, peak RSS and CPU seconds of a process.
    Procstat {
        #[arg(long)]
        pid: u32,
    },
    /// Evict the files under a directory from the page cache (fdatasync + fadvise DONTNEED).
    Evict {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Percent of the files under a directory resident in the page cache.
    Cached {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[allow(clippy::print_stdout, reason = "the result is the JSON on stdout")]
fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()?
    };
    let out = rt.block_on(run(cli.mode))?;
    println!("{out}");
    Ok(())
}

async fn run(mode: Mode) -> Result<Value> {
    Ok(match mode {
        Mode::Loopback {
            conns,
            chunk,
            secs,
            max_bytes,
        } => baseline::loopback(conns, chunk, secs, max_bytes).await?,
        Mode::SyncWrite {
            dir,
            block,
            secs,
            max_bytes,
            no_sync,
        } => baseline::sync_write(&dir, block, secs, max_bytes, !no_sync)?,
        Mode::FsyncLatency { dir, count, secs } => baseline::fsync_latency(&dir, count, secs)?,
        Mode::Produce {
            addr,
            topic,
            partitions,
            record_size,
            batch_bytes,
            acks,
            codec,
            conns,
            inflight,
            max_bytes,
            secs,
            pid,
        } => {
            if acks != 1 && acks != -1 {
                bail!("--acks must be 1 or -1");
            }
            produce::run(produce::ProduceOpts {
                addr,
                topic,
                partitions,
                record_size,
                batch_bytes,
                acks,
                codec,
                conns,
                inflight,
                max_bytes,
                secs,
                pid,
            })
            .await?
        }
        Mode::Fetch {
            addr,
            topic,
            partitions,
            conns,
            partition_max_bytes,
            secs,
            pid,
        } => {
            fetch::run(fetch::FetchOpts {
                addr,
                topic,
                partitions,
                conns,
                partition_max_bytes,
                secs,
                pid,
            })
            .await?
        }
        Mode::E2e {
            addr,
            topic,
            rate,
            secs,
            record_size,
            acks,
            warmup_secs,
            pid,
        } => {
            e2e::run(e2e::E2eOpts {
                addr,
                topic,
                rate,
                secs,
                record_size,
                acks,
                warmup_secs,
                pid,
            })
            .await?
        }
        Mode::Create {
            addr,
            topic,
            partitions,
            replicas,
        } => {
            let t = std::time::Instant::now();
            wire::create_topic_on(addr, &topic, partitions, &replicas).await?;
            serde_json::json!({"topic": topic, "partitions": partitions, "replicas": replicas,
                               "ms": t.elapsed().as_secs_f64() * 1e3})
        }
        Mode::WaitReady { addr, timeout } => startup::wait_ready(addr, timeout).await?,
        Mode::Startup {
            bin,
            dir,
            port,
            log,
            idle_secs,
            timeout,
            set,
        } => startup::run(&bin, &dir, port, &log, idle_secs, timeout, &set).await?,
        Mode::Procstat { pid } => baseline::procstat(pid)?,
        Mode::Evict { dir } => baseline::evict(&dir)?,
        Mode::Cached { dir } => serde_json::json!({"cached_pct": baseline::cached_percent(&dir)?}),
    })
}
