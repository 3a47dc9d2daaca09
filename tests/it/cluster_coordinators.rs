//! Group and transaction coordinators in a three-broker cluster in this process: the
//! coordinator of a key is the leader of its internal-topic partition, every broker names the
//! same one in FindCoordinator, requests sent to another broker get NOT_COORDINATOR and leave
//! no state there, and the coordinator serves them (offsets come back from it).

use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, InitProducerIdRequest,
    MetadataRequest, MetadataResponse, OffsetFetchRequest, TransactionalId,
};

use crate::groups::{commit_req, fetch_offsets, heartbeat_req, join_req, subscription};
use crate::harness::{create, s, Client, TestCluster};
use gregor::group::records::partition_for;

const NOT_COORDINATOR: i16 = 16;
const PARTITIONS: i32 = 6;

const SETTINGS: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("offsets.topic.num.partitions", "6"),
    ("transaction.state.log.num.partitions", "6"),
];

async fn find(c: &mut Client, key: &str, key_type: i8, v: i16) -> (i16, i32, String, i32) {
    let r: FindCoordinatorResponse = if v >= 4 {
        c.call(
            &FindCoordinatorRequest::default()
                .with_key_type(key_type)
                .with_coordinator_keys(vec![s(key)]),
            v,
        )
        .await
    } else {
        c.call(
            &FindCoordinatorRequest::default()
                .with_key(s(key))
                .with_key_type(key_type),
            v,
        )
        .await
    };
    if v >= 4 {
        let k = &r.coordinators[0];
        assert_eq!(k.key.as_str(), key);
        return (k.error_code, k.node_id.0, k.host.to_string(), k.port);
    }
    (r.error_code, r.node_id.0, r.host.to_string(), r.port)
}

/// The leader of every partition of `topic` per `c`'s Metadata, once all are listed with a
/// leader (the publisher of a broker may lag the commit a little).
async fn leaders(c: &mut Client, topic: &str) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m: MetadataResponse = c
            .call(
                &MetadataRequest::default().with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kafka_protocol::messages::TopicName(s(topic)))),
                ])),
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
        if l.len() == PARTITIONS as usize && l.iter().all(|(_, leader)| *leader > 0) {
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
        .find(|k| leaders[partition_for(k, PARTITIONS) as usize] == broker)
        .expect("some key lands on every broker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_are_the_leaders_of_the_internal_partitions() {
    let cluster = TestCluster::start(3, SETTINGS).await;
    let mut clients = Vec::new();
    for id in 1..=3 {
        clients.push(cluster.node(id).client().await);
    }
    let port_of = |id: i32| i32::from(cluster.node(id as usize).broker.local_addr().port());

    // The first lookup (through broker 3) creates __consumer_offsets over all three brokers.
    let (code, ..) = find(&mut clients[2], "first", 0, 3).await;
    assert_eq!(code, 0, "first lookup");
    let offsets_leaders = leaders(&mut clients[0], "__consumer_offsets").await;
    for c in clients.iter_mut() {
        assert_eq!(leaders(c, "__consumer_offsets").await, offsets_leaders);
    }
    let mut spread = offsets_leaders.clone();
    spread.sort();
    spread.dedup();
    assert_eq!(spread, vec![1, 2, 3], "{offsets_leaders:?}");

    // Every broker names the leader of the group's partition, with its client port.
    for leader in 1..=3 {
        let group = key_led_by("group", &offsets_leaders, leader);
        for c in clients.iter_mut() {
            for v in [1, 3, 4] {
                let (code, node, host, port) = find(c, &group, 0, v).await;
                assert_eq!(
                    (code, node, port),
                    (0, leader, port_of(leader)),
                    "{group} v{v}"
                );
                assert_eq!(host, "127.0.0.1");
            }
        }
    }

    // A group coordinated by broker 2, asked at broker 1 and then at broker 2.
    let group = key_led_by("group", &offsets_leaders, 2);
    let (coord, other) = (1usize, 0usize);
    let protocols = vec![("range", subscription(&["data"]))];
    let join = join_req(&group, "", None, 10_000, &protocols, 3);
    let refused = clients[other].call(&join, 3).await;
    assert_eq!(refused.error_code, NOT_COORDINATOR);
    let refused = clients[other].call(&heartbeat_req(&group, 1, "m"), 2).await;
    assert_eq!(refused.error_code, NOT_COORDINATOR);

    let created = create(&mut clients[0], "data", 3).await;
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    for c in clients.iter_mut() {
        leaders_of_data(c).await;
    }
    let offsets = [(0, 10), (1, 11), (2, 12)];
    let refused = clients[other]
        .call(&commit_req(&group, -1, "", "data", &offsets, 8), 8)
        .await;
    for p in &refused.topics[0].partitions {
        assert_eq!(p.error_code, NOT_COORDINATOR, "{refused:?}");
    }
    let fetched = clients[other]
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_topics(None),
            7,
        )
        .await;
    assert_eq!(fetched.error_code, NOT_COORDINATOR);
    assert!(
        cluster
            .node(other + 1)
            .broker
            .context()
            .groups
            .get(&group)
            .is_none(),
        "a refused request creates no group"
    );

    // The coordinator serves them. Offsets of partitions led elsewhere are accepted too.
    let joined = while_loading(&mut clients[coord], &join, 3, |r| r.error_code).await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    // Standalone commits (generation -1) go to an Empty group: another one on broker 2.
    let standalone = key_led_by("standalone", &offsets_leaders, 2);
    let committed = while_loading(
        &mut clients[coord],
        &commit_req(&standalone, -1, "", "data", &offsets, 8),
        8,
        |r| r.topics[0].partitions[0].error_code,
    )
    .await;
    for p in &committed.topics[0].partitions {
        assert_eq!(p.error_code, 0, "{committed:?}");
    }
    for v in [1, 7, 8] {
        let back = fetch_offsets(&mut clients[coord], &standalone, "data", &[0, 1, 2], v).await;
        let got: Vec<(i64, i16)> = back.iter().map(|(o, _, _, e)| (*o, *e)).collect();
        assert_eq!(got, vec![(10, 0), (11, 0), (12, 0)], "v{v}");
    }
    for id in [1, 3] {
        let groups = &cluster.node(id).broker.context().groups;
        assert!(groups.get(&group).is_none() && groups.get(&standalone).is_none());
    }

    // Transactional ids: the leader of their __transaction_state partition.
    let (code, ..) = find(&mut clients[0], "txn-first", 1, 3).await;
    assert_eq!(code, 0);
    let txn_leaders = leaders(&mut clients[1], "__transaction_state").await;
    for c in clients.iter_mut() {
        assert_eq!(leaders(c, "__transaction_state").await, txn_leaders);
    }
    let txn = key_led_by("txn", &txn_leaders, 3);
    for c in clients.iter_mut() {
        let (code, node, _, port) = find(c, &txn, 1, 4).await;
        assert_eq!((code, node, port), (0, 3, port_of(3)));
    }
    let init = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(&txn))))
        .with_transaction_timeout_ms(10_000);
    for other in [0, 1] {
        let refused = clients[other].call(&init, 4).await;
        assert_eq!(refused.error_code, NOT_COORDINATOR);
        assert!(cluster
            .node(other + 1)
            .broker
            .context()
            .txns
            .describe(&txn)
            .is_none());
    }
    let served = while_loading(&mut clients[2], &init, 4, |r| r.error_code).await;
    assert_eq!(served.error_code, 0, "{served:?}");
    assert!(served.producer_id.0 >= 0);
    assert!(cluster
        .node(3)
        .broker
        .context()
        .txns
        .describe(&txn)
        .is_some());
}

/// Sends `request` until its answer (per `code`) is not COORDINATOR_LOAD_IN_PROGRESS, as
/// clients retry it: a broker that has just learned that it leads an internal partition loads
/// it before serving its keys.
async fn while_loading<R: kafka_protocol::protocol::Request>(
    c: &mut Client,
    request: &R,
    version: i16,
    code: impl Fn(&R::Response) -> i16,
) -> R::Response {
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.call(request, version).await;
        if code(&r) != COORDINATOR_LOAD_IN_PROGRESS {
            return r;
        }
        assert!(Instant::now() < deadline, "never loaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `c` lists topic `data` with a leader for each of its partitions.
async fn leaders_of_data(c: &mut Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m: MetadataResponse = c
            .call(&MetadataRequest::default().with_topics(None), 12)
            .await;
        let ok = m.topics.iter().any(|t| {
            t.name.as_ref().map(|n| n.0.as_str()) == Some("data")
                && t.partitions.len() == 3
                && t.partitions.iter().all(|p| p.leader_id.0 > 0)
        });
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "data never listed: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
