//! Record-level validation on Produce: decompression capped at a multiple of the topic's
//! `max.message.bytes` (a bomb gets MESSAGE_TOO_LARGE), and done on the blocking pool so a
//! slow batch does not hold up other connections, while appends keep their order.

use std::time::{Duration, Instant};

use gregor::records::testutil::{build_batch, TestRecord};
use gregor::records::Compression;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::harness::{self, create_with_configs, produce_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_bomb_gets_message_too_large_and_a_real_batch_passes() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let created = create_with_configs(
        &mut c,
        "bomb",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("max.message.bytes", "10000"),
        ],
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0);
    // 1 MiB of zeros in one record: a few KiB compressed, 100 times the topic's
    // max.message.bytes once decompressed (the cap is 64 times). Snappy cannot expand more
    // than 22 times, so it cannot carry a bomb past a cap of 64.
    for codec in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let zeros = vec![0u8; 1 << 20];
        let bomb = build_batch(
            &[(Some(&b"k"[..]), Some(&zeros[..]), vec![], 1)],
            codec,
            -1,
            -1,
            -1,
        );
        assert!(bomb.len() < 10_000, "{codec:?}: {}", bomb.len());
        let resp = c
            .call(&produce_request("bomb", Uuid::nil(), 0, &bomb, 1, 9), 9)
            .await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            p.error_code,
            ResponseError::MessageTooLarge.code(),
            "{codec:?}: {:?}",
            p.error_message
        );
        // Within the cap: accepted.
        let fine = build_batch(
            &[(Some(&b"k"[..]), Some(&zeros[..100_000]), vec![], 1)],
            codec,
            -1,
            -1,
            -1,
        );
        let resp = c
            .call(&produce_request("bomb", Uuid::nil(), 0, &fine, 1, 9), 9)
            .await;
        assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    }
}

/// One runtime worker. A produce whose records take long to check (a compacted topic: every
/// key is read) must not stop another connection from being served meanwhile: the handler
/// runs on the blocking pool. Inline, the ApiVersions would wait for the whole produce.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn record_validation_does_not_hold_the_runtime() {
    let b = harness::start(&[("message.max.bytes", "10485760")]).await;
    let mut a = b.client().await;
    let mut other = b.client().await;
    create_with_configs(&mut a, "slow", 1, &[("cleanup.policy", "compact")]).await;
    let keys: Vec<Vec<u8>> = (0..600_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let recs: Vec<TestRecord<'_>> = keys
        .iter()
        .map(|k| (Some(&k[..]), Some(&b"v"[..]), vec![], 1))
        .collect();
    let batch = build_batch(&recs, Compression::Zstd, -1, -1, -1);
    let started = Instant::now();
    let produce = a
        .send(&produce_request("slow", Uuid::nil(), 0, &batch, 1, 9), 9)
        .await;
    // A blocking sleep: the runtime's timers run on its one worker, which is what is tested.
    std::thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    let answer = other.call(&ApiVersionsRequest::default(), 3).await;
    let other_latency = asked.elapsed();
    assert_eq!(answer.error_code, 0);
    let resp = a.receive::<ProduceRequest>(produce, 9).await;
    let produce_latency = started.elapsed();
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    eprintln!("produce {produce_latency:?}, other request {other_latency:?}");
    // The test means something only if the produce is slow enough to overlap.
    assert!(
        produce_latency > Duration::from_millis(300),
        "produce took {produce_latency:?}"
    );
    assert!(
        other_latency < produce_latency / 3,
        "another connection waited {other_latency:?} behind a {produce_latency:?} produce"
    );
}

/// Produces that go to the blocking pool keep their order on a connection: an idempotent
/// producer pipelining batches to a compacted topic (every batch is read, so every request is
/// handled off the runtime), mixed with batches to a plain topic handled inline, gets every
/// batch appended in the order sent, with no OUT_OF_ORDER_SEQUENCE_NUMBER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_keep_their_order_off_the_runtime() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create_with_configs(&mut c, "ordered", 1, &[("cleanup.policy", "compact")]).await;
    create_with_configs(&mut c, "plain", 1, &[]).await;
    let pid = c
        .call(
            &InitProducerIdRequest::default().with_transactional_id(None),
            2,
        )
        .await
        .producer_id
        .0;
    let keys: Vec<Vec<u8>> = (0..2_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let mut sent = Vec::new();
    for seq in 0..20 {
        let recs: Vec<TestRecord<'_>> = keys
            .iter()
            .map(|k| (Some(&k[..]), Some(&b"v"[..]), vec![], 1))
            .collect();
        let batch = build_batch(&recs, Compression::Gzip, pid, 0, seq * 2_000);
        let topic = "ordered";
        sent.push(
            c.send(&produce_request(topic, Uuid::nil(), 0, &batch, -1, 9), 9)
                .await,
        );
        let plain = build_batch(&recs[..1], Compression::None, pid, 0, seq);
        sent.push(
            c.send(&produce_request("plain", Uuid::nil(), 0, &plain, -1, 9), 9)
                .await,
        );
    }
    let mut ordered = Vec::new();
    let mut plain = Vec::new();
    for (i, id) in sent.into_iter().enumerate() {
        let resp = c.receive::<ProduceRequest>(id, 9).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, 0, "request {i}: {:?}", p.error_message);
        if i % 2 == 0 {
            ordered.push(p.base_offset);
        } else {
            plain.push(p.base_offset);
        }
    }
    let expected: Vec<i64> = (0..20).map(|i| i * 2_000).collect();
    assert_eq!(ordered, expected);
    assert_eq!(plain, (0..20).collect::<Vec<i64>>());
}
