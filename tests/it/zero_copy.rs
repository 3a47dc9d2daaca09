//! Zero-copy Fetch: the response frame Gregor writes by hand around `sendfile`d record regions
//! is byte for byte what the crate's encoder produces for the same response, in every Fetch
//! version advertised, with several topics, partitions with data, empty partitions, partitions
//! in error and a partition whose data spans segments.

use bytes::{Buf, BytesMut};
use gregor::protocol::versions::range;
use gregor::records::testutil::simple_batch;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::configs::alter;
use crate::harness::create;
use crate::harness::produce;
use crate::harness::{self, s};

fn partition(p: i32, offset: i64, max: i32) -> FetchPartition {
    FetchPartition::default()
        .with_partition(p)
        .with_fetch_offset(offset)
        .with_current_leader_epoch(-1)
        .with_partition_max_bytes(max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_framed_fetch_equals_the_crate_encoding_in_every_version() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let a = create(&mut c, "alpha", 3).await.topics[0].topic_id;
    let z = create(&mut c, "zeta-topic", 1).await.topics[0].topic_id;
    alter(&mut c, "alpha", &[("segment.bytes", 0, Some("600"))], false).await;
    for i in 0..6 {
        produce(
            &mut c,
            "alpha",
            a,
            0,
            &simple_batch(2, 100 + i, 10 + i as i64),
            9,
        )
        .await;
    }
    produce(&mut c, "alpha", a, 1, &simple_batch(1, 5000, 7), 9).await;
    produce(&mut c, "zeta-topic", z, 0, &simple_batch(3, 50, 3), 9).await;
    let (min, max) = range(ApiKey::Fetch).unwrap();
    assert_eq!((min, max), (4, 17));
    for version in min..=max {
        let topic = |name: &str, id| {
            let t = FetchTopic::default();
            if version >= 13 {
                t.with_topic_id(id)
            } else {
                t.with_topic(TopicName(s(name)))
            }
        };
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_isolation_level(if version % 2 == 0 { 1 } else { 0 })
            .with_topics(vec![
                topic("alpha", a).with_partitions(vec![
                    partition(0, 1, 1 << 20),  // data, from the middle of a batch
                    partition(1, 0, 100),      // one batch above the limit (KIP-74 off: not first)
                    partition(2, 0, 1 << 20),  // empty partition
                    partition(9, 0, 1 << 20),  // unknown partition
                    partition(0, 99, 1 << 20), // out of range
                ]),
                topic("zeta-topic", z).with_partitions(vec![partition(0, 0, 1 << 20)]),
            ]);
        let corr = c.send(&req, version).await;
        let frame = c.read_frame().await.expect("a response");
        // Decode with the crate, re-encode with the crate: must be the same bytes.
        let mut body = frame.clone();
        let hv = FetchResponse::header_version(version);
        let header = ResponseHeader::decode(&mut body, hv).unwrap();
        assert_eq!(header.correlation_id, corr);
        let resp = FetchResponse::decode(&mut body, version).unwrap();
        assert_eq!(body.remaining(), 0, "v{version}: no trailing bytes");
        let mut again = BytesMut::new();
        header.encode(&mut again, hv).unwrap();
        resp.encode(&mut again, version).unwrap();
        assert_eq!(&again[..], &frame[..], "v{version}: byte-exact");
        // And the content is right.
        let p0 = &resp.responses[0].partitions[0];
        assert_eq!(p0.error_code, 0);
        let recs = p0.records.as_ref().unwrap();
        assert!(recs.len() > 100, "v{version}: data from segment 0");
        assert_eq!(
            resp.responses[0].partitions[2]
                .records
                .as_ref()
                .map(|r| r.len()),
            Some(0)
        );
        assert_eq!(resp.responses[0].partitions[3].error_code, 3);
        assert_eq!(resp.responses[0].partitions[4].error_code, 1);
        assert!(resp.responses[1].partitions[0]
            .records
            .as_ref()
            .is_some_and(|r| !r.is_empty()));
    }
}
