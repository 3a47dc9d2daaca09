//! Several brokers in this process forming one cluster over the Raft metadata quorum: shared
//! metadata, partitions spread over the brokers, requests routed by leader, a stopped broker
//! fenced and back after a restart, and the quorum described.

use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeQuorumRequest, MetadataRequest, MetadataResponse,
    TopicName,
};
use uuid::Uuid;

use crate::harness::{create, fetch, produce, s, Client, TestCluster};
use gregor::records::testutil::simple_batch;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const LEADER_NOT_AVAILABLE: i16 = 5;

async fn metadata(c: &mut Client) -> MetadataResponse {
    c.call(&MetadataRequest::default().with_topics(None), 12)
        .await
}

/// Polls `check` on fresh metadata from `c` until it holds or `within` passes.
async fn until(
    c: &mut Client,
    within: Duration,
    mut check: impl FnMut(&MetadataResponse) -> bool,
) -> MetadataResponse {
    let deadline = Instant::now() + within;
    loop {
        let m = metadata(c).await;
        if check(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "metadata never matched: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (partition, leader) of `topic` in `m`, by partition.
fn leaders(m: &MetadataResponse, topic: &str) -> Vec<(i32, i32)> {
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .expect("topic listed");
    let mut l: Vec<(i32, i32)> = t
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    l.sort();
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_spread_over_three_brokers_and_requests_go_to_leaders() {
    let cluster = TestCluster::start(3, &[]).await;
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.node(id).client().await);
    }
    let m = until(&mut clients[0], Duration::from_secs(10), |m| {
        m.brokers.len() == 3
    })
    .await;
    let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    assert_eq!(ids, vec![1, 2, 3]);
    let cluster_id = m.cluster_id.clone();
    assert!(cluster_id.is_some());

    // Created through broker 2 once it too sees all three (placement uses its own image).
    until(&mut clients[1], Duration::from_secs(10), |m| {
        m.brokers.len() == 3
    })
    .await;
    let created = create(&mut clients[1], "spread", 6).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let topic_id: Uuid = created.topics[0].topic_id;
    let from_first = leaders(&metadata(&mut clients[0]).await, "spread");
    for c in clients.iter_mut() {
        let m = until(c, Duration::from_secs(10), |m| {
            m.topics
                .iter()
                .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("spread"))
        })
        .await;
        assert_eq!(leaders(&m, "spread"), from_first);
        assert_eq!(m.cluster_id, cluster_id, "one cluster id everywhere");
    }
    let mut led_by: Vec<i32> = from_first.iter().map(|(_, l)| *l).collect();
    led_by.sort();
    led_by.dedup();
    assert_eq!(
        led_by,
        vec![1, 2, 3],
        "leaders on every broker: {from_first:?}"
    );

    for (partition, leader) in &from_first {
        let batch = simple_batch(3, 10, 1_000 + *partition as i64);
        for id in 1..=3 {
            // The publisher makes the leader's log shortly after the commit.
            let deadline = Instant::now() + Duration::from_secs(10);
            let answer = loop {
                let r = produce(
                    &mut clients[id - 1],
                    "spread",
                    topic_id,
                    *partition,
                    &batch,
                    9,
                )
                .await;
                if r.error_code != NOT_LEADER_OR_FOLLOWER
                    || id as i32 != *leader
                    || Instant::now() > deadline
                {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            if id as i32 == *leader {
                assert_eq!(
                    answer.error_code, 0,
                    "leader {leader} partition {partition}: {answer:?}"
                );
            } else {
                assert_eq!(
                    answer.error_code, NOT_LEADER_OR_FOLLOWER,
                    "broker {id} does not lead {partition}"
                );
                // KIP-951 (v10+): the refusal names the leader, with its endpoint.
                let full = clients[id - 1]
                    .call(
                        &crate::harness::produce_request(
                            "spread", topic_id, *partition, &batch, -1, 10,
                        ),
                        10,
                    )
                    .await;
                let refused = &full.responses[0].partition_responses[0];
                assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER);
                assert_eq!(refused.current_leader.leader_id.0, *leader);
                assert_eq!(full.node_endpoints.len(), 1, "{full:?}");
                assert_eq!(full.node_endpoints[0].node_id.0, *leader);
                assert_eq!(
                    full.node_endpoints[0].port,
                    i32::from(cluster.node(*leader as usize).addr().port())
                );
                // And so does a Fetch refusal (v16+), in the hand-framed response.
                let fetched = clients[id - 1]
                    .call(
                        &crate::harness::fetch_request(
                            "spread",
                            topic_id,
                            *partition,
                            0,
                            0,
                            1 << 20,
                            16,
                        ),
                        16,
                    )
                    .await;
                let refused = &fetched.responses[0].partitions[0];
                assert_eq!(refused.error_code, NOT_LEADER_OR_FOLLOWER);
                assert_eq!(refused.current_leader.leader_id.0, *leader);
                assert_eq!(fetched.node_endpoints.len(), 1, "{fetched:?}");
                assert_eq!(fetched.node_endpoints[0].node_id.0, *leader);
                assert_eq!(
                    fetched.node_endpoints[0].port,
                    i32::from(cluster.node(*leader as usize).addr().port())
                );
            }
        }
        let leader_client = &mut clients[*leader as usize - 1];
        let data = fetch(leader_client, "spread", topic_id, *partition, 0, 12).await;
        assert_eq!(data.error_code, 0);
        assert_eq!(
            data.high_watermark, 3,
            "exactly the one batch, on the leader"
        );
        assert_eq!(
            data.records.as_ref().map(|r| r.len()),
            Some(batch.len()),
            "the batch comes back whole from its leader"
        );
    }

    let described = clients[2].call(&DescribeClusterRequest::default(), 1).await;
    assert_eq!(described.brokers.len(), 3);
    assert!((1..=3).contains(&described.controller_id.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_broker_is_fenced_admin_writes_go_on_and_it_comes_back() {
    let mut cluster = TestCluster::start(3, &[("broker.session.timeout.ms", "1500")]).await;
    let mut c1 = cluster.node(1).client().await;
    let created = create(&mut c1, "before", 3).await;
    assert_eq!(created.topics[0].error_code, 0);
    let placement = leaders(
        &until(&mut c1, Duration::from_secs(10), |m| !m.topics.is_empty()).await,
        "before",
    );
    let on_three: Vec<i32> = placement
        .iter()
        .filter(|(_, l)| *l == 3)
        .map(|(p, _)| *p)
        .collect();
    assert!(!on_three.is_empty(), "{placement:?}");

    let stopped_at = Instant::now();
    let stopped = cluster.stop(3).await;
    let m = until(&mut c1, Duration::from_secs(15), |m| m.brokers.len() == 2).await;
    let fenced_after = stopped_at.elapsed();
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("before"))
        .expect("topic");
    for p in &t.partitions {
        if on_three.contains(&p.partition_index) {
            assert_eq!(
                (p.leader_id, p.error_code),
                (BrokerId(-1), LEADER_NOT_AVAILABLE)
            );
            assert_eq!(p.offline_replicas, vec![BrokerId(3)]);
        } else {
            assert_eq!(p.error_code, 0);
        }
    }
    // No replica but the stopped leader has the data: no election moves leadership.
    {
        use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
        use kafka_protocol::messages::ElectLeadersRequest;
        let one = |kind: i8| {
            ElectLeadersRequest::default()
                .with_election_type(kind)
                .with_topic_partitions(Some(vec![TopicPartitions::default()
                    .with_topic(TopicName(s("before")))
                    .with_partitions(vec![on_three[0]])]))
                .with_timeout_ms(5000)
        };
        let code = |r: &kafka_protocol::messages::ElectLeadersResponse| {
            r.replica_election_results[0].partition_result[0].error_code
        };
        const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
        const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
        assert_eq!(
            code(&c1.call(&one(0), 2).await),
            PREFERRED_LEADER_NOT_AVAILABLE
        );
        assert_eq!(
            code(&c1.call(&one(1), 2).await),
            ELIGIBLE_LEADERS_NOT_AVAILABLE
        );
    }
    // Two of three voters: admin writes still commit.
    let written_at = Instant::now();
    let created = create(&mut c1, "during", 2).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let write_took = written_at.elapsed();
    println!("broker stop -> fenced in Metadata: {fenced_after:?}; admin write with 2/3 voters: {write_took:?}");

    let restarted_at = Instant::now();
    cluster.restart(3, stopped).await;
    let m = until(&mut c1, Duration::from_secs(15), |m| {
        m.brokers.len() == 3
            && m.topics
                .iter()
                .all(|t| t.partitions.iter().all(|p| p.leader_id.0 >= 0))
    })
    .await;
    println!(
        "restart -> its partitions led again: {:?}",
        restarted_at.elapsed()
    );
    assert_eq!(
        leaders(&m, "before"),
        placement,
        "leadership comes back where it was"
    );
    {
        use kafka_protocol::messages::ElectLeadersRequest;
        // Every leader is its preferred replica: an election over all partitions has nothing
        // to do and reports nothing (as `kafka-leader-election --all-topic-partitions`).
        let all = c1
            .call(&ElectLeadersRequest::default().with_timeout_ms(5000), 2)
            .await;
        assert_eq!(all.error_code, 0);
        assert!(all.replica_election_results.is_empty(), "{all:?}");
    }
    let mut c3 = cluster.node(3).client().await;
    let seen = until(&mut c3, Duration::from_secs(10), |m| m.topics.len() >= 2).await;
    let mut names: Vec<String> = seen
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["before".to_string(), "during".to_string()],
        "caught up with what it missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_quorum_names_the_leader_and_three_voters() {
    let cluster = TestCluster::start(3, &[]).await;
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default()])]);
    // Ask every node; the leader's answer has every voter's log end offset.
    let mut leader_answers = 0;
    for id in 1..=3 {
        let mut c = cluster.node(id).client().await;
        let r = c.call(&request, 2).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert!((1..=3).contains(&p.leader_id.0), "{p:?}");
        assert_eq!(p.current_voters.len(), 3);
        assert_eq!(r.nodes.len(), 3, "v2 lists the voters' endpoints");
        if p.leader_id.0 == id as i32 {
            leader_answers += 1;
            assert!(p.high_watermark > 0);
            for v in &p.current_voters {
                assert!(v.log_end_offset > 0, "{v:?}");
            }
        }
    }
    assert_eq!(leader_answers, 1, "exactly one node says it leads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_factors_up_to_the_broker_count_and_manual_assignments_are_recorded() {
    use kafka_protocol::messages::create_topics_request::{
        CreatableReplicaAssignment, CreatableTopic,
    };
    use kafka_protocol::messages::CreateTopicsRequest;
    const INVALID_REPLICATION_FACTOR: i16 = 38;
    let cluster = TestCluster::start(3, &[]).await;
    let mut c = cluster.node(1).client().await;
    let topic = |name: &str, rf: i16| {
        CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(3)
            .with_replication_factor(rf)
    };
    let manual = CreatableTopic::default()
        .with_name(TopicName(s("manual")))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
        .with_assignments(
            [(0, vec![2, 3]), (1, vec![3, 1])]
                .into_iter()
                .map(|(p, ids)| {
                    CreatableReplicaAssignment::default()
                        .with_partition_index(p)
                        .with_broker_ids(ids.into_iter().map(BrokerId).collect())
                })
                .collect(),
        );
    let r = c
        .call(
            &CreateTopicsRequest::default()
                .with_topics(vec![topic("rf3", 3), topic("rf4", 4), manual])
                .with_timeout_ms(5000),
            7,
        )
        .await;
    let code = |name: &str| {
        r.topics
            .iter()
            .find(|t| t.name.0.as_str() == name)
            .map(|t| t.error_code)
    };
    assert_eq!(code("rf3"), Some(0), "{r:?}");
    assert_eq!(code("rf4"), Some(INVALID_REPLICATION_FACTOR));
    assert_eq!(code("manual"), Some(0), "{r:?}");
    let m = until(&mut c, Duration::from_secs(10), |m| m.topics.len() == 2).await;
    for t in &m.topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        for p in &t.partitions {
            let mut replicas: Vec<i32> = p.replica_nodes.iter().map(|b| b.0).collect();
            assert_eq!(replicas[0], p.leader_id.0, "the first replica leads");
            // A new partition's replicas are all empty, so all in sync.
            assert_eq!(p.isr_nodes, p.replica_nodes);
            replicas.sort();
            match name.as_str() {
                "rf3" => assert_eq!(replicas, vec![1, 2, 3]),
                "manual" if p.partition_index == 0 => {
                    assert_eq!((p.leader_id.0, replicas), (2, vec![2, 3]))
                }
                "manual" => assert_eq!((p.leader_id.0, replicas), (3, vec![1, 3])),
                other => panic!("unexpected topic {other}"),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decommissioned_broker_is_unregistered_once() {
    use kafka_protocol::messages::UnregisterBrokerRequest;
    const BROKER_ID_NOT_REGISTERED: i16 = 102;
    let mut cluster = TestCluster::start(3, &[]).await;
    let mut c1 = cluster.node(1).client().await;
    let created = create(&mut c1, "kept", 3).await;
    assert_eq!(created.topics[0].error_code, 0);
    let _stopped = cluster.stop(3).await;
    let unregister = UnregisterBrokerRequest::default().with_broker_id(BrokerId(3));
    assert_eq!(c1.call(&unregister, 0).await.error_code, 0);
    assert_eq!(
        c1.call(&unregister, 0).await.error_code,
        BROKER_ID_NOT_REGISTERED
    );
    let unknown = UnregisterBrokerRequest::default().with_broker_id(BrokerId(42));
    assert_eq!(
        c1.call(&unknown, 0).await.error_code,
        BROKER_ID_NOT_REGISTERED
    );
    let m = until(&mut c1, Duration::from_secs(10), |m| m.brokers.len() == 2).await;
    // Its partitions stay placed on it, offline, until reassigned.
    let t = &m.topics[0];
    for p in &t.partitions {
        if p.replica_nodes == vec![BrokerId(3)] {
            assert_eq!(p.leader_id, BrokerId(-1));
            assert_eq!(p.offline_replicas, vec![BrokerId(3)]);
        }
    }
}

/// Split roles: one controller-only node is the whole quorum; two broker-only nodes follow
/// the metadata log as observers, serve clients and hold the partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_only_and_broker_only_nodes() {
    use crate::harness::{free_port, start_in};
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let voters = format!("1@127.0.0.1:{}", ports[0]);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let node = |id: usize| {
        let roles = if id == 1 { "controller" } else { "broker" };
        let listeners = if id == 1 {
            format!("CONTROLLER://127.0.0.1:{}", ports[0])
        } else {
            format!(
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                ports[id - 1]
            )
        };
        let dir = dirs[id - 1].path().to_path_buf();
        let voters = voters.clone();
        tokio::spawn(async move {
            let settings = [
                ("node.id", id.to_string()),
                ("process.roles", roles.to_string()),
                ("listeners", listeners),
                ("controller.quorum.voters", voters),
            ];
            let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
            start_in(&dir, &pairs).await
        })
    };
    let starts: Vec<_> = (1..=3).map(node).collect();
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("node starts"));
    }
    let mut c2 = Client::connect(nodes[1].local_addr()).await;
    let m = until(&mut c2, Duration::from_secs(15), |m| m.brokers.len() == 2).await;
    let mut ids: Vec<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
    ids.sort();
    assert_eq!(ids, vec![2, 3], "the controller-only node is not a broker");
    let mut c3 = Client::connect(nodes[2].local_addr()).await;
    let created = create(&mut c3, "split", 4).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let m = until(&mut c2, Duration::from_secs(10), |m| !m.topics.is_empty()).await;
    let mut led_by: Vec<i32> = leaders(&m, "split").iter().map(|(_, l)| *l).collect();
    led_by.sort();
    led_by.dedup();
    assert_eq!(led_by, vec![2, 3]);
    let (partition, leader) = leaders(&m, "split")[0];
    let mut leader_client = Client::connect(nodes[leader as usize - 1].local_addr()).await;
    let batch = simple_batch(2, 10, 5);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = produce(
            &mut leader_client,
            "split",
            created.topics[0].topic_id,
            partition,
            &batch,
            9,
        )
        .await;
        if r.error_code == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(s("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default()])]);
    let q = c2.call(&request, 2).await;
    let p = &q.topics[0].partitions[0];
    assert_eq!(p.leader_id, BrokerId(1));
    assert_eq!(p.current_voters.len(), 1);
    let mut observers: Vec<i32> = p.observers.iter().map(|o| o.replica_id.0).collect();
    observers.sort();
    assert_eq!(
        observers,
        vec![2, 3],
        "the broker-only nodes follow the log"
    );
    // Brokers first: their controlled shutdown goes through the controller.
    for node in nodes.into_iter().rev() {
        node.shutdown().await.expect("clean shutdown");
    }
}
