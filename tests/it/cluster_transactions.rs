//! Transactions across brokers, over the wire in a three-broker cluster in this process: the
//! coordinator (broker 1) sends the COMMIT/ABORT markers of a transaction to the leaders of its
//! partitions (brokers 2 and 3) with WriteTxnMarkers; read_committed fetches on each leader
//! then see committed records below an advanced last stable offset and aborted ones listed as
//! aborted. The leaders verify transactional batches and TxnOffsetCommits with the remote
//! coordinator (AddPartitionsToTxn verify_only), and the WriteTxnMarkers handler refuses
//! partitions it does not lead.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gregor::group::records::partition_for;
use gregor::records::build::{marker_kind, MarkerKind};
use gregor::records::testutil::transactional_batch;
use gregor::records::{BatchHeader, Compression};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::harness::{create, produce_request, s, Client, TestCluster};

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TXN_STATE: i16 = 48;
/// Internal-topic partitions: enough that every broker leads some.
const INTERNAL: i32 = 6;
const DATA_PARTITIONS: i32 = 6;

const SETTINGS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "6"),
    ("transaction.state.log.num.partitions", "6"),
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The leader of each of `topic`'s `n` partitions per `c`'s Metadata, once all have one.
async fn leaders(c: &mut Client, topic: &str, n: i32) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m: MetadataResponse = c
            .call(
                &MetadataRequest::default()
                    .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                    )
                    .with_name(Some(TopicName(s(topic))))])),
                12,
            )
            .await;
        let mut l: Vec<(i32, i32)> = m
            .topics
            .iter()
            .filter(|t| t.error_code == 0)
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition_index, p.leader_id.0))
            .collect();
        l.sort();
        if l.len() == n as usize && l.iter().all(|(_, leader)| *leader > 0) {
            return l.into_iter().map(|(_, leader)| leader).collect();
        }
        assert!(Instant::now() < deadline, "{topic} never fully led: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first `{prefix}-{i}` whose internal-topic partition is led by `broker`.
fn key_led_by(prefix: &str, leaders: &[i32], broker: i32) -> String {
    (0..10_000)
        .map(|i| format!("{prefix}-{i}"))
        .find(|k| leaders[partition_for(k, INTERNAL) as usize] == broker)
        .expect("some key lands on every broker")
}

/// The partitions of `leaders` led by `broker`.
fn led_by(leaders: &[i32], broker: i32) -> Vec<i32> {
    (0..leaders.len() as i32)
        .filter(|p| leaders[*p as usize] == broker)
        .collect()
}

/// Sends `request` until its error code (read by `code`) is not a retriable coordinator or
/// leadership one: the brokers' metadata publishers may lag the commit that created a topic.
async fn call_until_settled<R: kafka_protocol::protocol::Request + Clone>(
    c: &mut Client,
    request: &R,
    version: i16,
    code: impl Fn(&R::Response) -> i16,
) -> R::Response {
    // NOT_LEADER_OR_FOLLOWER, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
    // NOT_COORDINATOR, CONCURRENT_TRANSACTIONS.
    const RETRIABLE: &[i16] = &[6, 14, 15, 16, 51];
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = c.call(request, version).await;
        if !RETRIABLE.contains(&code(&r)) || Instant::now() > deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The cluster with topic `data` spread over the three brokers and `__transaction_state`
/// created; (clients by broker, data leaders, transaction-state leaders, offsets leaders).
async fn setup() -> (TestCluster, Vec<Client>, Vec<i32>, Vec<i32>, Vec<i32>) {
    let cluster = TestCluster::start(3, SETTINGS).await;
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.node(id).client().await);
    }
    let created = create(&mut clients[0], "data", DATA_PARTITIONS).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    // FindCoordinator creates the internal topics on first use.
    for key_type in [0, 1] {
        let r = clients[0]
            .call(
                &FindCoordinatorRequest::default()
                    .with_key(s("first"))
                    .with_key_type(key_type),
                3,
            )
            .await;
        assert_eq!(r.error_code, 0, "{r:?}");
    }
    let mut data = Vec::new();
    let mut txn = Vec::new();
    let mut offsets = Vec::new();
    for c in clients.iter_mut() {
        data = leaders(c, "data", DATA_PARTITIONS).await;
        txn = leaders(c, "__transaction_state", INTERNAL).await;
        offsets = leaders(c, "__consumer_offsets", INTERNAL).await;
    }
    (cluster, clients, data, txn, offsets)
}

/// A transactional id's producer as seen by the tests.
struct Producer {
    tid: String,
    pid: i64,
    epoch: i16,
}

async fn init(coordinator: &mut Client, tid: &str) -> Producer {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(tid))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let r = call_until_settled(coordinator, &req, 4, |r| r.error_code).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    Producer {
        tid: tid.to_string(),
        pid: r.producer_id.0,
        epoch: r.producer_epoch,
    }
}

async fn add_partitions(coordinator: &mut Client, p: &Producer, parts: &[i32]) {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(&p.tid)))
        .with_v3_and_below_producer_id(ProducerId(p.pid))
        .with_v3_and_below_producer_epoch(p.epoch)
        .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(s("data")))
            .with_partitions(parts.to_vec())]);
    let r = coordinator.call(&req, 3).await;
    let codes: Vec<i16> = r
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|x| x.partition_error_code)
        })
        .collect();
    assert_eq!(codes, vec![0; parts.len()], "{r:?}");
}

/// One transactional record to `data`-`partition` at its leader: the error code.
async fn produce(leader: &mut Client, p: &Producer, partition: i32, seq: i32) -> i16 {
    let batch = transactional_batch(
        &[(Some(b"k"), Some(b"v"), vec![], now_ms())],
        Compression::None,
        p.pid,
        p.epoch,
        seq,
    );
    let req = produce_request("data", Uuid::nil(), partition, &batch, -1, 9)
        .with_transactional_id(Some(TransactionalId(s(&p.tid))));
    let r = call_until_settled(leader, &req, 9, |r| {
        r.responses[0].partition_responses[0].error_code
    })
    .await;
    r.responses[0].partition_responses[0].error_code
}

async fn end(coordinator: &mut Client, p: &Producer, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&p.tid)))
        .with_producer_id(ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_committed(commit);
    coordinator.call(&req, 3).await.error_code
}

/// A read_committed Fetch (v12) of `data`-`partition` from offset 0 at its leader.
async fn fetch_committed(leader: &mut Client, partition: i32) -> PartitionData {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_isolation_level(1)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(s("data")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let r = leader.call(&req, 12).await;
    assert_eq!(r.error_code, 0);
    let p = r.responses[0].partitions[0].clone();
    assert_eq!(p.error_code, 0, "{p:?}");
    p
}

/// The batches of fetched records as (is control, producer id, marker kind).
fn batches(records: &Option<Bytes>) -> Vec<(bool, i64, Option<MarkerKind>)> {
    let mut out = Vec::new();
    let mut rest: &[u8] = records.as_deref().unwrap_or_default();
    while let Some(h) = BatchHeader::new(rest) {
        let size = h.total_size().unwrap();
        out.push((h.is_control(), h.producer_id(), marker_kind(&rest[..size])));
        rest = &rest[size..];
    }
    out
}

/// The aborted transactions a fetch lists, as (producer id, first offset).
fn aborted(p: &PartitionData) -> Vec<(i64, i64)> {
    p.aborted_transactions
        .iter()
        .flatten()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect()
}

/// AddOffsetsToTxn at the coordinator, then TxnOffsetCommit of `data`-0 at `offset` at the
/// group's coordinator: the two error codes.
async fn commit_offset(
    coordinator: &mut Client,
    group_coordinator: &mut Client,
    p: &Producer,
    group: &str,
    offset: i64,
) -> (i16, i16) {
    let added = coordinator
        .call(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s(&p.tid)))
                .with_producer_id(ProducerId(p.pid))
                .with_producer_epoch(p.epoch)
                .with_group_id(GroupId(s(group))),
            3,
        )
        .await
        .error_code;
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&p.tid)))
        .with_group_id(GroupId(s(group)))
        .with_producer_id(ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_generation_id(-1)
        .with_member_id(s(""))
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(TopicName(s("data")))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let r = group_coordinator.call(&req, 3).await;
    (added, r.topics[0].partitions[0].error_code)
}

/// The group's committed offset of `data`-0 (OffsetFetch v7 with require_stable), -1 if none.
async fn committed(group_coordinator: &mut Client, group: &str) -> i64 {
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_require_stable(true)
        .with_topics(Some(vec![
            offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(TopicName(s("data")))
                .with_partition_indexes(vec![0]),
        ]));
    let r = call_until_settled(group_coordinator, &req, 7, |r| {
        r.topics[0].partitions[0].error_code
    })
    .await;
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{r:?}");
    p.committed_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_over_partitions_led_by_other_brokers_commits_and_aborts() {
    let (_cluster, mut clients, data, txn_leaders, offsets_leaders) = setup().await;
    // Coordinator: broker 1. Data partitions: one led by 2, one by 3, plus a spare led by 2.
    let tid = key_led_by("tx", &txn_leaders, 1);
    let (on2, on3) = (led_by(&data, 2), led_by(&data, 3));
    let (p2, spare2, p3) = (on2[0], on2[1], on3[0]);
    // The group's offsets are coordinated by broker 3, not the transaction coordinator.
    let group = key_led_by("group", &offsets_leaders, 3);
    let (coord, b2, b3) = {
        let mut it = clients.iter_mut();
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };

    let p = init(coord, &tid).await;
    add_partitions(coord, &p, &[p2, p3]).await;
    assert_eq!(produce(b2, &p, p2, 0).await, 0, "verified with broker 1");
    assert_eq!(produce(b3, &p, p3, 0).await, 0);
    assert_eq!(
        produce(b2, &p, spare2, 0).await,
        INVALID_TXN_STATE,
        "a partition outside the transaction is refused by the remote coordinator"
    );
    let open = fetch_committed(b2, p2).await;
    assert_eq!((open.high_watermark, open.last_stable_offset), (1, 0));
    assert!(batches(&open.records).is_empty(), "nothing committed yet");

    assert_eq!(end(coord, &p, true).await, 0);
    for (leader, partition) in [(&mut *b2, p2), (&mut *b3, p3)] {
        let f = fetch_committed(leader, partition).await;
        assert_eq!(
            (f.high_watermark, f.last_stable_offset),
            (2, 2),
            "the COMMIT marker is in and the LSO past it"
        );
        assert_eq!(
            batches(&f.records),
            vec![
                (false, p.pid, None),
                (true, p.pid, Some(MarkerKind::Commit))
            ]
        );
        assert!(aborted(&f).is_empty());
    }
    // The marker ended the transaction at the leader: a late batch of it is verified anew and
    // refused (no transaction left open that no marker would close).
    assert_eq!(produce(b2, &p, p2, 1).await, INVALID_TXN_STATE);

    // Aborted, with offsets for a group coordinated by broker 3.
    add_partitions(coord, &p, &[p2, p3]).await;
    assert_eq!(produce(b2, &p, p2, 1).await, 0);
    assert_eq!(produce(b3, &p, p3, 1).await, 0);
    assert_eq!(commit_offset(coord, b3, &p, &group, 7).await, (0, 0));
    assert_eq!(end(coord, &p, false).await, 0);
    for (leader, partition) in [(&mut *b2, p2), (&mut *b3, p3)] {
        let f = fetch_committed(leader, partition).await;
        assert_eq!((f.high_watermark, f.last_stable_offset), (4, 4));
        assert_eq!(
            aborted(&f),
            vec![(p.pid, 2)],
            "read_committed consumers skip the aborted batch"
        );
        assert_eq!(
            batches(&f.records)[3],
            (true, p.pid, Some(MarkerKind::Abort))
        );
    }
    assert_eq!(
        committed(b3, &group).await,
        -1,
        "aborted offsets are dropped"
    );

    // Committed offsets through a remote __consumer_offsets marker.
    add_partitions(coord, &p, &[p2]).await;
    assert_eq!(produce(b2, &p, p2, 2).await, 0);
    assert_eq!(commit_offset(coord, b3, &p, &group, 9).await, (0, 0));
    assert_eq!(end(coord, &p, true).await, 0);
    assert_eq!(committed(b3, &group).await, 9);
    let f = fetch_committed(b2, p2).await;
    assert_eq!((f.high_watermark, f.last_stable_offset), (6, 6));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_txn_markers_refuses_partitions_not_led_here() {
    let (cluster, mut clients, data, _, _) = setup().await;
    let mine = led_by(&data, 1)[0];
    let theirs = led_by(&data, 2)[0];
    let request = |topic: &str, partitions: Vec<i32>| {
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(4242))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_coordinator_epoch(0)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(partitions)])])
    };
    let codes = |r: &WriteTxnMarkersResponse| -> Vec<(String, i32, i16)> {
        r.markers
            .iter()
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect()
    };
    let r = clients[0]
        .call(&request("data", vec![theirs, 99, -1, mine]), 1)
        .await;
    assert_eq!(
        codes(&r),
        vec![
            ("data".into(), theirs, NOT_LEADER_OR_FOLLOWER),
            ("data".into(), 99, UNKNOWN_TOPIC_OR_PARTITION),
            ("data".into(), -1, UNKNOWN_TOPIC_OR_PARTITION),
            ("data".into(), mine, 0),
        ]
    );
    assert_eq!(r.markers[0].producer_id.0, 4242);
    let r = clients[0].call(&request("nope", vec![0]), 1).await;
    assert_eq!(
        codes(&r),
        vec![("nope".into(), 0, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    // Only the partition led here got the marker, and nothing went to broker 2's.
    let marker_count = |node: usize, partition: i32| {
        let log = cluster
            .node(node)
            .broker
            .context()
            .partition("data", partition)
            .expect("led there");
        log.log_end_offset().get()
    };
    assert_eq!(marker_count(1, mine), 1);
    assert_eq!(marker_count(2, theirs), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_continues_when_its_coordinator_goes_away() {
    const NOT_ENOUGH_REPLICAS: i16 = 19;
    let (mut cluster, mut clients, data, txn_leaders, _) = setup().await;
    let tid = key_led_by("moving", &txn_leaders, 1);
    let on2 = led_by(&data, 2);
    let (p2, later2) = (on2[0], on2[1]);
    let p = init(&mut clients[0], &tid).await;
    add_partitions(&mut clients[0], &p, &[p2, later2]).await;
    assert_eq!(produce(&mut clients[1], &p, p2, 0).await, 0);

    // The coordinator stops (its leaderships move at once, a clean shutdown). Until its
    // partition of __transaction_state is led and loaded elsewhere, broker 2 cannot verify
    // `later2`: its producer may be told to retry (NOT_ENOUGH_REPLICAS, as Kafka answers), never
    // that the partition is outside its transaction, which makes a producer fatal. The
    // fault suite covers the coordinator that is paused or cut off rather than stopped.
    drop(clients.remove(0));
    let _stopped = cluster.stop(1).await;
    let batch = transactional_batch(
        &[(Some(b"k"), Some(b"late"), vec![], now_ms())],
        Compression::None,
        p.pid,
        p.epoch,
        0,
    );
    let req = produce_request("data", Uuid::nil(), later2, &batch, -1, 9)
        .with_transactional_id(Some(TransactionalId(s(&p.tid))));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answers = Vec::new();
    loop {
        let r = clients[0].call(&req, 9).await;
        let code = r.responses[0].partition_responses[0].error_code;
        answers.push(code);
        if code == 0 {
            break;
        }
        assert_eq!(code, NOT_ENOUGH_REPLICAS, "answers so far: {answers:?}");
        assert!(Instant::now() < deadline, "never verified: {answers:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The transaction's new coordinator, loaded from the replicated __transaction_state,
    // commits it: both partitions get the marker.
    let moved = leaders(&mut clients[0], "__transaction_state", INTERNAL).await;
    let now_led_by = moved[partition_for(&tid, INTERNAL) as usize];
    assert_ne!(now_led_by, 1, "{moved:?}");
    let coordinator = &mut clients[now_led_by as usize - 2];
    let commit = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(&p.tid)))
        .with_producer_id(ProducerId(p.pid))
        .with_producer_epoch(p.epoch)
        .with_committed(true);
    let r = call_until_settled(coordinator, &commit, 3, |r| r.error_code).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    for partition in [p2, later2] {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let f = fetch_committed(&mut clients[0], partition).await;
            if f.last_stable_offset == 2 {
                assert_eq!(
                    batches(&f.records),
                    vec![
                        (false, p.pid, None),
                        (true, p.pid, Some(MarkerKind::Commit))
                    ]
                );
                break;
            }
            assert!(Instant::now() < deadline, "{partition}: {f:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
