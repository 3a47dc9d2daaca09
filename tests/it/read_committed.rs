//! read_committed over the wire: transactional Produce from a transactional producer, then
//! Fetch with isolation_level 1 in every advertised version stops at the last stable offset and
//! lists the aborted transactions (the sendfile framing stays byte-exact with them), while
//! read_uncommitted sees everything; ListOffsets "latest" answers the LSO under read_committed.
//! Markers are written through the log, as the transaction coordinator writes them.

use bytes::{Buf, BytesMut};
use gregor::common::{ProducerEpoch, ProducerId};
use gregor::protocol::versions::range;
use gregor::records::build::MarkerKind;
use gregor::records::testutil::{simple_batch, transactional_batch};
use gregor::records::Compression;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use uuid::Uuid;

use crate::harness::{self, create, produce, produce_request, s, Client};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Initialises `txn_id` through the coordinator and, if `add`, starts a transaction holding
/// rc-0; returns the producer id (epoch 0).
async fn begin(b: &harness::TestBroker, txn_id: &str, add: bool) -> i64 {
    let ctx = b.broker.context();
    let (pid, epoch) = ctx
        .txns
        .init_producer_id(ctx, txn_id, 60_000, None)
        .await
        .expect("init");
    assert_eq!(epoch, 0);
    if !add {
        return pid;
    }
    ctx.txns
        .add_partitions(ctx, txn_id, pid, 0, &[("rc".to_string(), 0)])
        .await
        .expect("add partition");
    pid
}

/// Produces one transactional record from producer `pid` of `txn_id`.
async fn txn_produce(
    c: &mut Client,
    id: Uuid,
    txn_id: &str,
    pid: i64,
    seq: i32,
    value: &str,
) -> i64 {
    let batch = transactional_batch(
        &[(Some(b"k"), Some(value.as_bytes()), vec![], now_ms())],
        Compression::None,
        pid,
        0,
        seq,
    );
    let req = produce_request("rc", id, 0, &batch, -1, 9)
        .with_transactional_id(Some(TransactionalId(StrBytes::from(txn_id.to_string()))));
    let r = c.call(&req, 9).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    p.base_offset
}

fn fetch_req(version: i16, id: Uuid, isolation: i8) -> FetchRequest {
    let t = if version >= 13 {
        FetchTopic::default().with_topic_id(id)
    } else {
        FetchTopic::default().with_topic(TopicName(s("rc")))
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_isolation_level(isolation)
        .with_topics(vec![t.with_partitions(vec![FetchPartition::default()
            .with_partition(0)
            .with_fetch_offset(0)
            .with_current_leader_epoch(-1)
            .with_partition_max_bytes(1 << 20)])])
}

/// Sends a Fetch and checks the hand-made frame against the crate's encoding.
async fn fetch_exact(c: &mut Client, req: &FetchRequest, version: i16) -> FetchResponse {
    let corr = c.send(req, version).await;
    let frame = c.read_frame().await.expect("a response");
    let mut body = frame.clone();
    let hv = FetchResponse::header_version(version);
    let header = ResponseHeader::decode(&mut body, hv).unwrap();
    assert_eq!(header.correlation_id, corr);
    let resp = FetchResponse::decode(&mut body, version).unwrap();
    assert_eq!(body.remaining(), 0);
    let mut again = BytesMut::new();
    header.encode(&mut again, hv).unwrap();
    resp.encode(&mut again, version).unwrap();
    assert_eq!(&again[..], &frame[..], "v{version}: byte-exact");
    resp
}

/// Offsets of the batches in a fetched partition.
fn batch_offsets(p: &fetch_response::PartitionData) -> Vec<i64> {
    let mut out = Vec::new();
    let mut b = &p.records.as_ref().unwrap()[..];
    while let Some(h) = gregor::records::BatchHeader::new(b) {
        out.push(h.base_offset());
        b = &b[h.total_size().unwrap()..];
    }
    out
}

async fn latest(c: &mut Client, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s("rc")))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    c.call(&req, 7).await.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_fetch_stops_at_the_lso_and_lists_aborted_transactions() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "rc", 1).await.topics[0].topic_id;
    let log = b.broker.context().partition("rc", 0).unwrap();
    // Timestamps are now: markers carry the broker's clock, and older records would make the
    // marker roll a new segment (segment.ms), which one Fetch does not cross.
    produce(&mut c, "rc", id, 0, &simple_batch(1, 10, now_ms()), 9).await; // offset 0
    let doomed = begin(&b, "doomed", true).await;
    let pending = begin(&b, "pending", true).await;
    let aborted_at = txn_produce(&mut c, id, "doomed", doomed, 0, "doomed").await; // 1
    let open_at = txn_produce(&mut c, id, "pending", pending, 0, "pending").await; // 2
    log.append_txn_marker(ProducerId(doomed), ProducerEpoch(0), MarkerKind::Abort, 0)
        .unwrap(); // 3
    assert_eq!(log.last_stable_offset(), open_at);
    assert_eq!(
        latest(&mut c, 1).await,
        open_at,
        "read_committed latest = LSO"
    );
    assert_eq!(latest(&mut c, 0).await, 4, "read_uncommitted latest = HW");
    // A transactional batch for a partition outside the producer's transaction is refused.
    let other = begin(&b, "other", false).await;
    let stray = transactional_batch(
        &[(Some(b"k"), Some(b"x"), vec![], 1)],
        Compression::None,
        other,
        0,
        0,
    );
    let req = produce_request("rc", id, 0, &stray, -1, 9)
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("other"))));
    let r = c.call(&req, 9).await;
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 48,
        "INVALID_TXN_STATE"
    );
    // A transactional batch without a transactional id is refused.
    let stray = transactional_batch(
        &[(Some(b"k"), Some(b"x"), vec![], 1)],
        Compression::None,
        300,
        0,
        0,
    );
    assert_eq!(produce(&mut c, "rc", id, 0, &stray, 9).await.error_code, 87);

    let (min, max) = range(ApiKey::Fetch).unwrap();
    for version in min..=max {
        let committed = fetch_exact(&mut c, &fetch_req(version, id, 1), version).await;
        let p = &committed.responses[0].partitions[0];
        assert_eq!(
            (p.high_watermark, p.last_stable_offset),
            (4, open_at),
            "v{version}"
        );
        assert_eq!(
            batch_offsets(p),
            vec![0, aborted_at],
            "v{version}: stops at the LSO"
        );
        let aborted = p
            .aborted_transactions
            .as_ref()
            .expect("listed under read_committed");
        assert_eq!(aborted.len(), 1, "v{version}");
        assert_eq!(
            (aborted[0].producer_id.0, aborted[0].first_offset),
            (doomed, aborted_at)
        );

        let all = fetch_exact(&mut c, &fetch_req(version, id, 0), version).await;
        let p = &all.responses[0].partitions[0];
        assert_eq!(
            batch_offsets(p),
            vec![0, 1, 2, 3],
            "v{version}: read_uncommitted"
        );
        assert!(p.aborted_transactions.is_none(), "v{version}");
    }
    // Committing the open transaction moves the LSO to the end.
    log.append_txn_marker(ProducerId(pending), ProducerEpoch(0), MarkerKind::Commit, 0)
        .unwrap();
    let resp = fetch_exact(&mut c, &fetch_req(12, id, 1), 12).await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.high_watermark, p.last_stable_offset), (5, 5));
    assert_eq!(batch_offsets(p), vec![0, 1, 2, 3, 4]);
}
