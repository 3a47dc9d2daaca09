//! Produce load: Produce requests are encoded once up front, then each of N connections keeps
//! up to `inflight` copies in flight (writer half sends, reader half counts acks), so the
//! client spends its CPU on write(2) and read(2), not on encoding.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use crate::records::{self, Rng};
use crate::stats::{mbps, percentiles_us};
use crate::wire;

/// Produce v9: flexible versions with topic names (v13 switches to topic ids).
const PRODUCE_VERSION: i16 = 9;

#[derive(Clone, Debug)]
pub struct ProduceOpts {
    pub addr: SocketAddr,
    pub topic: String,
    pub partitions: i32,
    pub record_size: usize,
    pub batch_bytes: usize,
    pub acks: i16,
    pub codec: String,
    pub conns: usize,
    pub inflight: usize,
    pub max_bytes: u64,
    pub secs: f64,
    pub pid: Option<u32>,
}

/// One pre-encoded request and what it carries.
struct Payload {
    frame: Bytes,
    records: u64,
    /// Uncompressed value bytes: what the application "sent".
    logical: u64,
}

#[derive(Default)]
struct ConnStats {
    acked: u64,
    records: u64,
    wire: u64,
    logical: u64,
    errors: u64,
    first_error: Option<i16>,
    lat_ns: Vec<u64>,
}

/// The partitions connection `c` writes to: its share when there are at least as many
/// partitions as connections, otherwise one partition shared by several connections.
fn partitions_of(c: usize, conns: usize, partitions: i32) -> Vec<i32> {
    let p = partitions as usize;
    if p >= conns {
        (c..p).step_by(conns).map(|x| x as i32).collect()
    } else {
        vec![(c % p) as i32]
    }
}

fn payload(o: &ProduceOpts, parts: &[i32], seed: u64) -> Result<Payload> {
    let codec = records::codec(&o.codec)?;
    let per_batch = (o.batch_bytes / o.record_size).max(1);
    let mut rng = Rng::new(seed);
    let mut data = Vec::new();
    for &p in parts {
        let batch = records::batch(&mut rng, per_batch, o.record_size, codec, None);
        data.push(
            PartitionProduceData::default()
                .with_index(p)
                .with_records(Some(Bytes::from(batch))),
        );
    }
    let req = ProduceRequest::default()
        .with_acks(o.acks)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
            .with_partition_data(data)]);
    let frame = wire::frame(&req, PRODUCE_VERSION, 0)?;
    let records = (per_batch * parts.len()) as u64;
    Ok(Payload {
        frame,
        records,
        logical: records * o.record_size as u64,
    })
}

pub async fn run(o: ProduceOpts) -> Result<Value> {
    if o.acks == 0 {
        bail!("acks=0 gets no responses; loadgen measures acked throughput only");
    }
    wire::create_topic(o.addr, &o.topic, o.partitions).await?;
    // A few distinct payloads per connection so consecutive batches are not byte-identical.
    let mut plans = Vec::new();
    for c in 0..o.conns {
        let parts = partitions_of(c, o.conns, o.partitions);
        let mut ps = Vec::new();
        for k in 0..4 {
            ps.push(payload(&o, &parts, (c * 16 + k + 1) as u64)?);
        }
        plans.push(ps);
    }
    let cpu0 = o.pid.map(crate::baseline::cpu_split).transpose()?;
    let wait0 = o.pid.map(crate::baseline::runq_wait_seconds).transpose()?;
    let sent_bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(o.secs);
    let mut tasks = Vec::new();
    for payloads in plans {
        let stream = wire::connect(o.addr).await?;
        let o = o.clone();
        let sent_bytes = sent_bytes.clone();
        tasks.push(tokio::spawn(async move {
            one_conn(stream, payloads, o, sent_bytes, deadline).await
        }));
    }
    let mut total = ConnStats::default();
    for t in tasks {
        let s = t.await??;
        total.acked += s.acked;
        total.records += s.records;
        total.wire += s.wire;
        total.logical += s.logical;
        total.errors += s.errors;
        total.first_error = total.first_error.or(s.first_error);
        total.lat_ns.extend(s.lat_ns);
    }
    let secs = started.elapsed().as_secs_f64();
    let mut j = json!({
        "topic": o.topic, "partitions": o.partitions, "record_size": o.record_size,
        "acks": o.acks, "codec": o.codec, "conns": o.conns, "inflight": o.inflight,
        "batch_bytes": o.batch_bytes, "requests": total.acked, "records": total.records,
        "wire_bytes": total.wire, "logical_bytes": total.logical, "secs": secs,
        "mb_s": mbps(total.wire, secs), "logical_mb_s": mbps(total.logical, secs),
        "records_s": total.records as f64 / secs, "errors": total.errors,
        "first_error": total.first_error,
    });
    j["request_latency_us"] = percentiles_us(&mut total.lat_ns);
    if let (Some(pid), Some((u0, s0))) = (o.pid, cpu0) {
        let (u1, s1) = crate::baseline::cpu_split(pid)?;
        let cpu = (u1 - u0) + (s1 - s0);
        j["broker_cpu_s"] = json!(cpu);
        j["broker_user_s"] = json!(u1 - u0);
        j["broker_sys_s"] = json!(s1 - s0);
        let wait1 = crate::baseline::runq_wait_seconds(pid)?;
        j["broker_runq_wait_s"] = json!(wait1 - wait0.unwrap_or(wait1));
        j["broker_cpu_s_per_gb"] = json!(cpu / (total.logical.max(1) as f64 / 1e9));
        j["broker"] = crate::baseline::procstat(pid)?;
    }
    Ok(j)
}

async fn one_conn(
    stream: tokio::net::TcpStream,
    payloads: Vec<Payload>,
    o: ProduceOpts,
    sent_bytes: Arc<AtomicU64>,
    deadline: Instant,
) -> Result<ConnStats> {
    let (mut rd, mut wr) = stream.into_split();
    let window = Arc::new(Semaphore::new(o.inflight));
    // Send times and payload index of requests in flight; responses come back in order.
    let pending: Arc<Mutex<VecDeque<(Instant, usize)>>> = Arc::default();
    let stats: Arc<Mutex<ConnStats>> = Arc::default();
    let payloads = Arc::new(payloads);
    let mut reader = {
        let (window, pending, stats, payloads) = (
            window.clone(),
            pending.clone(),
            stats.clone(),
            payloads.clone(),
        );
        tokio::spawn(async move {
            loop {
                let frame = wire::read_frame(&mut rd).await?;
                let Some((t, k)) = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .pop_front()
                else {
                    bail!("response with nothing in flight");
                };
                let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
                s.lat_ns.push(t.elapsed().as_nanos() as u64);
                let (_, resp) = wire::decode::<ProduceRequest>(frame, PRODUCE_VERSION)?;
                for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
                    if p.error_code != 0 {
                        s.errors += 1;
                        s.first_error.get_or_insert(p.error_code);
                    }
                }
                let p = &payloads[k];
                s.acked += 1;
                s.records += p.records;
                s.wire += p.frame.len() as u64;
                s.logical += p.logical;
                drop(s);
                window.add_permits(1);
            }
            #[allow(
                unreachable_code,
                reason = "names the task's error type; the loop ends only by `?`"
            )]
            anyhow::Ok(())
        })
    };
    let mut k = 0usize;
    let budget = o.max_bytes;
    while Instant::now() < deadline {
        let permit = tokio::select! {
            p = window.acquire() => p?,
            r = &mut reader => bail!("connection failed: {:?}", r?.err()),
        };
        permit.forget();
        let p = &payloads[k % payloads.len()];
        if sent_bytes.fetch_add(p.logical, Ordering::Relaxed) >= budget {
            window.add_permits(1);
            break;
        }
        pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back((Instant::now(), k % payloads.len()));
        wr.write_all(&p.frame).await?;
        k += 1;
    }
    // Wait until every request in flight has been answered (bounded: a broker that stops
    // answering fails the run instead of hanging it).
    let all = u32::try_from(o.inflight)?;
    tokio::select! {
        p = window.acquire_many(all) => drop(p?),
        r = &mut reader => bail!("connection failed: {:?}", r?.err()),
        _ = tokio::time::sleep(Duration::from_secs(60)) =>
            bail!("broker left requests unanswered for 60 s"),
    }
    reader.abort();
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    Ok(std::mem::take(&mut *s))
}
