//! The data path over the wire: Produce in every version, Fetch in every version (byte-exact),
//! long polling, size limits, acks, idempotence, ListOffsets and OffsetForLeaderEpoch.

use std::time::{Duration, Instant};

use gregor::records::testutil::{build_batch, fix_crc, idempotent_batch, simple_batch, TestRecord};
use gregor::records::Compression;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::harness::{self, s};
use crate::harness::{create, fetch, fetch_request, produce, produce_request};

/// The batch as stored: base offset and leader epoch stamped, every other byte as produced.
fn stamped(batch: &[u8], base_offset: i64) -> Vec<u8> {
    let mut b = batch.to_vec();
    b[0..8].copy_from_slice(&base_offset.to_be_bytes());
    b[12..16].copy_from_slice(&0i32.to_be_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_produce_version_round_trips_through_every_fetch_version() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "rt", 1).await.topics[0].topic_id;
    let mut expected = Vec::new();
    let mut next = 0i64;
    for version in 3..=13 {
        let rec: Vec<TestRecord<'_>> = vec![
            (
                Some(b"k1"),
                Some(b"v1"),
                vec![("h", b"1"), ("h", b"2")],
                1_700_000_000_000 + i64::from(version),
            ),
            (Some(b"k2"), None, vec![], 1_700_000_000_500),
        ];
        let codec = if version >= 7 {
            Compression::Zstd
        } else {
            Compression::Lz4
        };
        let batch = build_batch(&rec, codec, -1, -1, -1);
        let p = produce(&mut c, "rt", id, 0, &batch, version).await;
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, next),
            "produce v{version}"
        );
        expected.extend(stamped(&batch, next));
        next += 2;
    }
    for version in 4..=17 {
        let p = fetch(&mut c, "rt", id, 0, 0, version).await;
        assert_eq!(p.error_code, 0, "fetch v{version}");
        assert_eq!(p.high_watermark, next, "fetch v{version}");
        assert_eq!(p.last_stable_offset, next, "fetch v{version}");
        assert_eq!(
            p.records.as_deref(),
            Some(&expected[..]),
            "fetch v{version}: byte-exact batches"
        );
    }
    // Reading from the middle of a batch returns that whole batch first.
    let p = fetch(&mut c, "rt", id, 0, 3, 12).await;
    let first = p.records.expect("records");
    assert_eq!(i64::from_be_bytes(first[0..8].try_into().unwrap()), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_waits_for_data_or_the_deadline() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "poll", 1).await.topics[0].topic_id;
    // Nothing arrives: answered empty after about max_wait_ms.
    let started = Instant::now();
    let resp = c
        .call(&fetch_request("poll", id, 0, 0, 400, 1 << 20, 12), 12)
        .await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(350), "waited {waited:?}");
    assert!(resp.responses[0].partitions[0]
        .records
        .as_ref()
        .is_none_or(|r| r.is_empty()));
    // An append wakes a parked fetch long before its deadline.
    let corr = c
        .send(&fetch_request("poll", id, 0, 0, 10_000, 1 << 20, 12), 12)
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut producer = b.client().await;
    let batch = simple_batch(3, 10, 1000);
    assert_eq!(
        produce(&mut producer, "poll", id, 0, &batch, 9)
            .await
            .error_code,
        0
    );
    let resp = c.receive::<FetchRequest>(corr, 12).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the append"
    );
    assert_eq!(
        resp.responses[0].partitions[0].records.as_deref(),
        Some(&stamped(&batch, 0)[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_errors_are_kafka_shaped() {
    let b = harness::start(&[("message.max.bytes", "2000")]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "lim", 2).await.topics[0].topic_id;
    let big = simple_batch(1, 1500, 5);
    assert_eq!(produce(&mut c, "lim", id, 0, &big, 9).await.error_code, 0);
    // KIP-74: one whole batch even when partition_max_bytes is tiny.
    let resp = c.call(&fetch_request("lim", id, 0, 0, 0, 10, 11), 11).await;
    assert_eq!(
        resp.responses[0].partitions[0]
            .records
            .as_ref()
            .map(|r| r.len()),
        Some(big.len())
    );
    // Too large for message.max.bytes, per partition, while the other partition still works.
    let huge = simple_batch(1, 3000, 5);
    assert_eq!(
        produce(&mut c, "lim", id, 0, &huge, 9).await.error_code,
        10,
        "MESSAGE_TOO_LARGE"
    );
    // Bad CRC.
    let mut corrupt = simple_batch(2, 10, 5);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        produce(&mut c, "lim", id, 1, &corrupt, 9).await.error_code,
        2,
        "CORRUPT_MESSAGE"
    );
    // Record count that disagrees with lastOffsetDelta.
    let mut lying = simple_batch(2, 10, 5);
    lying[57..61].copy_from_slice(&5i32.to_be_bytes());
    fix_crc(&mut lying);
    assert_ne!(produce(&mut c, "lim", id, 1, &lying, 9).await.error_code, 0);
    // zstd before Produce v7.
    let z = build_batch(
        &[(None, Some(b"z"), vec![], 1)],
        Compression::Zstd,
        -1,
        -1,
        -1,
    );
    assert_eq!(produce(&mut c, "lim", id, 1, &z, 6).await.error_code, 76);
    // Nothing above was stored in partition 1.
    assert_eq!(fetch(&mut c, "lim", id, 1, 0, 12).await.high_watermark, 0);
    // Unknown topic / partition / id, and an offset past the end.
    assert_eq!(produce(&mut c, "nope", id, 0, &big, 9).await.error_code, 3);
    assert_eq!(produce(&mut c, "lim", id, 7, &big, 9).await.error_code, 3);
    assert_eq!(
        produce(&mut c, "", Uuid::new_v4(), 0, &big, 13)
            .await
            .error_code,
        100
    );
    assert_eq!(
        fetch(&mut c, "lim", id, 0, 99, 12).await.error_code,
        1,
        "OFFSET_OUT_OF_RANGE"
    );
    assert_eq!(fetch(&mut c, "nope", id, 0, 0, 12).await.error_code, 3);
    assert_eq!(
        fetch(&mut c, "", Uuid::new_v4(), 0, 0, 13).await.error_code,
        100
    );
    // An incremental fetch session we never created.
    let mut inc = fetch_request("lim", id, 0, 0, 0, 1000, 12);
    inc.session_id = 42;
    inc.session_epoch = 1;
    assert_eq!(
        c.call(&inc, 12).await.error_code,
        70,
        "FETCH_SESSION_ID_NOT_FOUND"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_is_silent_and_order_is_kept_under_pipelining() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "pipe", 1).await.topics[0].topic_id;
    let batch = simple_batch(1, 10, 1);
    // acks=0: no response; the next response on the wire is for the next request.
    c.send(&produce_request("pipe", id, 0, &batch, 0, 9), 9)
        .await;
    let md = c
        .send(&MetadataRequest::default().with_topics(None), 9)
        .await;
    let resp = c.receive::<MetadataRequest>(md, 9).await;
    assert_eq!(resp.topics.len(), 1);
    // 50 pipelined acks=all produces, answered strictly in order with consecutive offsets.
    let mut sent = Vec::new();
    for _ in 0..50 {
        sent.push(
            c.send(&produce_request("pipe", id, 0, &batch, -1, 9), 9)
                .await,
        );
    }
    for (i, corr) in sent.into_iter().enumerate() {
        let r = c.receive::<ProduceRequest>(corr, 9).await;
        assert_eq!(
            r.responses[0].partition_responses[0].base_offset,
            1 + i as i64
        );
    }
    // acks=0 to an unknown topic: Kafka closes the connection.
    c.send(&produce_request("unknown-topic", id, 0, &batch, 0, 9), 9)
        .await;
    assert!(c.closed_by_broker().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_retries_are_deduplicated() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "idem", 1).await.topics[0].topic_id;
    let init = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
            4,
        )
        .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    assert!(pid >= 0);
    let first = idempotent_batch(3, pid, 0, 0);
    assert_eq!(
        produce(&mut c, "idem", id, 0, &first, 9).await.base_offset,
        0
    );
    let again = produce(&mut c, "idem", id, 0, &first, 9).await;
    assert_eq!(
        (again.error_code, again.base_offset),
        (0, 0),
        "a retry gets the original offset"
    );
    let next = idempotent_batch(2, pid, 0, 3);
    assert_eq!(
        produce(&mut c, "idem", id, 0, &next, 9).await.base_offset,
        3
    );
    let gap = idempotent_batch(1, pid, 0, 9);
    assert_eq!(
        produce(&mut c, "idem", id, 0, &gap, 9).await.error_code,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    assert_eq!(
        fetch(&mut c, "idem", id, 0, 0, 12).await.high_watermark,
        5,
        "stored once"
    );
    // A second producer gets a different id; a bump keeps the id and raises the epoch.
    let other = c
        .call(
            &InitProducerIdRequest::default().with_transactional_id(None),
            2,
        )
        .await
        .producer_id
        .0;
    assert_ne!(other, pid);
    let bump = c
        .call(
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(0),
            4,
        )
        .await;
    assert_eq!((bump.producer_id.0, bump.producer_epoch), (pid, 1));
    let stale = idempotent_batch(1, pid, 0, 5);
    let bumped = idempotent_batch(1, pid, 1, 0);
    assert_eq!(
        produce(&mut c, "idem", id, 0, &bumped, 9).await.error_code,
        0
    );
    assert_eq!(
        produce(&mut c, "idem", id, 0, &stale, 9).await.error_code,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_and_leader_epochs() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "lo", 1).await.topics[0].topic_id;
    // Three batches of 10 records, timestamps 1000.., 2000.., 3000..
    for base in [1000i64, 2000, 3000] {
        let recs: Vec<TestRecord<'_>> = (0..10)
            .map(|i| (None, Some(&b"v"[..]), vec![], base + i))
            .collect();
        let codec = if base == 2000 {
            Compression::Gzip
        } else {
            Compression::None
        };
        assert_eq!(
            produce(
                &mut c,
                "lo",
                id,
                0,
                &build_batch(&recs, codec, -1, -1, -1),
                9
            )
            .await
            .error_code,
            0
        );
    }
    let ask = |ts: i64| {
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(s("lo")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(ts)
                    .with_current_leader_epoch(-1)])])
    };
    for version in 1..=10 {
        let one = |r: ListOffsetsResponse| {
            let p = &r.topics[0].partitions[0];
            (p.error_code, p.offset, p.timestamp)
        };
        assert_eq!(
            one(c.call(&ask(-2), version).await),
            (0, 0, -1),
            "earliest v{version}"
        );
        assert_eq!(
            one(c.call(&ask(-1), version).await),
            (0, 30, -1),
            "latest v{version}"
        );
        assert_eq!(
            one(c.call(&ask(2005), version).await),
            (0, 15, 2005),
            "by time (compressed batch) v{version}"
        );
        assert_eq!(
            one(c.call(&ask(1500), version).await),
            (0, 10, 2000),
            "by time between batches v{version}"
        );
        assert_eq!(
            one(c.call(&ask(9999), version).await),
            (0, -1, -1),
            "after the end v{version}"
        );
        if version >= 7 {
            assert_eq!(
                one(c.call(&ask(-3), version).await),
                (0, 29, 3009),
                "max timestamp v{version}"
            );
        }
        if version >= 8 {
            assert_eq!(
                one(c.call(&ask(-4), version).await),
                (0, 0, -1),
                "earliest local (no tiered storage) v{version}"
            );
        }
        if version >= 9 {
            assert_eq!(
                one(c.call(&ask(-5), version).await),
                (0, -1, -1),
                "latest tiered: nothing is tiered v{version}"
            );
        }
    }
    for version in 2..=4 {
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![OffsetForLeaderTopic::default()
                .with_topic(TopicName(s("lo")))
                .with_partitions(vec![OffsetForLeaderPartition::default()
                    .with_partition(0)
                    .with_leader_epoch(0)
                    .with_current_leader_epoch(0)])]);
        let r = c.call(&req, version).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.leader_epoch, p.end_offset),
            (0, 0, 30),
            "v{version}"
        );
    }
}

/// Old sarama writes every batch with maxTimestamp -1. Kafka recomputes it from the records;
/// otherwise ListOffsets by time and the time index would never find these records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_claiming_max_timestamp_minus_one_is_repaired() {
    use gregor::records::testutil::{build_batch_from_body, encode_records};
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "sarama", 1).await.topics[0].topic_id;
    let recs: Vec<TestRecord<'_>> = vec![
        (None, Some(b"a"), vec![], 5_000),
        (None, Some(b"b"), vec![], 7_000),
        (None, Some(b"c"), vec![], 6_000),
    ];
    let body = encode_records(&recs);
    let batch = build_batch_from_body(&body, 3, Compression::None, 5_000, -1, -1, -1, -1);
    assert_eq!(
        produce(&mut c, "sarama", id, 0, &batch, 3).await.error_code,
        0
    );
    let stored = fetch(&mut c, "sarama", id, 0, 0, 12).await.records.unwrap();
    assert_eq!(
        i64::from_be_bytes(stored[35..43].try_into().unwrap()),
        7_000,
        "true max stored"
    );
    let crc = u32::from_be_bytes(stored[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&stored[21..]), "CRC recomputed");
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s("sarama")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(6_500)])]);
    let p = c.call(&req, 1).await.topics[0].partitions[0].clone();
    assert_eq!((p.error_code, p.offset, p.timestamp), (0, 1, 7_000));
}
