//! Admin work off the async runtime: topic creation (directories, files, fsyncs, a metadata
//! commit) runs on the blocking pool, and Produce/Fetch read the metadata image without
//! waiting for the writer, so a broker with a single runtime worker keeps serving the data path
//! while a large CreateTopics is under way.

use std::time::{Duration, Instant};

use gregor::records::testutil::simple_batch;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::harness::{self, create, fetch, produce, s};

/// One runtime worker. A CreateTopics of many partitions takes a long while (each partition
/// is a directory, four files and their fsyncs); meanwhile another connection produces to and
/// fetches from an existing topic. Inline on the worker, or with readers waiting on the
/// metadata writer, those requests would wait for the whole creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_large_create_topics_does_not_hold_produce_and_fetch() {
    let b = harness::start(&[]).await;
    let mut admin = b.client().await;
    let mut data = b.client().await;
    assert_eq!(create(&mut data, "busy", 1).await.topics[0].error_code, 0);

    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("wide")))
            .with_num_partitions(600)
            .with_replication_factor(1)])
        .with_timeout_ms(60_000);
    let started = Instant::now();
    let pending = admin.send(&req, 7).await;
    // A blocking sleep: it holds the runtime's only worker, so the CreateTopics is surely
    // being handled (or queued behind nothing) when the data requests go out.
    std::thread::sleep(Duration::from_millis(50));

    let asked = Instant::now();
    let mut produced = Vec::new();
    for i in 0..5i64 {
        let p = produce(
            &mut data,
            "busy",
            Uuid::nil(),
            0,
            &simple_batch(3, 10, 1_000 + i),
            9,
        )
        .await;
        assert_eq!(p.error_code, 0, "{p:?}");
        produced.push(p.base_offset);
    }
    let got = fetch(&mut data, "busy", Uuid::nil(), 0, 0, 12).await;
    let data_latency = asked.elapsed();
    assert_eq!(got.error_code, 0);
    assert_eq!(got.high_watermark, 15);
    assert_eq!(produced, vec![0, 3, 6, 9, 12]);

    let created: CreateTopicsResponse = admin.receive::<CreateTopicsRequest>(pending, 7).await;
    let create_latency = started.elapsed();
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    eprintln!("CreateTopics {create_latency:?}; 5 produces + 1 fetch meanwhile {data_latency:?}");
    // Meaningful only if the creation is slow enough to overlap the data requests.
    assert!(
        create_latency > Duration::from_millis(400),
        "CreateTopics took only {create_latency:?}"
    );
    assert!(
        data_latency < create_latency / 3,
        "the data path waited {data_latency:?} behind a {create_latency:?} CreateTopics"
    );
}
