//! rskafka (pure-Rust client) against a real gregor process.
//!
//! Each test starts its own broker (free port, temp log dir) and checks the data that comes
//! back: keys, values, headers, timestamps, offsets and order per partition.
//!
//! Broker: see tests/common/mod.rs.
//!
//! Results go to `compat/results/rskafka.json` (feature -> pass/fail/n/a), read by
//! `scripts/matrix.py`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{bounded, Broker, Feature, STEP};

use chrono::{DateTime, TimeZone, Utc};
use rskafka::client::error::{Error, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::{Record, RecordAndOffset};

fn feature(test: &'static str, names: &'static [&'static str]) -> Feature {
    common::keep_panic_messages();
    Feature {
        client: "rskafka",
        version: "0.6.0",
        names,
        test,
    }
}

fn record(features: &[&str], status: &str, test: &str, note: &str) {
    common::record("rskafka", "0.6.0", features, status, test, note);
}

// ------------------------------------------------------------------ helpers

async fn client(b: &Broker) -> Client {
    bounded(
        "client build",
        ClientBuilder::new(vec![b.bootstrap()]).build(),
    )
    .await
    .expect("client")
}

async fn create(c: &Client, topic: &str, partitions: i32) {
    bounded(
        "create_topic",
        c.controller_client()
            .unwrap()
            .create_topic(topic, partitions, 1, 30_000),
    )
    .await
    .expect("create_topic");
}

async fn pclient(c: &Client, topic: &str, p: i32) -> PartitionClient {
    bounded(
        "partition_client",
        c.partition_client(topic, p, UnknownTopicHandling::Retry),
    )
    .await
    .expect("partition client")
}

fn ts(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).unwrap()
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn make_records(n: usize, tag: &str, base_ts: i64) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            key: Some(format!("{tag}-key-{i}").into_bytes()),
            value: Some(format!("{tag}-value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
            headers: BTreeMap::from([
                ("empty".to_string(), vec![]),
                ("h-index".to_string(), i.to_string().into_bytes()),
                ("h-tag".to_string(), tag.as_bytes().to_vec()),
            ]),
            timestamp: ts(base_ts + i as i64),
        })
        .collect()
}

/// Fetch everything from `offset` up to the high watermark.
async fn fetch_all(pc: &PartitionClient, expect: usize) -> Vec<RecordAndOffset> {
    let mut out: Vec<RecordAndOffset> = Vec::new();
    let mut next = 0i64;
    let deadline = Instant::now() + STEP;
    while out.len() < expect {
        assert!(
            Instant::now() < deadline,
            "fetched {} of {expect} records",
            out.len()
        );
        let (recs, hw) = bounded("fetch", pc.fetch_records(next, 1..1_000_000, 500))
            .await
            .expect("fetch_records");
        for r in recs {
            if r.offset >= next {
                next = r.offset + 1;
                out.push(r);
            }
        }
        if next >= hw && out.len() < expect {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    out
}

async fn roundtrip(topic: &str, compression: Compression) {
    let b = Broker::start(&[]);
    let c = client(&b).await;
    create(&c, topic, 3).await;
    let base = now_ms() - 60_000;
    for p in 0..3i32 {
        let pc = pclient(&c, topic, p).await;
        let recs = make_records(100, &format!("{topic}-p{p}"), base);
        // two produce calls: batches of 60 and 40 records
        let o1 = bounded("produce", pc.produce(recs[..60].to_vec(), compression))
            .await
            .expect("produce 1");
        let o2 = bounded("produce", pc.produce(recs[60..].to_vec(), compression))
            .await
            .expect("produce 2");
        let offsets: Vec<i64> = o1.into_iter().chain(o2).collect();
        assert_eq!(
            offsets,
            (0..100).collect::<Vec<i64>>(),
            "partition {p}: offsets"
        );
        let got = fetch_all(&pc, 100).await;
        assert_eq!(got.len(), 100, "partition {p}");
        for (i, (g, want)) in got.iter().zip(&recs).enumerate() {
            assert_eq!(g.offset, i as i64, "partition {p}: order");
            assert_eq!(&g.record, want, "partition {p} offset {i}: record differs");
        }
        assert_eq!(
            bounded("latest", pc.get_offset(OffsetAt::Latest))
                .await
                .unwrap(),
            100
        );
    }
}

// ------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_none() {
    let _f = feature(
        "produce_consume_none",
        &["produce_none", "consume_assign", "acks_all"],
    );
    roundtrip("rs-none", Compression::NoCompression).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_gzip() {
    let _f = feature("produce_consume_gzip", &["produce_gzip"]);
    roundtrip("rs-gzip", Compression::Gzip).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_snappy() {
    let _f = feature("produce_consume_snappy", &["produce_snappy"]);
    roundtrip("rs-snappy", Compression::Snappy).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_lz4() {
    let _f = feature("produce_consume_lz4", &["produce_lz4"]);
    roundtrip("rs-lz4", Compression::Lz4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_zstd() {
    let _f = feature("produce_consume_zstd", &["produce_zstd"]);
    roundtrip("rs-zstd", Compression::Zstd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_delete_topic() {
    let _f = feature(
        "admin_create_delete_topic",
        &[
            "admin_create_topic",
            "admin_delete_topic",
            "metadata_all_topics",
        ],
    );
    let b = Broker::start(&[]);
    let c = client(&b).await;
    let ctl = c.controller_client().unwrap();
    bounded("create", ctl.create_topic("rs-admin", 4, 1, 30_000))
        .await
        .expect("create");
    let again = bounded("create again", ctl.create_topic("rs-admin", 4, 1, 30_000)).await;
    assert!(
        matches!(
            again,
            Err(Error::ServerError {
                protocol_error: ProtocolError::TopicAlreadyExists,
                ..
            })
        ),
        "second create: {again:?}"
    );
    let topics = bounded("list", c.list_topics()).await.unwrap();
    let t = topics
        .iter()
        .find(|t| t.name == "rs-admin")
        .expect("listed");
    assert_eq!(
        t.partitions.iter().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    bounded("delete", ctl.delete_topic("rs-admin", 30_000))
        .await
        .expect("delete");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let topics = bounded("list", c.list_topics()).await.unwrap();
        if !topics.iter().any(|t| t.name == "rs-admin") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rs-admin still listed after delete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = bounded("delete unknown", ctl.delete_topic("rs-never", 30_000)).await;
    assert!(
        matches!(
            gone,
            Err(Error::ServerError {
                protocol_error: ProtocolError::UnknownTopicOrPartition,
                ..
            })
        ),
        "delete unknown: {gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets() {
    let _f = feature(
        "list_offsets",
        &[
            "list_offsets_earliest",
            "list_offsets_latest",
            "list_offsets_by_time",
        ],
    );
    let b = Broker::start(&[]);
    let c = client(&b).await;
    create(&c, "rs-offsets", 2).await;
    let base = now_ms() - 100_000;
    let pc = pclient(&c, "rs-offsets", 0).await;
    let recs: Vec<Record> = (0..10)
        .map(|i| Record {
            key: Some(vec![i as u8]),
            value: Some(vec![i as u8; 10]),
            headers: BTreeMap::new(),
            timestamp: ts(base + 1000 * i),
        })
        .collect();
    bounded("produce", pc.produce(recs, Compression::NoCompression))
        .await
        .unwrap();
    let empty = pclient(&c, "rs-offsets", 1).await;
    assert_eq!(
        bounded("earliest", pc.get_offset(OffsetAt::Earliest))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        bounded("latest", pc.get_offset(OffsetAt::Latest))
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        bounded("earliest", empty.get_offset(OffsetAt::Earliest))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        bounded("latest", empty.get_offset(OffsetAt::Latest))
            .await
            .unwrap(),
        0
    );
    let at = |ms| OffsetAt::Timestamp(ts(ms));
    assert_eq!(
        bounded("by time", pc.get_offset(at(base + 3500)))
            .await
            .unwrap(),
        4
    );
    assert_eq!(
        bounded("by time", pc.get_offset(at(base))).await.unwrap(),
        0
    );
    assert_eq!(
        bounded("by time", pc.get_offset(at(base + 999_999)))
            .await
            .unwrap(),
        -1,
        "no record at/after the time: offset -1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_no_autocreate() {
    let _f = feature(
        "unknown_topic_no_autocreate",
        &["unknown_topic_no_autocreate"],
    );
    let b = Broker::start(&["--set", "auto.create.topics.enable=false"]);
    let c = client(&b).await;
    let res = bounded(
        "partition_client unknown",
        c.partition_client("rs-nope", 0, UnknownTopicHandling::Error),
    )
    .await;
    match res {
        Err(Error::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition,
            ..
        }) => {}
        Err(e) => panic!("expected UnknownTopicOrPartition, got {e}"),
        Ok(pc) => {
            let r = bounded(
                "produce unknown",
                pc.produce(make_records(1, "x", now_ms()), Compression::NoCompression),
            )
            .await;
            assert!(
                matches!(
                    r,
                    Err(Error::ServerError {
                        protocol_error: ProtocolError::UnknownTopicOrPartition,
                        ..
                    })
                ),
                "produce to unknown topic: {r:?}"
            );
        }
    }
    let topics = bounded("list", c.list_topics()).await.unwrap();
    assert!(
        !topics.iter().any(|t| t.name == "rs-nope"),
        "topic was auto-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_too_large() {
    let _f = feature("message_too_large", &["message_too_large"]);
    let b = Broker::start(&[]);
    let c = client(&b).await;
    create(&c, "rs-big", 1).await;
    let pc = pclient(&c, "rs-big", 0).await;
    let big = Record {
        key: Some(b"big".to_vec()),
        value: Some(vec![b'x'; 2 * 1024 * 1024]),
        headers: BTreeMap::new(),
        timestamp: ts(now_ms()),
    };
    let r = bounded(
        "big produce",
        pc.produce(vec![big], Compression::NoCompression),
    )
    .await;
    assert!(
        matches!(
            r,
            Err(Error::ServerError {
                protocol_error: ProtocolError::MessageTooLarge,
                ..
            })
        ),
        "expected MESSAGE_TOO_LARGE, got {r:?}"
    );
    let small = make_records(1, "small", 1_700_000_000_000);
    let o = bounded(
        "small produce",
        pc.produce(small.clone(), Compression::NoCompression),
    )
    .await
    .unwrap();
    assert_eq!(o, vec![0]);
    let got = fetch_all(&pc, 1).await;
    assert_eq!(got[0].record, small[0]);
}

/// What rskafka does not offer at all: recorded as n/a in the matrix.
#[test]
fn not_offered_by_client() {
    record(
        &["acks_0", "acks_1"],
        "n/a",
        "not_offered_by_client",
        "rskafka always produces with acks=-1 (all)",
    );
    record(
        &["consume_group", "commit_fetch_offsets"],
        "n/a",
        "not_offered_by_client",
        "rskafka has no consumer-group or offset-commit API",
    );
    record(
        &["idempotent_produce"],
        "n/a",
        "not_offered_by_client",
        "rskafka has no idempotent producer",
    );
}
