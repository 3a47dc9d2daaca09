//! Partition replication across brokers in this process: a topic with three replicas keeps
//! every acknowledged record through a leader's departure, acks=all waits for the in-sync
//! replicas, `min.insync.replicas` refuses writes the ISR cannot hold, a returning broker
//! catches up, rejoins the ISR and leads again after a preferred election, and a fourth broker that
//! joins takes a partition, data included, through a reassignment.

use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::{CreateTopicsRequest, MetadataRequest, MetadataResponse, TopicName};
use uuid::Uuid;

use crate::harness::{fetch, produce_request, s, Client, TestCluster};
use gregor::records::testutil::build_batch;
use gregor::records::Compression;

const NOT_ENOUGH_REPLICAS: i16 = 19;

async fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(&MetadataRequest::default().with_topics(None), 12)
        .await
}

/// The one partition of `topic` as `m` describes it.
fn partition(m: &MetadataResponse, topic: &str) -> Option<MetadataResponsePartition> {
    m.topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .and_then(|t| t.partitions.first().cloned())
}

/// Polls metadata from `c` until `check` holds for `topic`'s partition 0.
async fn until(
    c: &mut Client,
    topic: &str,
    within: Duration,
    mut check: impl FnMut(&MetadataResponsePartition) -> bool,
) -> MetadataResponsePartition {
    let deadline = Instant::now() + within;
    loop {
        let m = metadata(c).await;
        if let Some(p) = partition(&m, topic).filter(|p| check(p)) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "metadata never matched: {:?}",
            partition(&m, topic)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_replicated(c: &mut Client, name: &str, min_insync: &str) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(1)
            .with_replication_factor(3)
            .with_configs(vec![CreatableTopicConfig::default()
                .with_name(s("min.insync.replicas"))
                .with_value(Some(s(min_insync)))])])
        .with_timeout_ms(5000);
    let resp = c.call(&req, 7).await;
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

/// A batch of one record whose value is `value`.
fn batch(value: &str) -> Vec<u8> {
    build_batch(
        &[(None, Some(value.as_bytes()), Vec::new(), 1_000)],
        Compression::None,
        -1,
        -1,
        -1,
    )
}

/// Produces `values` one batch each with acks=all to `c`; returns the error codes. A broker
/// that leads per the metadata but has not taken the leadership up yet answers
/// NOT_LEADER_OR_FOLLOWER, which clients retry: so does this, briefly.
async fn produce_all(c: &mut Client, topic: &str, values: &[String]) -> Vec<i16> {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    let mut codes = Vec::new();
    for v in values {
        let req = produce_request(topic, Uuid::nil(), 0, &batch(v), -1, 9);
        let mut code = NOT_LEADER_OR_FOLLOWER;
        for _ in 0..50 {
            let resp = c.call(&req, 9).await;
            code = resp.responses[0].partition_responses[0].error_code;
            if code != NOT_LEADER_OR_FOLLOWER {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        codes.push(code);
    }
    codes
}

/// Every record value of partition 0 below the high watermark, read from `c` (the leader).
/// A leader that the controller named but that has not applied that metadata yet answers
/// NOT_LEADER_OR_FOLLOWER, and a new leader whose high watermark has not caught up with its
/// log yet OFFSET_NOT_AVAILABLE; clients retry both: so does this, briefly.
async fn read_all(c: &mut Client, topic: &str) -> (Vec<String>, i64) {
    const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    const OFFSET_NOT_AVAILABLE: i16 = 78;
    let mut values = Vec::new();
    let mut offset = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let p = fetch(c, topic, Uuid::nil(), 0, offset, 11).await;
        if [NOT_LEADER_OR_FOLLOWER, OFFSET_NOT_AVAILABLE].contains(&p.error_code)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert_eq!(p.error_code, 0, "{p:?}");
        let bytes = p.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return (values, p.high_watermark);
        }
        let mut rest: &[u8] = &bytes;
        while rest.len() >= 12 {
            let len = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize + 12;
            let one = &rest[..len];
            for r in gregor::records::records(one, 1 << 20).unwrap().iter() {
                let r = r.unwrap();
                values.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                offset = r.offset + 1;
            }
            rest = &rest[len..];
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_the_leader_and_a_returning_broker_catches_up() {
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "1500"),
            ("replica.lag.time.max.ms", "1500"),
        ],
    )
    .await;
    let mut c1 = cluster.node(1).client().await;
    create_replicated(&mut c1, "r", "2").await;
    let p = until(&mut c1, "r", Duration::from_secs(10), |p| {
        p.leader_id.0 > 0 && p.isr_nodes.len() == 3
    })
    .await;
    let leader = p.leader_id.0 as usize;
    let epoch = p.leader_epoch;
    let mut cl = cluster.node(leader).client().await;
    let first: Vec<String> = (0..20).map(|i| format!("a{i}")).collect();
    let started = Instant::now();
    let codes = produce_all(&mut cl, "r", &first).await;
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    println!("20 acks=all produces on RF=3: {:?}", started.elapsed());
    let (seen, hw) = read_all(&mut cl, "r").await;
    assert_eq!(seen, first);
    assert_eq!(hw, 20);
    // Every follower has the acknowledged records already (acks=all waited for them).
    for id in 1..=3 {
        let log = cluster
            .node(id)
            .broker
            .context()
            .partition("r", 0)
            .expect("every replica has a log");
        assert!(log.log_end_offset().get() >= 20, "node {id}");
    }

    let stopped_at = Instant::now();
    let stopped = cluster.stop(leader).await;
    let other = (1..=3).find(|id| *id != leader).unwrap();
    let mut co = cluster.node(other).client().await;
    let p = until(&mut co, "r", Duration::from_secs(10), |p| {
        p.leader_id.0 > 0 && p.leader_id.0 as usize != leader
    })
    .await;
    println!("leader stopped -> new leader: {:?}", stopped_at.elapsed());
    assert!(p.leader_epoch > epoch, "a new leader epoch");
    assert!(!p.isr_nodes.iter().any(|n| n.0 as usize == leader));
    let new_leader = p.leader_id.0 as usize;
    let mut cn = cluster.node(new_leader).client().await;
    let second: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let codes = produce_all(&mut cn, "r", &second).await;
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");
    println!(
        "leader stopped -> first acks=all produce on the new leader: {:?}",
        stopped_at.elapsed()
    );
    let (seen, _) = read_all(&mut cn, "r").await;
    let mut expected = first.clone();
    expected.extend(second.iter().cloned());
    assert_eq!(seen, expected, "nothing acknowledged was lost, in order");

    let restarted_at = Instant::now();
    cluster.restart(leader, stopped).await;
    until(&mut cn, "r", Duration::from_secs(15), |p| {
        p.isr_nodes.len() == 3
    })
    .await;
    println!("restart -> back in the ISR: {:?}", restarted_at.elapsed());
    let back = cluster
        .node(leader)
        .broker
        .context()
        .partition("r", 0)
        .expect("log");
    assert_eq!(back.log_end_offset().get(), 30, "caught up");

    // A preferred election gives the partition back to its first replica, the old leader.
    {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        use kafka_protocol::messages::ElectLeadersRequest;
        let elect = ElectLeadersRequest::default()
            .with_election_type(0)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(TopicName(s("r")))
                .with_partitions(vec![0])]))
            .with_timeout_ms(5000);
        let r = cn.call(&elect, 2).await;
        assert_eq!(
            r.replica_election_results[0].partition_result[0].error_code, 0,
            "{r:?}"
        );
        let p = until(&mut cn, "r", Duration::from_secs(10), |p| {
            p.leader_id.0 as usize == leader
        })
        .await;
        assert_eq!(
            p.replica_nodes[0].0 as usize, leader,
            "it was the preferred replica"
        );
        let mut cl = cluster.node(leader).client().await;
        let (seen, _) = read_all(&mut cl, "r").await;
        assert_eq!(
            seen, expected,
            "the preferred leader serves the same records"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_refuses_acks_all_once_the_isr_is_too_small() {
    let mut cluster = TestCluster::start(
        3,
        &[
            ("broker.session.timeout.ms", "1500"),
            ("replica.lag.time.max.ms", "1000"),
        ],
    )
    .await;
    let mut c1 = cluster.node(1).client().await;
    create_replicated(&mut c1, "m", "3").await;
    let p = until(&mut c1, "m", Duration::from_secs(10), |p| {
        p.leader_id.0 > 0 && p.isr_nodes.len() == 3
    })
    .await;
    let leader = p.leader_id.0 as usize;
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    let mut cl = cluster.node(leader).client().await;
    assert_eq!(produce_all(&mut cl, "m", &["x".into()]).await, vec![0]);
    let _stopped = cluster.stop(follower).await;
    until(&mut cl, "m", Duration::from_secs(10), |p| {
        p.isr_nodes.len() == 2
    })
    .await;
    assert_eq!(
        produce_all(&mut cl, "m", &["y".into()]).await,
        vec![NOT_ENOUGH_REPLICAS]
    );
    // acks=1 does not ask for the ISR.
    let req = produce_request("m", Uuid::nil(), 0, &batch("z"), 1, 9);
    let resp = cl.call(&req, 9).await;
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_broker_joins_and_takes_a_partition_through_a_reassignment() {
    use crate::harness::{free_port, start_in};
    use kafka_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use kafka_protocol::messages::{
        AlterPartitionReassignmentsRequest, BrokerId, ListPartitionReassignmentsRequest,
    };
    let cluster = TestCluster::start(3, &[]).await;
    // Node 4: a broker-only node of the same quorum (it follows the metadata log as an
    // observer on its own controller listener).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut settings: Vec<(String, String)> = cluster
        .settings
        .iter()
        .filter(|(k, _)| k == "controller.quorum.voters")
        .cloned()
        .collect();
    settings.push(("node.id".into(), "4".into()));
    settings.push(("process.roles".into(), "broker".into()));
    settings.push((
        "listeners".into(),
        format!(
            "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
            free_port()
        ),
    ));
    let pairs: Vec<(&str, &str)> = settings
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let fourth = start_in(dir.path(), &pairs).await;

    let mut c1 = cluster.node(1).client().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while metadata(&mut c1).await.brokers.len() < 4 {
        assert!(Instant::now() < deadline, "node 4 never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("moved")))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![
                kafka_protocol::messages::create_topics_request::CreatableReplicaAssignment::default()
                    .with_partition_index(0)
                    .with_broker_ids(vec![BrokerId(1)]),
            ])])
        .with_timeout_ms(5000);
    let created = c1.call(&req, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let values: Vec<String> = (0..25).map(|i| format!("m{i}")).collect();
    let codes = produce_all(&mut c1, "moved", &values).await;
    assert!(codes.iter().all(|c| *c == 0), "{codes:?}");

    let alter = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(TopicName(s("moved")))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(4)]))])]);
    let resp = c1.call(&alter, 0).await;
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "{resp:?}");
    let started = Instant::now();
    let p = until(&mut c1, "moved", Duration::from_secs(20), |p| {
        p.replica_nodes == vec![BrokerId(4)] && p.leader_id == BrokerId(4)
    })
    .await;
    println!(
        "reassignment to a fourth broker done in {:?}",
        started.elapsed()
    );
    assert_eq!(p.isr_nodes, vec![BrokerId(4)]);
    let listed = c1
        .call(&ListPartitionReassignmentsRequest::default(), 0)
        .await;
    assert!(listed.topics.is_empty(), "{listed:?}");
    let mut c4 = Client::connect(fourth.local_addr()).await;
    let (seen, hw) = read_all(&mut c4, "moved").await;
    assert_eq!(seen, values, "the data moved with the partition");
    assert_eq!(hw, 25);
    fourth.shutdown().await.expect("clean shutdown");
}
