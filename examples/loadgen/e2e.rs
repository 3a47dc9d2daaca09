//! End-to-end latency at a fixed rate: a producer sends uncompressed batches every millisecond
//! holding the records due by then, each value starting with its send time; a long-polling
//! consumer on another connection reads them back. Latency = receive time − send time, on
//! one clock (same process), so no clock skew enters the figure.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{FetchRequest, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::fetch::{request as fetch_request, FETCH_VERSION};
use crate::records::{self, Rng};
use crate::stats::percentiles_us;
use crate::wire;

#[derive(Clone, Debug)]
pub struct E2eOpts {
    pub addr: SocketAddr,
    pub topic: String,
    pub rate: u64,
    pub secs: f64,
    pub record_size: usize,
    pub acks: i16,
    pub warmup_secs: f64,
    /// Broker pid: report how long its threads waited for a CPU (tail latency on a shared
    /// box is often just that).
    pub pid: Option<u32>,
}

pub async fn run(o: E2eOpts) -> Result<Value> {
    if o.record_size < 8 {
        bail!("records must hold an 8-byte timestamp");
    }
    wire::create_topic(o.addr, &o.topic, 1).await?;
    let base = Instant::now();
    let total = (o.rate as f64 * o.secs) as u64;
    let warmup_ns = (o.warmup_secs * 1e9) as u64;
    let errors = Arc::new(AtomicU64::new(0));
    let wait0 = o.pid.map(crate::baseline::runq_wait_seconds).transpose()?;

    // Consumer first, parked in a long poll, as a real tailing consumer would be.
    let consumer = {
        let o = o.clone();
        tokio::spawn(async move {
            let mut s = wire::connect(o.addr).await?;
            let mut offset = 0i64;
            let mut lat = Vec::with_capacity(total as usize);
            let mut seen = 0u64;
            // Bounded: the producer's run plus a grace period for stragglers.
            let stop = base + Duration::from_secs_f64(o.secs + 5.0);
            while seen < total && Instant::now() < stop {
                let req = fetch_request(&o.topic, &[(0, offset)], 1 << 20, 500);
                s.write_all(&wire::frame(&req, FETCH_VERSION, 1)?).await?;
                let frame = wire::read_frame(&mut s).await?;
                let now = base.elapsed().as_nanos() as u64;
                let (_, resp) = wire::decode::<FetchRequest>(frame, FETCH_VERSION)?;
                for pd in resp.responses.iter().flat_map(|t| &t.partitions) {
                    if pd.error_code != 0 {
                        bail!("fetch error {}", pd.error_code);
                    }
                    let Some(set) = &pd.records else { continue };
                    for b in records::batches(set) {
                        if b.last_offset < offset {
                            continue;
                        }
                        records::for_each_value(&b, |v| {
                            let sent = u64::from_be_bytes(v[..8].try_into().unwrap_or_default());
                            seen += 1;
                            if sent >= warmup_ns {
                                lat.push(now.saturating_sub(sent));
                            }
                        })?;
                        offset = b.last_offset + 1;
                    }
                }
            }
            anyhow::Ok((seen, lat))
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;

    let stream = wire::connect(o.addr).await?;
    let (mut rd, mut wr) = stream.into_split();
    let acker = {
        let errors = errors.clone();
        tokio::spawn(async move {
            loop {
                let frame = wire::read_frame(&mut rd).await?;
                let (_, resp) = wire::decode::<ProduceRequest>(frame, 9)?;
                for p in resp.responses.iter().flat_map(|t| &t.partition_responses) {
                    if p.error_code != 0 {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            #[allow(
                unreachable_code,
                reason = "names the task's error type; the loop ends only by `?`"
            )]
            anyhow::Ok(())
        })
    };
    let mut rng = Rng::new(7);
    let mut sent = 0u64;
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < total && start.elapsed() < Duration::from_secs_f64(o.secs + 2.0) {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * o.rate as f64) as u64).min(total);
        let n = due.saturating_sub(sent).min(5_000);
        if n == 0 {
            continue;
        }
        let stamp = base.elapsed().as_nanos() as u64;
        let batch = records::batch(
            &mut rng,
            n as usize,
            o.record_size,
            gregor::records::Compression::None,
            Some(stamp),
        );
        let req = ProduceRequest::default()
            .with_acks(o.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch)))])]);
        wr.write_all(&wire::frame(&req, 9, 1)?).await?;
        sent += n;
    }
    let achieved = sent as f64 / start.elapsed().as_secs_f64();
    let (seen, mut lat) = consumer.await??;
    acker.abort();
    let mut j = json!({"rate": o.rate, "achieved_rate": achieved, "acks": o.acks,
                       "record_size": o.record_size, "sent": sent, "received": seen,
                       "errors": errors.load(Ordering::Relaxed), "secs": o.secs});
    j["latency_us"] = percentiles_us(&mut lat);
    if let (Some(pid), Some(w0)) = (o.pid, wait0) {
        j["broker_runq_wait_s"] = json!(crate::baseline::runq_wait_seconds(pid)? - w0);
    }
    Ok(j)
}
