//! rust-rdkafka (librdkafka 2.12, built from the crate's bundled source) against gregor.
//!
//! Only built with `--features rdkafka` (compat/rust/run.sh sets it when
//! COMPAT_RUST_RDKAFKA=1, the default of install.sh/run.sh). Each test starts its own broker and
//! checks the data that comes back. Results: compat/results/rdkafka.json.
#![cfg(feature = "rdkafka")]

mod common;

use std::time::{Duration, Instant};

use common::{bounded, Broker, Feature, STEP};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode as Code;
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const CLIENT: &str = "rdkafka";

fn version() -> &'static str {
    Box::leak(
        format!(
            "rust-rdkafka 0.39 (librdkafka {})",
            rdkafka::util::get_rdkafka_version().1
        )
        .into_boxed_str(),
    )
}

fn feature(test: &'static str, names: &'static [&'static str]) -> Feature {
    common::keep_panic_messages();
    Feature {
        client: CLIENT,
        version: version(),
        names,
        test,
    }
}

fn conf(b: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", b.bootstrap())
        .set("socket.timeout.ms", "30000")
        .set("message.timeout.ms", "30000");
    c
}

async fn create(b: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = conf(b).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let res = bounded(
        "create_topics",
        admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        ),
    )
    .await
    .expect("create_topics");
    assert_eq!(res.len(), 1);
    res[0].as_ref().expect("topic created");
}

struct Rec {
    partition: i32,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    ts: i64,
}

fn make_records(n: usize, partitions: i32, tag: &str, base: i64) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            partition: i as i32 % partitions,
            key: format!("{tag}-key-{i}").into_bytes(),
            value: format!("{tag}-value-{i}-{}", "x".repeat(i % 50)).into_bytes(),
            headers: vec![
                ("h-index".into(), i.to_string().into_bytes()),
                ("h-tag".into(), tag.as_bytes().to_vec()),
                ("empty".into(), vec![]),
            ],
            ts: base + i as i64,
        })
        .collect()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Produce all records (queued together, so batches hold several); returns delivered offsets.
async fn produce(b: &Broker, topic: &str, recs: &[Rec], settings: &[(&str, &str)]) -> Vec<i64> {
    let mut c = conf(b);
    c.set("linger.ms", "20");
    for (k, v) in settings {
        c.set(*k, *v);
    }
    let p: FutureProducer = c.create().expect("producer");
    let futs: Vec<_> = recs
        .iter()
        .map(|r| {
            let mut h = OwnedHeaders::new();
            for (k, v) in &r.headers {
                h = h.insert(Header {
                    key: k,
                    value: Some(v),
                });
            }
            p.send_result(
                FutureRecord::to(topic)
                    .partition(r.partition)
                    .key(&r.key)
                    .payload(&r.value)
                    .timestamp(r.ts)
                    .headers(h),
            )
            .map_err(|(e, _)| e)
            .expect("enqueue")
        })
        .collect();
    let mut offsets = Vec::new();
    for f in futs {
        let d = bounded("delivery", f)
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        offsets.push(d.offset);
    }
    offsets
}

struct Got {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    ts: Timestamp,
}

fn consume_assigned(b: &Broker, topic: &str, partitions: i32, expect: usize) -> Vec<Got> {
    let c: BaseConsumer = conf(b)
        .set("group.id", "rdkafka-compat-assign")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + STEP;
    while out.len() < expect {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {expect}",
            out.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(500)) {
            let m = m.expect("consume error");
            out.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().unwrap_or_default().to_vec(),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default(),
                ts: m.timestamp(),
            });
        }
    }
    out
}

fn check(recs: &[Rec], offsets: Option<&[i64]>, got: &[Got]) {
    assert_eq!(got.len(), recs.len(), "consumed vs produced");
    let parts: std::collections::BTreeSet<i32> = recs.iter().map(|r| r.partition).collect();
    for p in parts {
        let want: Vec<(usize, &Rec)> = recs
            .iter()
            .enumerate()
            .filter(|(_, r)| r.partition == p)
            .collect();
        let g: Vec<&Got> = got.iter().filter(|g| g.partition == p).collect();
        assert_eq!(g.len(), want.len(), "partition {p}");
        for (j, ((i, r), g)) in want.iter().zip(g).enumerate() {
            assert_eq!(g.offset, j as i64, "p{p}: order");
            if let Some(o) = offsets {
                assert_eq!(o[*i], g.offset, "p{p}: delivered offset");
            }
            assert_eq!(g.key, r.key, "p{p}@{j} key");
            assert_eq!(g.value, r.value, "p{p}@{j} value");
            assert_eq!(g.ts, Timestamp::CreateTime(r.ts), "p{p}@{j} timestamp");
            assert_eq!(g.headers, r.headers, "p{p}@{j} headers");
        }
    }
}

async fn roundtrip(topic: &str, codec: &str, settings: &[(&str, &str)]) {
    let b = Broker::start(&[]);
    create(&b, topic, 3).await;
    let recs = make_records(300, 3, codec, now_ms() - 60_000);
    let mut s = vec![("compression.codec", codec)];
    s.extend_from_slice(settings);
    let offsets = produce(&b, topic, &recs, &s).await;
    let got = tokio::task::block_in_place(|| consume_assigned(&b, topic, 3, recs.len()));
    check(
        &recs,
        if settings.iter().any(|(k, v)| *k == "acks" && *v == "0") {
            None
        } else {
            Some(&offsets)
        },
        &got,
    );
}

macro_rules! codec_test {
    ($name:ident, $codec:literal, $features:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let _f = feature(stringify!($name), $features);
            roundtrip(
                concat!("rdk-", $codec),
                $codec,
                &[("enable.idempotence", "true")],
            )
            .await;
        }
    };
}

codec_test!(
    produce_consume_none,
    "none",
    &[
        "produce_none",
        "consume_assign",
        "idempotent_produce",
        "acks_all"
    ]
);
codec_test!(produce_consume_gzip, "gzip", &["produce_gzip"]);
codec_test!(produce_consume_snappy, "snappy", &["produce_snappy"]);
codec_test!(produce_consume_lz4, "lz4", &["produce_lz4"]);
codec_test!(produce_consume_zstd, "zstd", &["produce_zstd"]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_0() {
    let _f = feature("acks_0", &["acks_0"]);
    roundtrip(
        "rdk-acks0",
        "none",
        &[("acks", "0"), ("enable.idempotence", "false")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_1() {
    let _f = feature("acks_1", &["acks_1"]);
    roundtrip(
        "rdk-acks1",
        "none",
        &[("acks", "1"), ("enable.idempotence", "false")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_create_delete_topic() {
    let _f = feature(
        "admin_create_delete_topic",
        &["admin_create_topic", "admin_delete_topic"],
    );
    let b = Broker::start(&[]);
    let admin: AdminClient<DefaultClientContext> = conf(&b).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let nt = NewTopic::new("rdk-admin", 4, TopicReplication::Fixed(1));
    let r = bounded("create", admin.create_topics(&[nt], &opts))
        .await
        .unwrap();
    assert_eq!(r[0].as_ref().map(|s| s.as_str()), Ok("rdk-admin"));
    let nt = NewTopic::new("rdk-admin", 4, TopicReplication::Fixed(1));
    let r = bounded("create again", admin.create_topics(&[nt], &opts))
        .await
        .unwrap();
    assert_eq!(
        r[0],
        Err((
            "rdk-admin".to_string(),
            RDKafkaErrorCode::TopicAlreadyExists
        ))
    );
    let md = admin
        .inner()
        .fetch_metadata(Some("rdk-admin"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 4);
    let r = bounded("delete", admin.delete_topics(&["rdk-admin"], &opts))
        .await
        .unwrap();
    assert_eq!(r[0].as_ref().map(|s| s.as_str()), Ok("rdk-admin"));
    let r = bounded("delete unknown", admin.delete_topics(&["rdk-never"], &opts))
        .await
        .unwrap();
    assert_eq!(
        r[0],
        Err((
            "rdk-never".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))
    );
    // deleted: metadata for that one topic reports UNKNOWN_TOPIC_OR_PARTITION
    // (all-topics metadata is its own test, list_all_topics). Asked through a consumer handle:
    // an admin/producer handle sends allow_auto_topic_creation=true and would re-create it.
    let c: BaseConsumer = conf(&b)
        .set("group.id", "rdk-admin-check")
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let md = c
            .fetch_metadata(Some("rdk-admin"), Duration::from_secs(10))
            .unwrap();
        if md.topics()[0].error().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "rdk-admin still present");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_all_topics() {
    let _f = feature("list_all_topics", &["metadata_all_topics"]);
    let b = Broker::start(&[]);
    create(&b, "rdk-list-a", 1).await;
    create(&b, "rdk-list-b", 2).await;
    let admin: AdminClient<DefaultClientContext> = conf(&b).create().unwrap();
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("all-topics Metadata request");
    let mut names: Vec<(String, usize)> = md
        .topics()
        .iter()
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("rdk-list-a".to_string(), 1), ("rdk-list-b".to_string(), 2)]
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
    create(&b, "rdk-offsets", 2).await;
    let base = now_ms() - 100_000;
    let recs: Vec<Rec> = (0..10)
        .map(|i| Rec {
            partition: 0,
            key: vec![i as u8],
            value: b"v".to_vec(),
            headers: vec![],
            ts: base + 1000 * i,
        })
        .collect();
    produce(&b, "rdk-offsets", &recs, &[]).await;
    let c: BaseConsumer = conf(&b).set("group.id", "rdk-offsets").create().unwrap();
    let t = Duration::from_secs(10);
    assert_eq!(c.fetch_watermarks("rdk-offsets", 0, t).unwrap(), (0, 10));
    assert_eq!(c.fetch_watermarks("rdk-offsets", 1, t).unwrap(), (0, 0));
    let by_time = |ms: i64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("rdk-offsets", 0, Offset::Offset(ms))
            .unwrap();
        let r = c.offsets_for_times(tpl, t).unwrap();
        r.find_partition("rdk-offsets", 0).unwrap().offset()
    };
    assert_eq!(by_time(base + 3500), Offset::Offset(4));
    assert_eq!(by_time(base), Offset::Offset(0));
    assert_eq!(
        by_time(base + 999_999),
        Offset::End,
        "no record at/after: -1 (End)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_no_autocreate() {
    let _f = feature(
        "unknown_topic_no_autocreate",
        &["unknown_topic_no_autocreate"],
    );
    let b = Broker::start(&["--set", "auto.create.topics.enable=false"]);
    let p: FutureProducer = conf(&b)
        .set("message.timeout.ms", "5000")
        .set("topic.metadata.propagation.max.ms", "1000")
        .create()
        .unwrap();
    let r = bounded(
        "send to unknown",
        p.send(
            FutureRecord::<(), _>::to("rdk-nope").payload("v"),
            Duration::from_secs(5),
        ),
    )
    .await;
    match r {
        Err((KafkaError::MessageProduction(code), _)) => assert!(
            matches!(
                code,
                Code::UnknownTopicOrPartition | Code::UnknownTopic | Code::MessageTimedOut
            ),
            "unexpected error {code:?}"
        ),
        other => panic!("send to unknown topic: {other:?}"),
    }
    use rdkafka::producer::Producer;
    let md = p
        .client()
        .fetch_metadata(Some("rdk-nope"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        md.topics()[0].error(),
        Some(rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART),
        "topic was auto-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_too_large() {
    let _f = feature("message_too_large", &["message_too_large"]);
    let b = Broker::start(&[]);
    create(&b, "rdk-big", 1).await;
    // client-side limit above the broker's message.max.bytes: the rejection must be the broker's
    let p: FutureProducer = conf(&b)
        .set("message.max.bytes", "8000000")
        .create()
        .unwrap();
    let big = vec![b'x'; 2 * 1024 * 1024];
    let r = bounded(
        "big",
        p.send(
            FutureRecord::to("rdk-big")
                .partition(0)
                .key("big")
                .payload(&big),
            Duration::from_secs(5),
        ),
    )
    .await;
    match r {
        Err((KafkaError::MessageProduction(Code::MessageSizeTooLarge), _)) => {}
        other => panic!(
            "expected MESSAGE_TOO_LARGE, got {:?}",
            other.map(|d| d.offset).map_err(|e| e.0)
        ),
    }
    let d = bounded(
        "small",
        p.send(
            FutureRecord::to("rdk-big")
                .partition(0)
                .key("k")
                .payload("small")
                .timestamp(1_700_000_000_000),
            Duration::from_secs(5),
        ),
    )
    .await
    .map_err(|e| e.0)
    .unwrap();
    assert_eq!(d.offset, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_group_and_commit() {
    let _f = feature(
        "consume_group_and_commit",
        &["consume_group", "commit_fetch_offsets"],
    );
    let b = Broker::start(&[]);
    create(&b, "rdk-group", 3).await;
    let recs = make_records(90, 3, "grp", now_ms() - 5000);
    let offsets = produce(&b, "rdk-group", &recs, &[]).await;
    let got = tokio::task::block_in_place(|| {
        let c: BaseConsumer = conf(&b)
            .set("group.id", "rdk-g1")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .create()
            .unwrap();
        c.subscribe(&["rdk-group"]).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + STEP;
        while out.len() < recs.len() {
            assert!(
                Instant::now() < deadline,
                "group consumed {} of {}",
                out.len(),
                recs.len()
            );
            if let Some(m) = c.poll(Duration::from_millis(500)) {
                let m = m.expect("consume");
                out.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                                .collect()
                        })
                        .unwrap_or_default(),
                    ts: m.timestamp(),
                });
            }
        }
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition("rdk-group", p);
        }
        let committed = c
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("committed");
        for p in 0..3 {
            assert_eq!(
                committed.find_partition("rdk-group", p).unwrap().offset(),
                Offset::Offset(30),
                "p{p}"
            );
        }
        out
    });
    check(&recs, Some(&offsets), &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions() {
    let _f = feature("transactions", &["transactions"]);
    let b = Broker::start(&[]);
    create(&b, "rdk-txn", 2).await;
    tokio::task::block_in_place(|| {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let t = Duration::from_secs(30);
        let p: BaseProducer = conf(&b)
            .set("transactional.id", "rdk-tx")
            .create()
            .expect("transactional producer");
        p.init_transactions(t).expect("init_transactions");
        let send = |tag: &str, n: i32| {
            for i in 0..n {
                let key = format!("{tag}-key-{i}");
                let value = format!("{tag}-{i}");
                p.send(
                    BaseRecord::to("rdk-txn")
                        .partition(i % 2)
                        .key(&key)
                        .payload(&value),
                )
                .map_err(|(e, _)| e)
                .expect("enqueue");
            }
        };
        p.begin_transaction().expect("begin");
        send("committed", 20);
        p.commit_transaction(t).expect("commit");
        p.begin_transaction().expect("begin");
        send("aborted", 10);
        p.flush(t).expect("flush"); // in the log before the abort
        p.abort_transaction(t).expect("abort");

        // A read_committed consumer sees exactly the committed records, per partition in order.
        let c: BaseConsumer = conf(&b)
            .set("group.id", "rdk-txn-reader")
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for part in 0..2 {
            tpl.add_partition_offset("rdk-txn", part, Offset::Beginning)
                .unwrap();
        }
        c.assign(&tpl).expect("assign");
        let mut got: Vec<(i32, String)> = Vec::new();
        let deadline = Instant::now() + STEP;
        let mut idle_since: Option<Instant> = None;
        while Instant::now() < deadline {
            match c.poll(Duration::from_millis(200)) {
                Some(m) => {
                    let m = m.expect("consume");
                    let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                    got.push((m.partition(), v));
                    idle_since = None;
                }
                None if got.len() >= 20 => {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(1500) {
                        break;
                    }
                }
                None => {}
            }
        }
        for part in 0..2 {
            let seen: Vec<&str> = got
                .iter()
                .filter(|(p, _)| *p == part)
                .map(|(_, v)| v.as_str())
                .collect();
            let want: Vec<String> = (0..20)
                .filter(|i| i % 2 == part)
                .map(|i| format!("committed-{i}"))
                .collect();
            assert_eq!(seen, want, "partition {part}: committed only, in order");
        }
    });
}
