//! The flush and cleaner topic configs over the wire: each is set with IncrementalAlterConfigs,
//! described with its source, and its effect observed on a live broker — `flush.messages`
//! (an acks=1 produce answered only once durable), `segment.index.bytes` (rolls),
//! `min.cleanable.dirty.ratio`, `min.compaction.lag.ms` and `max.compaction.lag.ms` (what the
//! background cleaner does, and when).

use std::time::{Duration, Instant};

use gregor::records::testutil::{build_batch, simple_batch, TestRecord};
use gregor::records::{records, BatchHeader, Compression};
use uuid::Uuid;

use crate::configs::{alter, describe};
use crate::harness::{self, create, create_with_configs, fetch, produce, produce_request, Client};

const TOPIC: i8 = 2;
const SOURCE_TOPIC_CONFIG: i8 = 1;

/// The value and source DescribeConfigs reports for one topic config.
async fn described(c: &mut Client, topic: &str, name: &str) -> (String, i8) {
    let r = describe(c, TOPIC, topic, Some(&[name]), 4).await;
    let e = &r.configs[0];
    (
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
    )
}

async fn set(c: &mut Client, topic: &str, name: &str, value: &str) {
    assert_eq!(alter(c, topic, &[(name, 0, Some(value))], false).await.0, 0);
    assert_eq!(
        described(c, topic, name).await,
        (value.to_string(), SOURCE_TOPIC_CONFIG),
        "{name}"
    );
}

/// Creates a topic with `configs`; returns its id.
async fn create_with(c: &mut Client, name: &str, configs: &[(&str, &str)]) -> Uuid {
    let resp = create_with_configs(c, name, 1, configs).await;
    assert_eq!(resp.topics[0].error_code, 0, "{:?}", resp.topics[0]);
    resp.topics[0].topic_id
}

/// Produces one uncompressed batch with one keyed record.
async fn put(c: &mut Client, topic: &str, id: Uuid, key: &str, value: &str, ts: i64) {
    let recs: Vec<TestRecord<'_>> =
        vec![(Some(key.as_bytes()), Some(value.as_bytes()), vec![], ts)];
    let batch = build_batch(&recs, Compression::None, -1, -1, -1);
    let p = produce(c, topic, id, 0, &batch, 9).await;
    assert_eq!(p.error_code, 0);
}

/// Every (offset, key, value) a consumer fetching from the start sees.
async fn consume_all(c: &mut Client, topic: &str, id: Uuid) -> Vec<(i64, String, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let data = fetch(c, topic, id, 0, offset, 12).await;
        let bytes = data.records.unwrap_or_default();
        if bytes.is_empty() {
            return out;
        }
        let mut b = &bytes[..];
        while let Some(h) = BatchHeader::new(b) {
            let n = h.total_size().unwrap();
            for r in records(&b[..n], 1 << 20).unwrap().iter() {
                let r = r.unwrap();
                let text =
                    |x: Option<&[u8]>| String::from_utf8_lossy(x.unwrap_or(b"")).into_owned();
                out.push((r.offset, text(r.key), text(r.value)));
            }
            offset = h.last_offset() + 1;
            b = &b[n..];
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_makes_acks_1_wait_for_the_fsync() {
    // No background flush within the test: only flush.messages can make data durable.
    let b = harness::start(&[("log.flush.interval.ms", "3600000")]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "f", 1).await.topics[0].topic_id;
    let log = b.broker.context().partition("f", 0).unwrap();
    let batch = simple_batch(3, 10, now_ms());
    let acks1 = produce_request("f", id, 0, &batch, 1, 9);
    let r = c.call(&acks1, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(
        log.durable_offset() < log.log_end_offset(),
        "acks=1 does not wait by default"
    );

    set(&mut c, "f", "flush.messages", "5").await;
    let r = c.call(&acks1, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert_eq!(
        log.durable_offset(),
        log.log_end_offset(),
        "6 unflushed messages >= flush.messages: answered after the fsync"
    );
    let r = c.call(&acks1, 9).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(
        log.durable_offset() < log.log_end_offset(),
        "3 unflushed: below 5"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_index_bytes_rolls_segments_at_run_time() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "ix", 1).await.topics[0].topic_id;
    let log = b.broker.context().partition("ix", 0).unwrap();
    set(&mut c, "ix", "index.interval.bytes", "0").await;
    set(&mut c, "ix", "segment.index.bytes", "48").await;
    let start = now_ms();
    for i in 0..12 {
        let p = produce(&mut c, "ix", id, 0, &simple_batch(1, 10, start + i), 9).await;
        assert_eq!(p.error_code, 0);
    }
    // 48 bytes hold 4 time index entries: a segment takes 4 batches.
    assert_eq!(log.segment_base_offsets(), vec![0, 4, 8]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cleaner_honours_ratio_and_lags_set_on_a_live_topic() {
    let b = harness::start(&[("log.cleaner.backoff.ms", "50")]).await;
    let mut c = b.client().await;
    let small = [("cleanup.policy", "compact"), ("segment.bytes", "400")];
    // min.compaction.lag.ms of an hour: fresh records stay as written.
    let id = create_with(
        &mut c,
        "lag",
        &[small[0], small[1], ("min.compaction.lag.ms", "3600000")],
    )
    .await;
    let now = now_ms();
    for round in 0..10 {
        for key in ["a", "b", "c"] {
            put(&mut c, "lag", id, key, &format!("{key}{round}"), now).await;
        }
    }
    assert_eq!(
        described(&mut c, "lag", "min.compaction.lag.ms").await,
        ("3600000".to_string(), SOURCE_TOPIC_CONFIG)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        consume_all(&mut c, "lag", id).await.len(),
        30,
        "nothing compacted within the lag"
    );
    // Lowering it on the live topic lets the cleaner in at once.
    set(&mut c, "lag", "min.compaction.lag.ms", "0").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = consume_all(&mut c, "lag", id).await;
        if seen.len() < 30 {
            // Each key's latest value survives, in order.
            let tail: Vec<_> = seen.iter().rev().take(3).map(|r| r.2.clone()).collect();
            assert_eq!(tail, vec!["c9", "b9", "a9"]);
            break;
        }
        assert!(Instant::now() < deadline, "the cleaner never compacted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // min.cleanable.dirty.ratio = 1: never dirty enough, until max.compaction.lag.ms forces it.
    let id = create_with(
        &mut c,
        "ratio",
        &[small[0], small[1], ("min.cleanable.dirty.ratio", "1")],
    )
    .await;
    let old = now_ms() - 600_000;
    for round in 0..10 {
        for key in ["a", "b", "c"] {
            put(&mut c, "ratio", id, key, &format!("{key}{round}"), old).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        consume_all(&mut c, "ratio", id).await.len(),
        30,
        "ratio 1 never cleans"
    );
    set(&mut c, "ratio", "max.compaction.lag.ms", "60000").await;
    let log = b.broker.context().partition("ratio", 0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Compacted segments become visible one by one; the cleaner's position moves at the end
    // of the pass.
    while consume_all(&mut c, "ratio", id).await.len() == 30 || log.first_dirty_offset() == 0 {
        assert!(
            Instant::now() < deadline,
            "max.compaction.lag.ms never forced a pass"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
