//! `queued.max.request.bytes`: request bytes held across all connections are bounded; a
//! connection whose next request does not fit waits until earlier requests are answered.

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::harness::{self, create, fetch_request, s};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waits_for_room_in_the_broker_wide_budget() {
    // A budget of 4000 bytes (and frames up to that size).
    let b = harness::start(&[
        ("socket.request.max.bytes", "4000"),
        ("queued.max.request.bytes", "4000"),
    ])
    .await;
    let mut a = b.client().await;
    let mut c = b.client().await;
    let id = create(&mut a, "budget", 1).await.topics[0].topic_id;
    // A: a long-polling Fetch of about 3000 bytes (a long rack id) on an empty partition: it
    // holds its bytes until the poll ends, 2 s later.
    let parked =
        fetch_request("budget", id, 0, 0, 2000, 1 << 20, 12).with_rack_id(s(&"r".repeat(3000)));
    let started = Instant::now();
    let poll = a.send(&parked, 12).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // C: a small request fits beside it and is answered at once.
    let small = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(small.error_code, 0);
    assert!(started.elapsed() < Duration::from_millis(1500));
    // C: a 2000-byte request does not fit until A's poll is answered.
    let names: Vec<MetadataRequestTopic> = (0..40)
        .map(|i| {
            MetadataRequestTopic::default().with_name(Some(TopicName(s(&format!("{i:0>40}")))))
        })
        .collect();
    let big = MetadataRequest::default()
        .with_topics(Some(names))
        .with_allow_auto_topic_creation(false);
    let md = c.call(&big, 12).await;
    let waited = started.elapsed();
    assert_eq!(md.topics.len(), 40);
    assert!(
        waited >= Duration::from_millis(1800),
        "the big request was read before the parked fetch released its bytes: {waited:?}"
    );
    let fetched = a.receive::<FetchRequest>(poll, 12).await;
    assert_eq!(fetched.error_code, 0);
}

#[test]
fn a_budget_below_the_largest_request_is_refused() {
    let config = gregor::config::Config::load(&gregor::config::Sources {
        file: None,
        env: false,
        overrides: vec![
            ("socket.request.max.bytes".into(), "4000".into()),
            ("queued.max.request.bytes".into(), "3999".into()),
        ],
    });
    let err = config.unwrap_err().to_string();
    assert!(err.contains("queued.max.request.bytes"), "{err}");
}
