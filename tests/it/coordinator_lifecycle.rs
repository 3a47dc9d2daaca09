//! The coordinators' per-partition lifecycle (Kafka's `onElection` / `onResignation`) on real
//! brokers: giving up every internal partition and taking them over again gives back the same
//! groups, committed offsets, pending transactional offsets and transaction states; parked
//! requests and requests meeting an unloaded partition are refused (NOT_COORDINATOR /
//! COORDINATOR_LOAD_IN_PROGRESS), as is a commit overtaken by the resignation before its
//! acknowledgement; and in a three-broker cluster a broker that loses the
//! leadership of a group's partition stops coordinating it, and coordinates it again, with its
//! offsets, when the leadership comes back at a new epoch.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor::common::{LeaderEpoch, NodeId};
use gregor::group::records::{partition_for, OFFSETS_TOPIC};
use gregor::group::{GroupCoordinator, GroupState};
use gregor::handlers::coordinator::sync_coordinators;
use gregor::metadata::{MetadataCommand, MetadataRecord};
use gregor::txn::records::TxnStatus;
use gregor::BrokerContext;
use kafka_protocol::messages::{
    DescribeGroupsRequest, FindCoordinatorRequest, GroupId, JoinGroupResponse, OffsetFetchRequest,
};

use crate::groups::{commit_req, fetch_offsets, join_req, subscription, sync_req};
use crate::harness::{self, create, s, Client, TestCluster};
use crate::transactions::{
    add_offsets, add_partitions, ctx, end, init, init_ok, pending, txn_commit,
};

const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const NOT_COORDINATOR: i16 = 16;
const MEMBER_ID_REQUIRED: i16 = 79;

const SETTINGS: &[(&str, &str)] = &[
    ("transaction.state.log.num.partitions", "3"),
    ("offsets.topic.num.partitions", "3"),
    ("group.initial.rebalance.delay.ms", "0"),
];

/// What a group looks like from outside: state, generation, members, offsets.
type GroupView = (GroupState, i32, usize, BTreeMap<(String, i32), i64>);

fn group_view(c: &BrokerContext, group: &str) -> Option<GroupView> {
    let g = c.groups.get(group)?;
    let g = GroupCoordinator::lock_group(&g);
    let offsets = g
        .offsets
        .iter()
        .map(|(k, v)| (k.clone(), v.offset))
        .collect();
    Some((g.state, g.generation, g.members.len(), offsets))
}

async fn offset_fetch_error(c: &mut Client, group: &str) -> i16 {
    c.call(
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(None),
        7,
    )
    .await
    .error_code
}

/// Joins `group` as a new member (the MEMBER_ID_REQUIRED dance) and syncs as its leader.
async fn join_and_sync(c: &mut Client, group: &str) -> (String, i32) {
    let protocols = vec![("range", subscription(&["data"]))];
    let first = c
        .call(&join_req(group, "", None, 30_000, &protocols, 7), 7)
        .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    let joined: JoinGroupResponse = c
        .call(&join_req(group, &id, None, 30_000, &protocols, 7), 7)
        .await;
    assert_eq!(joined.error_code, 0, "{joined:?}");
    let synced = c
        .call(
            &sync_req(group, joined.generation_id, &id, &[(&id, b"a")], 5),
            5,
        )
        .await;
    assert_eq!(synced.error_code, 0, "{synced:?}");
    (id, joined.generation_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unloading_and_reloading_internal_partitions_keeps_groups_offsets_and_transactions() {
    let b = harness::start(SETTINGS).await;
    let c = ctx(&b);
    let mut client = b.client().await;
    assert_eq!(create(&mut client, "data", 2).await.topics[0].error_code, 0);

    // A standalone commit, a classic group with a member and its commit, a committed
    // transaction with offsets, and an open one with pending offsets.
    let standalone = client
        .call(
            &commit_req("standalone", -1, "", "data", &[(0, 10), (1, 11)], 8),
            8,
        )
        .await;
    assert!(standalone.topics[0]
        .partitions
        .iter()
        .all(|p| p.error_code == 0));
    let (member, generation) = join_and_sync(&mut client, "members").await;
    let committed = client
        .call(
            &commit_req("members", generation, &member, "data", &[(0, 5)], 8),
            8,
        )
        .await;
    assert_eq!(committed.topics[0].partitions[0].error_code, 0);
    let done = init_ok(&c, "done", 60_000).await;
    assert_eq!(add_offsets(&c, "done", done, "txgroup").await, 0);
    assert_eq!(
        txn_commit(&c, "done", done, "txgroup", ("data", 0, 42), 3).await,
        0
    );
    assert_eq!(end(&c, "done", done, true).await, 0);
    let open = init_ok(&c, "open", 60_000).await;
    assert_eq!(
        add_partitions(&c, "open", open, &[("data", 1)]).await,
        vec![0]
    );
    assert_eq!(add_offsets(&c, "open", open, "txgroup2").await, 0);
    assert_eq!(
        txn_commit(&c, "open", open, "txgroup2", ("data", 1, 7), 3).await,
        0
    );
    assert!(pending(&c, "txgroup2", "data", 1));

    let groups = ["standalone", "members", "txgroup", "txgroup2"];
    let before: Vec<Option<GroupView>> = groups.iter().map(|g| group_view(&c, g)).collect();
    assert!(before.iter().all(Option::is_some), "{before:?}");
    assert_eq!(before[1].as_ref().map(|v| v.0), Some(GroupState::Stable));
    let txns_before = [c.txns.describe("done"), c.txns.describe("open")];
    assert_eq!(
        txns_before[0].as_ref().map(|d| d.state),
        Some(TxnStatus::CompleteCommit)
    );
    assert_eq!(
        txns_before[1].as_ref().map(|d| d.state),
        Some(TxnStatus::Ongoing)
    );
    assert_eq!(c.groups.owned_partitions().len(), 3);
    assert_eq!(c.txns.owned_partitions().len(), 3);

    // A second member's join parks while the first must rejoin.
    let mut second = b.client().await;
    let protocols = vec![("range", subscription(&["data"]))];
    let first_join = second
        .call(&join_req("members", "", None, 30_000, &protocols, 7), 7)
        .await;
    let second_id = first_join.member_id.to_string();
    let parked = second
        .send(
            &join_req("members", &second_id, None, 30_000, &protocols, 7),
            7,
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while group_view(&c, "members").map(|v| v.0) != Some(GroupState::PreparingRebalance) {
        assert!(Instant::now() < deadline, "the second join never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Resign every internal partition.
    for p in c.groups.owned_partitions().into_keys() {
        c.groups.unload_partition(p);
    }
    for p in c.txns.owned_partitions().into_keys() {
        c.txns.unload_partition(p);
    }
    let answer: JoinGroupResponse = tokio::time::timeout(
        harness::TIMEOUT,
        second.receive::<kafka_protocol::messages::JoinGroupRequest>(parked, 7),
    )
    .await
    .expect("the parked join is answered");
    assert_eq!(answer.error_code, NOT_COORDINATOR, "{answer:?}");
    for g in groups {
        assert!(c.groups.get(g).is_none(), "{g} still in memory");
        // Still the leader, not loaded: retriable, not an empty answer.
        assert_eq!(
            offset_fetch_error(&mut client, g).await,
            COORDINATOR_LOAD_IN_PROGRESS
        );
    }
    assert!(c.txns.describe("done").is_none() && c.txns.describe("open").is_none());
    assert_eq!(
        init(&c, "done", 60_000).await.error_code,
        COORDINATOR_LOAD_IN_PROGRESS
    );
    let describe = client
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("members"))]),
            5,
        )
        .await;
    assert_eq!(describe.groups[0].error_code, COORDINATOR_LOAD_IN_PROGRESS);

    // Take them over again through the publisher's entry point.
    sync_coordinators(&c).await.expect("partitions load");
    assert_eq!(c.groups.owned_partitions().len(), 3);
    assert_eq!(c.txns.owned_partitions().len(), 3);
    let after: Vec<Option<GroupView>> = groups.iter().map(|g| group_view(&c, g)).collect();
    assert_eq!(after, before);
    assert_eq!(
        [c.txns.describe("done"), c.txns.describe("open")],
        txns_before
    );
    assert!(pending(&c, "txgroup2", "data", 1));
    let back = fetch_offsets(&mut client, "standalone", "data", &[0, 1], 8).await;
    assert_eq!(back.iter().map(|o| o.0).collect::<Vec<_>>(), vec![10, 11]);

    // And they go on: the open transaction commits its offsets, the member commits again.
    assert_eq!(end(&c, "open", open, true).await, 0);
    assert!(!pending(&c, "txgroup2", "data", 1));
    assert_eq!(
        crate::transactions::committed(&c, "txgroup2", "data", 1),
        Some(7)
    );
    let again = client
        .call(
            &commit_req("members", generation, &member, "data", &[(0, 6)], 8),
            8,
        )
        .await;
    assert_eq!(again.topics[0].partitions[0].error_code, 0, "{again:?}");
}

/// Proposes a new leader for `__consumer_offsets` partition `partition` at the next epoch.
async fn move_leader(c: &Arc<BrokerContext>, partition: i32, leader: NodeId) -> LeaderEpoch {
    let image = c.metadata.image();
    let topic = image.topic(OFFSETS_TOPIC).expect("offsets topic");
    let placement = topic.placement(partition).expect("partition").clone();
    let epoch = LeaderEpoch(placement.leader_epoch.get() + 1);
    c.metadata
        .quorum()
        .propose(MetadataCommand::unconditional(vec![
            MetadataRecord::PartitionLeader {
                name: OFFSETS_TOPIC.to_string(),
                partition,
                replicas: placement.replicas.clone(),
                leader,
                leader_epoch: epoch,
            },
        ]))
        .await
        .expect("leader change committed");
    epoch
}

/// Polls `cond` for up to ten seconds.
async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_loses_a_partitions_leadership_stops_coordinating_its_groups() {
    const PARTITIONS: i32 = 6;
    let cluster = TestCluster::start(
        3,
        &[
            ("group.initial.rebalance.delay.ms", "0"),
            ("offsets.topic.num.partitions", "6"),
            ("transaction.state.log.num.partitions", "6"),
        ],
    )
    .await;
    let mut c1 = cluster.node(1).client().await;
    let found = c1
        .call(
            &FindCoordinatorRequest::default()
                .with_key(s("first"))
                .with_key_type(0),
            3,
        )
        .await;
    assert_eq!(found.error_code, 0, "{found:?}");
    assert_eq!(create(&mut c1, "data", 1).await.topics[0].error_code, 0);

    // A group whose partition broker 2 leads, once broker 2 has applied the topic.
    let node2 = cluster.node(2).broker.context().clone();
    eventually("broker 2 knows the offsets topic", async || {
        node2.metadata.topic(OFFSETS_TOPIC).is_some()
    })
    .await;
    let group = (0..10_000)
        .map(|i| format!("group-{i}"))
        .find(|g| {
            node2
                .metadata
                .topic(OFFSETS_TOPIC)
                .and_then(|t| t.leader(partition_for(g, PARTITIONS)))
                == Some(NodeId(2))
        })
        .expect("broker 2 leads some partition");
    let partition = partition_for(&group, PARTITIONS);
    let mut c2 = cluster.node(2).client().await;
    eventually("broker 2 serves the group", async || {
        let r = c2
            .call(&commit_req(&group, -1, "", "data", &[(0, 33)], 8), 8)
            .await;
        r.topics[0].partitions[0].error_code == 0
    })
    .await;
    assert!(node2.groups.get(&group).is_some());
    let epoch = node2.groups.owned_partitions()[&partition];

    // Leadership goes to a broker that does not exist: broker 2 still holds the partition's
    // log (a replica) but must not serve it.
    move_leader(&node2, partition, NodeId(99)).await;
    eventually("broker 2 gives the partition up", async || {
        !node2.groups.owned_partitions().contains_key(&partition)
    })
    .await;
    assert!(node2.groups.get(&group).is_none());
    assert!(node2.partition(OFFSETS_TOPIC, partition).is_some());
    assert_eq!(offset_fetch_error(&mut c2, &group).await, NOT_COORDINATOR);
    let refused = c2
        .call(&commit_req(&group, -1, "", "data", &[(0, 34)], 8), 8)
        .await;
    assert_eq!(refused.topics[0].partitions[0].error_code, NOT_COORDINATOR);
    for id in [1, 3] {
        let other = cluster.node(id).broker.context();
        assert!(!other.groups.owned_partitions().contains_key(&partition));
    }

    // Back to broker 2 at a newer epoch: it loads the partition again, offsets included.
    let back = move_leader(&node2, partition, NodeId(2)).await;
    eventually("broker 2 takes the partition over again", async || {
        offset_fetch_error(&mut c2, &group).await == 0
    })
    .await;
    assert_ne!(
        node2.groups.owned_partitions()[&partition],
        epoch,
        "reloaded at the new epoch"
    );
    assert_eq!(
        node2.groups.owned_partitions()[&partition],
        gregor::internal_topic::PartitionLoad::Loaded(back)
    );
    let offsets = fetch_offsets(&mut c2, &group, "data", &[0], 8).await;
    assert_eq!(offsets[0].0, 33, "{offsets:?}");
}

/// A commit written while the group's partition was served, but whose partition is given up
/// before it is acknowledged, is refused with NOT_COORDINATOR (the handler's path: write under
/// the group's handle, wait, apply through that handle), and no group can be created in a
/// partition that is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_overtaken_by_a_resignation_is_not_acknowledged() {
    let b = harness::start(SETTINGS).await;
    let c = ctx(&b);
    let mut client = b.client().await;
    assert_eq!(create(&mut client, "data", 1).await.topics[0].error_code, 0);
    let standalone = client
        .call(&commit_req("racer", -1, "", "data", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(standalone.topics[0].partitions[0].error_code, 0);

    let group = c.groups.get("racer").expect("group exists");
    let commit = gregor::group::check_commit(&c.metadata, "data", 0, (2, -1), None, 0)
        .expect("a valid commit");
    GroupCoordinator::lock_group(&group).commits_in_flight += 1;
    let (_, base, _) = c
        .groups
        .write_commits(c.as_ref(), "racer", std::slice::from_ref(&commit))
        .expect("written while served");
    let partition = partition_for("racer", 3);
    assert_eq!(c.groups.unload_partition(partition), 1);
    assert_eq!(
        c.groups.apply_commits(&group, vec![commit.clone()], base),
        Err(gregor::group::GroupError::NotCoordinator)
    );
    // Nothing more is written or created for the partition while it is not served.
    assert!(c
        .groups
        .write_commits(c.as_ref(), "racer", std::slice::from_ref(&commit))
        .is_err());
    assert_eq!(
        c.groups.get_or_create("racer").err(),
        Some(gregor::group::GroupError::NotCoordinator)
    );

    // Taken over again: the log has the overtaken commit (it was written), so the new owner
    // serves it; what mattered is that the resigned one did not acknowledge it.
    sync_coordinators(&c).await.expect("reload");
    let back = fetch_offsets(&mut client, "racer", "data", &[0], 8).await;
    assert_eq!(back[0].0, 2);
}
