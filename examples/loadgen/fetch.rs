//! Fetch load: read a topic from offset 0 to its high watermark as fast as the broker serves
//! it. Each connection owns some partitions and keeps one Fetch in flight, like a consumer
//! (the next offset is only known once the previous response has been walked).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::records;
use crate::stats::mbps;
use crate::wire;

/// Fetch v12: flexible, topic names (v13 switches to topic ids).
pub const FETCH_VERSION: i16 = 12;

#[derive(Clone, Debug)]
pub struct FetchOpts {
    pub addr: SocketAddr,
    pub topic: String,
    pub partitions: i32,
    pub conns: usize,
    pub partition_max_bytes: i32,
    pub secs: f64,
    /// Broker pid: report its CPU seconds (user/system) for the read.
    pub pid: Option<u32>,
}

/// A Fetch for `parts` at their offsets, long-polling up to `max_wait_ms` for 1 byte.
pub fn request(
    topic: &str,
    parts: &[(i32, i64)],
    partition_max: i32,
    max_wait_ms: i32,
) -> FetchRequest {
    let t = FetchTopic::default()
        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partitions(
            parts
                .iter()
                .map(|&(p, off)| {
                    FetchPartition::default()
                        .with_partition(p)
                        .with_fetch_offset(off)
                        .with_current_leader_epoch(-1)
                        .with_partition_max_bytes(partition_max)
                })
                .collect(),
        );
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![t])
}

#[derive(Default)]
struct Counts {
    bytes: u64,
    records: u64,
    requests: u64,
}

pub async fn run(o: FetchOpts) -> Result<Value> {
    let cpu0 = o.pid.map(crate::baseline::cpu_split).transpose()?;
    let wait0 = o.pid.map(crate::baseline::runq_wait_seconds).transpose()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.secs);
    let conns = o.conns.min(o.partitions as usize).max(1);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let parts: Vec<i32> = (c..o.partitions as usize)
            .step_by(conns)
            .map(|p| p as i32)
            .collect();
        let o = o.clone();
        tasks.push(tokio::spawn(
            async move { one_conn(&o, parts, deadline).await },
        ));
    }
    let mut total = Counts::default();
    let mut complete = true;
    for t in tasks {
        let (c, done) = t.await??;
        total.bytes += c.bytes;
        total.records += c.records;
        total.requests += c.requests;
        complete &= done;
    }
    let secs = started.elapsed().as_secs_f64();
    let mut j = json!({"topic": o.topic, "partitions": o.partitions, "conns": conns,
              "partition_max_bytes": o.partition_max_bytes, "bytes": total.bytes,
              "records": total.records, "requests": total.requests, "secs": secs,
              "mb_s": mbps(total.bytes, secs), "reached_end": complete});
    if let (Some(pid), Some((u0, s0))) = (o.pid, cpu0) {
        let (u1, s1) = crate::baseline::cpu_split(pid)?;
        j["broker_user_s"] = json!(u1 - u0);
        j["broker_sys_s"] = json!(s1 - s0);
        let wait1 = crate::baseline::runq_wait_seconds(pid)?;
        j["broker_runq_wait_s"] = json!(wait1 - wait0.unwrap_or(wait1));
        j["broker_cpu_s_per_gb"] = json!((u1 - u0 + s1 - s0) / (total.bytes.max(1) as f64 / 1e9));
    }
    Ok(j)
}

/// Fetches `parts` to their high watermarks; returns the counts and whether it got there.
async fn one_conn(o: &FetchOpts, parts: Vec<i32>, deadline: Instant) -> Result<(Counts, bool)> {
    let mut s = wire::connect(o.addr).await?;
    // (partition, next offset, high watermark once known)
    let mut state: Vec<(i32, i64, Option<i64>)> = parts.iter().map(|&p| (p, 0, None)).collect();
    let mut c = Counts::default();
    let mut stalls = 0;
    while Instant::now() < deadline {
        let want: Vec<(i32, i64)> = state
            .iter()
            .filter(|(_, off, hw)| hw.is_none_or(|hw| *off < hw))
            .map(|&(p, off, _)| (p, off))
            .collect();
        if want.is_empty() {
            return Ok((c, true));
        }
        let req = request(&o.topic, &want, o.partition_max_bytes, 500);
        s.write_all(&wire::frame(&req, FETCH_VERSION, 1)?).await?;
        let (_, resp) =
            wire::decode::<FetchRequest>(wire::read_frame(&mut s).await?, FETCH_VERSION)?;
        c.requests += 1;
        if resp.error_code != 0 {
            bail!("fetch error {}", resp.error_code);
        }
        let mut progressed = false;
        for pd in resp.responses.iter().flat_map(|t| &t.partitions) {
            if pd.error_code != 0 {
                bail!(
                    "fetch partition {} error {}",
                    pd.partition_index,
                    pd.error_code
                );
            }
            let Some(st) = state.iter_mut().find(|s| s.0 == pd.partition_index) else {
                continue;
            };
            st.2 = Some(pd.high_watermark);
            if let Some(set) = &pd.records {
                for b in records::batches(set) {
                    if b.last_offset < st.1 {
                        continue;
                    }
                    c.bytes += b.bytes.len() as u64;
                    c.records += (b.last_offset - b.base_offset + 1) as u64;
                    st.1 = b.last_offset + 1;
                    progressed = true;
                }
            }
        }
        if !progressed {
            stalls += 1;
            if stalls > 50 {
                bail!("fetch made no progress in 50 requests");
            }
        }
    }
    Ok((c, false))
}
