//! Classic consumer groups over the raw protocol: FindCoordinator, the JoinGroup/SyncGroup
//! rebalance (one, two, three members), MEMBER_ID_REQUIRED, session expiry, static membership,
//! offset commits (member, standalone, across a restart), the admin APIs, and every advertised
//! version of each group API.

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;

use crate::harness::create;
use crate::harness::{self, s, Client, TestBroker};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Fast rebalances and short sessions for tests.
const FAST: &[(&str, &str)] = &[
    ("group.initial.rebalance.delay.ms", "0"),
    ("group.min.session.timeout.ms", "100"),
    ("offsets.topic.num.partitions", "4"),
];

/// A ConsumerProtocolSubscription v0 for `topics` (what Java and librdkafka send).
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.extend_from_slice(t.as_bytes());
    }
    b.put_i32(-1); // no user data
    b.freeze()
}

/// A JoinGroup with only the fields `v` has.
pub fn join_req(
    group: &str,
    member: &str,
    instance: Option<&str>,
    session_ms: i32,
    protocols: &[(&str, Bytes)],
    v: i16,
) -> JoinGroupRequest {
    let r = JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(session_ms)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(
            protocols
                .iter()
                .map(|(n, m)| {
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s(n))
                        .with_metadata(m.clone())
                })
                .collect(),
        );
    let r = if v >= 1 {
        r.with_rebalance_timeout_ms(session_ms.max(1000))
    } else {
        r
    };
    if v >= 5 {
        r.with_group_instance_id(instance.map(s))
    } else {
        r
    }
}

fn range(topics: &[&str]) -> Vec<(&'static str, Bytes)> {
    vec![("range", subscription(topics))]
}

pub fn sync_req(
    group: &str,
    generation: i32,
    member: &str,
    assignments: &[(&str, &[u8])],
    v: i16,
) -> SyncGroupRequest {
    let r = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    if v >= 5 {
        r.with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
    } else {
        r
    }
}

pub fn heartbeat_req(group: &str, generation: i32, member: &str) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(generation)
        .with_member_id(s(member))
}

pub fn commit_req(
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offsets: &[(i32, i64)],
    v: i16,
) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|&(p, o)| {
            let r = offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(o)
                .with_committed_metadata(Some(s("meta")));
            if v >= 6 {
                r.with_committed_leader_epoch(0)
            } else {
                r
            }
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(partitions),
        ])
}

/// (offset, leader epoch, metadata, error) per requested partition, for any version 1–9.
pub async fn fetch_offsets(
    c: &mut Client,
    group: &str,
    topic: &str,
    partitions: &[i32],
    v: i16,
) -> Vec<(i64, i32, String, i16)> {
    let resp = if v >= 8 {
        let req = OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopics::default()
                        .with_name(TopicName(s(topic)))
                        .with_partition_indexes(partitions.to_vec()),
                ])),
        ]);
        let r = c.call(&req, v).await;
        assert_eq!(r.groups.len(), 1);
        assert_eq!(r.groups[0].error_code, 0);
        return r.groups[0].topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    p.error_code,
                )
            })
            .collect();
    } else {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partition_indexes(partitions.to_vec()),
            ]));
        c.call(&req, v).await
    };
    assert_eq!(resp.error_code, 0);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            (
                p.committed_offset,
                p.committed_leader_epoch,
                p.metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
                p.error_code,
            )
        })
        .collect()
}

/// Joins with the MEMBER_ID_REQUIRED dance (v4+) and returns the final answer.
async fn join(c: &mut Client, group: &str, topics: &[&str], session_ms: i32) -> JoinGroupResponse {
    let first = c
        .call(&join_req(group, "", None, session_ms, &range(topics), 7), 7)
        .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    c.call(
        &join_req(group, &id, None, session_ms, &range(topics), 7),
        7,
    )
    .await
}

async fn describe(c: &mut Client, group: &str) -> describe_groups_response::DescribedGroup {
    let r = c
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
            5,
        )
        .await;
    r.groups.into_iter().next().expect("one group described")
}

/// Waits until the group reaches `state` (a join sent on another connection has arrived).
async fn wait_state(c: &mut Client, group: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while describe(c, group).await.group_state.as_str() != state {
        assert!(Instant::now() < deadline, "{group} never reached {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_finds_coordinator_joins_syncs_and_heartbeats() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    let fc = c
        .call(&FindCoordinatorRequest::default().with_key(s("g1")), 3)
        .await;
    assert_eq!(fc.error_code, 0);
    assert_eq!(fc.node_id.0, 1);
    assert_eq!(fc.port, i32::from(b.addr().port()));
    assert_eq!(fc.host.as_str(), "127.0.0.1");
    // v4+: a batch, and transaction keys are not served.
    let fc = c
        .call(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")]),
            4,
        )
        .await;
    assert_eq!(fc.coordinators.len(), 2);
    assert!(fc
        .coordinators
        .iter()
        .all(|k| k.error_code == 0 && k.node_id.0 == 1));
    let fc = c
        .call(
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![s("txn")]),
            4,
        )
        .await;
    // Transactional ids are coordinated here too.
    assert_eq!(
        (fc.coordinators[0].error_code, fc.coordinators[0].node_id.0),
        (0, 1)
    );

    // MEMBER_ID_REQUIRED, then the real join: generation 1, this member leads.
    let first = c
        .call(&join_req("g1", "", None, 10_000, &range(&["t"]), 5), 5)
        .await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    assert!(id.starts_with("gregor-tests-"), "{id}");
    let j = c
        .call(&join_req("g1", &id, None, 10_000, &range(&["t"]), 5), 5)
        .await;
    assert_eq!(j.error_code, 0);
    assert_eq!(j.generation_id, 1);
    assert_eq!(j.member_id.as_str(), id);
    assert_eq!(j.leader.as_str(), id);
    assert_eq!(j.protocol_name.as_deref(), Some("range"));
    assert_eq!(j.members.len(), 1);
    assert_eq!(j.members[0].metadata, subscription(&["t"]));

    let sy = c
        .call(&sync_req("g1", 1, &id, &[(&id, b"assigned")], 5), 5)
        .await;
    assert_eq!(sy.error_code, 0);
    assert_eq!(&sy.assignment[..], b"assigned");
    assert_eq!(sy.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(sy.protocol_name.as_deref(), Some("range"));

    assert_eq!(c.call(&heartbeat_req("g1", 1, &id), 4).await.error_code, 0);
    assert_eq!(
        c.call(&heartbeat_req("g1", 7, &id), 4).await.error_code,
        ILLEGAL_GENERATION
    );
    assert_eq!(
        c.call(&heartbeat_req("g1", 1, "nobody"), 4)
            .await
            .error_code,
        UNKNOWN_MEMBER_ID
    );
    let d = describe(&mut c, "g1").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].client_id.as_str(), "gregor-tests");
    assert_eq!(d.members[0].client_host.as_str(), "/127.0.0.1");
    assert_eq!(&d.members[0].member_assignment[..], b"assigned");
    assert_eq!(d.members[0].member_metadata, subscription(&["t"]));

    // Out-of-range session timeouts and a stale member id.
    let bad = c
        .call(&join_req("g1", "", None, 50, &range(&["t"]), 5), 5)
        .await;
    assert_eq!(bad.error_code, INVALID_SESSION_TIMEOUT);
    let bad = c
        .call(&join_req("g1", "stale", None, 10_000, &range(&["t"]), 5), 5)
        .await;
    assert_eq!(bad.error_code, UNKNOWN_MEMBER_ID);
    let bad = c
        .call(
            &join_req("nogroup", "stale", None, 10_000, &range(&["t"]), 5),
            5,
        )
        .await;
    assert_eq!(bad.error_code, UNKNOWN_MEMBER_ID);
    let other = c
        .call(
            &join_req("g1", "", None, 10_000, &[("sticky", Bytes::new())], 3),
            3,
        )
        .await;
    assert_eq!(other.error_code, INCONSISTENT_GROUP_PROTOCOL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_member_triggers_rebalance_and_third_interrupts_it() {
    let b = harness::start(FAST).await;
    let mut a = b.client().await;
    let mut bc = b.client().await;
    let mut cc = b.client().await;
    let ja = join(&mut a, "g2", &["t"], 10_000).await;
    let a_id = ja.member_id.to_string();
    assert_eq!(ja.generation_id, 1);
    a.call(&sync_req("g2", 1, &a_id, &[(&a_id, b"all")], 5), 5)
        .await;

    // B joins and waits for the rebalance; A learns of it from its heartbeat and rejoins.
    let first = bc
        .call(&join_req("g2", "", None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let b_id = first.member_id.to_string();
    let b_join = bc
        .send(&join_req("g2", &b_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let hb = a.call(&heartbeat_req("g2", 1, &a_id), 4).await.error_code;
        if hb == REBALANCE_IN_PROGRESS {
            break;
        }
        assert_eq!(hb, 0);
        assert!(Instant::now() < deadline, "no rebalance signalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ja = a
        .call(&join_req("g2", &a_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let jb = bc.receive::<JoinGroupRequest>(b_join, 7).await;
    assert_eq!((ja.error_code, jb.error_code), (0, 0));
    assert_eq!(ja.generation_id, 2);
    assert_eq!(jb.generation_id, 2);
    assert_eq!(ja.leader.as_str(), a_id, "the first member stays leader");
    assert_eq!(jb.leader.as_str(), a_id);
    assert_eq!(ja.members.len(), 2, "the leader gets every member");
    assert!(jb.members.is_empty(), "followers get no member list");
    assert_eq!(ja.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(jb.protocol_name.as_deref(), Some("range"));

    // The follower's SyncGroup waits for the leader's assignment: no answer while the leader has
    // not synced (a deliberate wait, asserting that nothing arrives).
    let b_sync = bc.send(&sync_req("g2", 2, &b_id, &[], 5), 5).await;
    let mut peek = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(300), bc.stream.peek(&mut peek))
            .await
            .is_err(),
        "the follower's SyncGroup was answered before the leader sent the assignment"
    );
    let sa = a
        .call(
            &sync_req("g2", 2, &a_id, &[(&a_id, b"p0"), (&b_id, b"p1")], 5),
            5,
        )
        .await;
    let sb = bc.receive::<SyncGroupRequest>(b_sync, 5).await;
    assert_eq!((sa.error_code, sb.error_code), (0, 0));
    assert_eq!(&sa.assignment[..], b"p0");
    assert_eq!(&sb.assignment[..], b"p1");
    assert_eq!(
        a.call(&heartbeat_req("g2", 2, &a_id), 4).await.error_code,
        0
    );
    assert_eq!(
        bc.call(&heartbeat_req("g2", 2, &b_id), 4).await.error_code,
        0
    );
    // A commit from the previous generation is refused.
    create(&mut a, "t", 1).await;
    let stale = a
        .call(&commit_req("g2", 1, &a_id, "t", &[(0, 5)], 8), 8)
        .await;
    assert_eq!(stale.topics[0].partitions[0].error_code, ILLEGAL_GENERATION);

    // A third member: both existing members are told to rejoin.
    let first = cc
        .call(&join_req("g2", "", None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let c_id = first.member_id.to_string();
    let c_join = cc
        .send(&join_req("g2", &c_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    wait_state(&mut a, "g2", "PreparingRebalance").await;
    assert_eq!(
        a.call(&heartbeat_req("g2", 2, &a_id), 4).await.error_code,
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        bc.call(&heartbeat_req("g2", 2, &b_id), 4).await.error_code,
        REBALANCE_IN_PROGRESS
    );
    // Sync in the preparing phase is refused too; commits still pass for the current generation.
    assert_eq!(
        a.call(&sync_req("g2", 2, &a_id, &[], 5), 5)
            .await
            .error_code,
        REBALANCE_IN_PROGRESS
    );
    let ok = a
        .call(&commit_req("g2", 2, &a_id, "t", &[(0, 5)], 8), 8)
        .await;
    assert_eq!(ok.topics[0].partitions[0].error_code, 0);
    let d = describe(&mut a, "g2").await;
    assert_eq!(d.group_state.as_str(), "PreparingRebalance");
    assert_eq!(d.members.len(), 3);
    let a_join = a
        .send(&join_req("g2", &a_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let jb = bc
        .call(&join_req("g2", &b_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let ja = a.receive::<JoinGroupRequest>(a_join, 7).await;
    let jc = cc.receive::<JoinGroupRequest>(c_join, 7).await;
    for j in [&ja, &jb, &jc] {
        assert_eq!(j.error_code, 0);
        assert_eq!(j.generation_id, 3);
    }
    assert_eq!(ja.members.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_member_expires_and_the_group_rebalances_without_it() {
    let b = harness::start(FAST).await;
    let mut a = b.client().await;
    let mut bc = b.client().await;
    // A (short session) forms generation 1; B (long session) joins; A rejoins: generation 2.
    let fa = a
        .call(&join_req("g3", "", None, 400, &range(&["t"]), 7), 7)
        .await;
    let a_id = fa.member_id.to_string();
    let ja = a
        .call(&join_req("g3", &a_id, None, 400, &range(&["t"]), 7), 7)
        .await;
    assert_eq!(ja.generation_id, 1);
    let fb = bc
        .call(&join_req("g3", "", None, 10_000, &range(&["t"]), 7), 7)
        .await;
    let b_id = fb.member_id.to_string();
    let b_join = bc
        .send(&join_req("g3", &b_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    wait_state(&mut a, "g3", "PreparingRebalance").await;
    let ja = a
        .call(&join_req("g3", &a_id, None, 400, &range(&["t"]), 7), 7)
        .await;
    let jb = bc.receive::<JoinGroupRequest>(b_join, 7).await;
    assert_eq!((ja.error_code, jb.error_code), (0, 0));
    let gen = ja.generation_id;
    assert_eq!(gen, 2);
    assert_eq!(jb.generation_id, 2);
    let leader = ja.leader.to_string();
    let sync_leader = if leader == a_id { &mut a } else { &mut bc };
    sync_leader
        .call(
            &sync_req("g3", gen, &leader, &[(&a_id, b"a"), (&b_id, b"b")], 5),
            5,
        )
        .await;
    let started = Instant::now();
    let mut rebalanced = false;
    while started.elapsed() < Duration::from_secs(5) {
        let hb = bc
            .call(&heartbeat_req("g3", gen, &b_id), 4)
            .await
            .error_code;
        if hb == REBALANCE_IN_PROGRESS {
            rebalanced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rebalanced, "A's session expiry caused a rebalance");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let jb = bc
        .call(&join_req("g3", &b_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    assert_eq!(jb.error_code, 0);
    assert_eq!(jb.generation_id, gen + 1);
    assert_eq!(jb.leader.as_str(), b_id);
    assert_eq!(jb.members.len(), 1, "A was removed");
    assert_eq!(
        a.call(&heartbeat_req("g3", gen, &a_id), 4).await.error_code,
        UNKNOWN_MEMBER_ID
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_fetches_and_standalone_commits_survive_a_restart() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "t", 3).await;
    let j = join(&mut c, "g4", &["t"], 10_000).await;
    let id = j.member_id.to_string();
    c.call(&sync_req("g4", 1, &id, &[(&id, b"x")], 5), 5).await;
    let r = c
        .call(&commit_req("g4", 1, &id, "t", &[(0, 10), (1, 20)], 8), 8)
        .await;
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    // Partition 2 was never committed: -1, no error.
    assert_eq!(
        fetch_offsets(&mut c, "g4", "t", &[0, 1, 2], 7).await,
        vec![
            (10, 0, "meta".to_string(), 0),
            (20, 0, "meta".to_string(), 0),
            (-1, -1, String::new(), 0)
        ]
    );
    // Leader epoch only from v5.
    assert_eq!(fetch_offsets(&mut c, "g4", "t", &[0], 3).await[0].1, -1);
    assert_eq!(fetch_offsets(&mut c, "g4", "t", &[0], 8).await[0].0, 10);

    // Membership checks.
    let r = c
        .call(&commit_req("g4", 9, &id, "t", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, ILLEGAL_GENERATION);
    let r = c
        .call(&commit_req("g4", 1, "who", "t", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, UNKNOWN_MEMBER_ID);
    let r = c
        .call(&commit_req("g4", -1, "", "t", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, UNKNOWN_MEMBER_ID,
        "a standalone commit to an active group is refused"
    );
    let r = c
        .call(&commit_req("g4", 1, &id, "nope", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(fetch_offsets(&mut c, "g4", "t", &[0], 7).await[0].0, 10);

    // Standalone commits: a new group, at every version; a made-up generation is refused.
    for v in 2..=9 {
        let r = c
            .call(
                &commit_req("solo", -1, "", "t", &[(2, 100 + i64::from(v))], v),
                v,
            )
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
    }
    let r = c
        .call(&commit_req("ghost", 3, "m", "t", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, ILLEGAL_GENERATION);

    // topics = null: every committed offset of the group (v2+ and the v8 batch form).
    let all = c
        .call(
            &OffsetFetchRequest::default()
                .with_group_id(GroupId(s("g4")))
                .with_topics(None),
            6,
        )
        .await;
    assert_eq!(all.topics.len(), 1);
    assert_eq!(all.topics[0].partitions.len(), 2);
    let batch = c
        .call(
            &OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g4")))
                    .with_topics(None),
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("solo")))
                    .with_topics(None),
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("unknown")))
                    .with_topics(None),
            ]),
            9,
        )
        .await;
    assert_eq!(batch.groups.len(), 3);
    assert_eq!(batch.groups[0].topics[0].partitions.len(), 2);
    assert_eq!(
        batch.groups[1].topics[0].partitions[0].committed_offset,
        109
    );
    assert!(batch.groups[2].topics.is_empty());

    // A clean restart: offsets come back from __consumer_offsets, and the group comes back with
    // its member, Stable in its generation (Kafka's coordinator loads members too), so a member
    // that goes on heartbeating keeps its id and its generation's commits are accepted.
    drop(c);
    let b: TestBroker = b.restart(FAST).await;
    let mut c = b.client().await;
    assert_eq!(
        fetch_offsets(&mut c, "g4", "t", &[0, 1, 2], 7).await,
        vec![
            (10, 0, "meta".to_string(), 0),
            (20, 0, "meta".to_string(), 0),
            (-1, -1, String::new(), 0)
        ]
    );
    assert_eq!(fetch_offsets(&mut c, "solo", "t", &[2], 5).await[0].0, 109);
    let d = describe(&mut c, "g4").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.protocol_type.as_str(), "consumer");
    assert_eq!(d.protocol_data.as_str(), "range");
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id.as_str(), id);
    assert_eq!(d.members[0].member_assignment.as_ref(), b"x");
    assert_eq!(c.call(&heartbeat_req("g4", 1, &id), 4).await.error_code, 0);
    let r = c
        .call(&commit_req("g4", 1, &id, "t", &[(1, 21)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offsets(&mut c, "g4", "t", &[1], 7).await[0].0, 21);
    // Once the member leaves, a standalone commit to the now-empty group is accepted, and the
    // generation goes on from where it was.
    let leave = c
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g4")))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&id))
                ]),
            5,
        )
        .await;
    assert_eq!(leave.members[0].error_code, 0);
    assert_eq!(describe(&mut c, "g4").await.group_state.as_str(), "Empty");
    let r = c
        .call(&commit_req("g4", -1, "", "t", &[(2, 7)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let j = join(&mut c, "g4", &["t"], 10_000).await;
    assert!(
        j.generation_id > 1,
        "the generation continues after a restart: {}",
        j.generation_id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
    let b = harness::start(FAST).await;
    let mut a = b.client().await;
    let mut bc = b.client().await;
    // Static members skip MEMBER_ID_REQUIRED.
    let a_join = a
        .send(
            &join_req("g5", "", Some("inst-a"), 10_000, &range(&["t"]), 7),
            7,
        )
        .await;
    let ja = a.receive::<JoinGroupRequest>(a_join, 7).await;
    assert_eq!(ja.error_code, 0);
    let a_id = ja.member_id.to_string();
    assert!(a_id.starts_with("inst-a-"), "{a_id}");
    assert_eq!(ja.members[0].group_instance_id.as_deref(), Some("inst-a"));
    let fb = bc
        .call(&join_req("g5", "", None, 10_000, &range(&["t"]), 7), 7)
        .await;
    assert_eq!(fb.error_code, MEMBER_ID_REQUIRED);
    let b_id = fb.member_id.to_string();
    // B's join waits for the rebalance it caused; A rejoins under its id to complete it.
    let b_wait = bc
        .send(&join_req("g5", &b_id, None, 10_000, &range(&["t"]), 7), 7)
        .await;
    wait_state(&mut a, "g5", "PreparingRebalance").await;
    let ja = a
        .call(
            &join_req("g5", &a_id, Some("inst-a"), 10_000, &range(&["t"]), 7),
            7,
        )
        .await;
    assert_eq!(ja.error_code, 0);
    let gen = ja.generation_id;
    let _ = bc.receive::<JoinGroupRequest>(b_wait, 7).await;
    let b_sync = bc.send(&sync_req("g5", gen, &b_id, &[], 5), 5).await;
    let sa = a
        .call(
            &sync_req("g5", gen, &a_id, &[(&a_id, b"A"), (&b_id, b"B")], 5),
            5,
        )
        .await;
    assert_eq!(&sa.assignment[..], b"A");
    assert_eq!(
        &bc.receive::<SyncGroupRequest>(b_sync, 5).await.assignment[..],
        b"B"
    );

    // A restarts: same instance id, no member id. Immediate answer, same generation.
    let mut a2 = b.client().await;
    let again = a2
        .call(
            &join_req("g5", "", Some("inst-a"), 10_000, &range(&["t"]), 7),
            7,
        )
        .await;
    assert_eq!(again.error_code, 0);
    assert_eq!(again.generation_id, gen, "no rebalance");
    let new_id = again.member_id.to_string();
    assert_ne!(new_id, a_id);
    assert_eq!(
        again.leader.as_str(),
        new_id,
        "leadership moves to the new id"
    );
    let s2 = a2.call(&sync_req("g5", gen, &new_id, &[], 5), 5).await;
    assert_eq!(s2.error_code, 0);
    assert_eq!(&s2.assignment[..], b"A", "its assignment comes back");
    assert_eq!(
        bc.call(&heartbeat_req("g5", gen, &b_id), 4)
            .await
            .error_code,
        0
    );
    // The old incarnation is fenced.
    let hb = HeartbeatRequest::default()
        .with_group_id(GroupId(s("g5")))
        .with_generation_id(gen)
        .with_member_id(s(&a_id))
        .with_group_instance_id(Some(s("inst-a")));
    assert_eq!(a.call(&hb, 4).await.error_code, FENCED_INSTANCE_ID);
    let d = describe(&mut bc, "g5").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.members.len(), 2);
    assert!(d.members.iter().any(
        |m| m.group_instance_id.as_deref() == Some("inst-a") && m.member_id.as_str() == new_id
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_apis_list_describe_delete_groups_and_offsets() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "t", 1).await;
    create(&mut c, "u", 1).await;
    let j = join(&mut c, "busy", &["t"], 10_000).await;
    let id = j.member_id.to_string();
    c.call(&sync_req("busy", 1, &id, &[(&id, b"x")], 5), 5)
        .await;
    let r = c
        .call(&commit_req("busy", 1, &id, "t", &[(0, 3)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r = c
        .call(&commit_req("busy", 1, &id, "u", &[(0, 4)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r = c
        .call(&commit_req("idle", -1, "", "t", &[(0, 1)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);

    let all = c.call(&ListGroupsRequest::default(), 5).await;
    let mut listed: Vec<(String, String, String)> = all
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.0.to_string(),
                g.group_state.to_string(),
                g.group_type.to_string(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("busy".into(), "Stable".into(), "classic".into()),
            ("idle".into(), "Empty".into(), "classic".into())
        ]
    );
    let stable = c
        .call(
            &ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
            4,
        )
        .await;
    assert_eq!(stable.groups.len(), 1);
    assert_eq!(stable.groups[0].group_id.0.as_str(), "busy");
    assert_eq!(stable.groups[0].protocol_type.as_str(), "consumer");

    // OffsetDelete: the subscribed topic is protected while the group is active.
    let od = |topic: &str| {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(s("busy")))
            .with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(s(topic)))
                    .with_partitions(vec![
                        offset_delete_request::OffsetDeleteRequestPartition::default(),
                    ]),
            ])
    };
    let r = c.call(&od("t"), 0).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        GROUP_SUBSCRIBED_TO_TOPIC
    );
    let r = c.call(&od("u"), 0).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offsets(&mut c, "busy", "u", &[0], 7).await[0].0, -1);
    assert_eq!(fetch_offsets(&mut c, "busy", "t", &[0], 7).await[0].0, 3);
    let r = c
        .call(
            &OffsetDeleteRequest::default().with_group_id(GroupId(s("absent"))),
            0,
        )
        .await;
    assert_eq!(r.error_code, GROUP_ID_NOT_FOUND);

    // DeleteGroups: refused while members remain; fine once the last one leaves.
    let del = |g: &str| DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(g))]);
    let r = c.call(&del("busy"), 2).await;
    assert_eq!(r.results[0].error_code, NON_EMPTY_GROUP);
    let leave = c
        .call(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("busy")))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&id))
                ]),
            5,
        )
        .await;
    assert_eq!(leave.error_code, 0);
    assert_eq!(leave.members[0].error_code, 0);
    let d = describe(&mut c, "busy").await;
    assert_eq!(d.group_state.as_str(), "Empty");
    assert!(d.members.is_empty());
    // Once empty, the group subscribes to nothing: its offsets of "t" can be deleted
    // (`kafka-consumer-groups --delete-offsets` on a stopped group).
    let r = c.call(&od("t"), 0).await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(fetch_offsets(&mut c, "busy", "t", &[0], 7).await[0].0, -1);
    let r = c.call(&del("busy"), 2).await;
    assert_eq!(r.results[0].error_code, 0);
    let r = c.call(&del("busy"), 0).await;
    assert_eq!(r.results[0].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(describe(&mut c, "busy").await.group_state.as_str(), "Dead");

    // Deletion is durable: after a restart only `idle` remains.
    drop(c);
    let b = b.restart(FAST).await;
    let mut c = b.client().await;
    let all = c.call(&ListGroupsRequest::default(), 3).await;
    let names: Vec<&str> = all.groups.iter().map(|g| g.group_id.0.as_str()).collect();
    assert_eq!(names, vec!["idle"]);
    assert_eq!(fetch_offsets(&mut c, "busy", "t", &[0], 7).await[0].0, -1);
    assert_eq!(fetch_offsets(&mut c, "idle", "t", &[0], 7).await[0].0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_version_of_each_group_api_answers() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "t", 1).await;
    for v in 0..=6 {
        let req = if v >= 4 {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![s("vg")])
        } else {
            FindCoordinatorRequest::default().with_key(s("vg"))
        };
        let r = c.call(&req, v).await;
        let node = if v >= 4 {
            r.coordinators[0].node_id.0
        } else {
            r.node_id.0
        };
        assert_eq!(node, 1, "FindCoordinator v{v}");
    }
    // Every JoinGroup/SyncGroup/Heartbeat/LeaveGroup version, each in its own group.
    for v in 0..=9i16 {
        let group = format!("vg{v}");
        let mut j = c
            .call(&join_req(&group, "", None, 10_000, &range(&["t"]), v), v)
            .await;
        if v >= 4 {
            assert_eq!(j.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{v}");
            let id = j.member_id.to_string();
            j = c
                .call(&join_req(&group, &id, None, 10_000, &range(&["t"]), v), v)
                .await;
        }
        assert_eq!(j.error_code, 0, "JoinGroup v{v}");
        assert_eq!(j.generation_id, 1);
        assert_eq!(j.protocol_name.as_deref(), Some("range"), "JoinGroup v{v}");
        let id = j.member_id.to_string();
        let sv = v.min(5);
        let sy = c
            .call(&sync_req(&group, 1, &id, &[(&id, b"asg")], sv), sv)
            .await;
        assert_eq!(sy.error_code, 0, "SyncGroup v{sv}");
        assert_eq!(&sy.assignment[..], b"asg");
        let hv = v.min(4);
        assert_eq!(
            c.call(&heartbeat_req(&group, 1, &id), hv).await.error_code,
            0,
            "Heartbeat v{hv}"
        );
        let lv = v.min(5);
        let leave = if lv >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s(&id))
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s(&id))
        };
        let l = c.call(&leave, lv).await;
        assert_eq!(l.error_code, 0, "LeaveGroup v{lv}");
        assert_eq!(describe(&mut c, &group).await.group_state.as_str(), "Empty");
    }
    for v in 2..=9 {
        let r = c
            .call(&commit_req("vc", -1, "", "t", &[(0, i64::from(v))], v), v)
            .await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetCommit v{v}");
    }
    for v in 1..=9 {
        let got = fetch_offsets(&mut c, "vc", "t", &[0], v).await;
        assert_eq!(got[0].0, 9, "OffsetFetch v{v}");
        assert_eq!(got[0].1, if v >= 5 { 0 } else { -1 }, "OffsetFetch v{v}");
    }
    for v in 0..=5 {
        let r = c
            .call(
                &DescribeGroupsRequest::default()
                    .with_groups(vec![GroupId(s("vc")), GroupId(s("never"))]),
                v,
            )
            .await;
        assert_eq!(
            r.groups[0].group_state.as_str(),
            "Empty",
            "DescribeGroups v{v}"
        );
        assert_eq!(
            r.groups[1].group_state.as_str(),
            "Dead",
            "DescribeGroups v{v}"
        );
        let r = c.call(&ListGroupsRequest::default(), v).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.groups.len(), 11, "ListGroups v{v}");
    }
    for v in 0..=2 {
        let g = format!("vg{v}");
        let r = c
            .call(
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&g))]),
                v,
            )
            .await;
        assert_eq!(r.results[0].error_code, 0, "DeleteGroups v{v}");
    }
    let r = c
        .call(
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("vc")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default(),
                        ]),
                ]),
            0,
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0, "OffsetDelete v0");
}

/// The `gregor` binary, killed with SIGKILL while commits are in flight: every acknowledged
/// commit is there after the restart (the answer waited for fdatasync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commit_survives_sigkill() {
    use crate::process::{connect_when_ready, free_port, kill9, spawn};
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let spawn = || spawn(dir.path(), port);
    let connect = || connect_when_ready(port);
    let mut child = spawn();
    let mut c = connect().await;
    create(&mut c, "t", 1).await;
    let fc = c
        .call(&FindCoordinatorRequest::default().with_key(s("crash")), 3)
        .await;
    assert_eq!(fc.error_code, 0);
    // Pipelined standalone commits of increasing offsets; kill -9 with some in flight.
    let mut acked = -1i64;
    let mut next = 0i64;
    let mut in_flight = std::collections::VecDeque::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(800) {
        while in_flight.len() < 8 {
            let corr = c
                .send(&commit_req("crash", -1, "", "t", &[(0, next)], 8), 8)
                .await;
            in_flight.push_back((corr, next));
            next += 1;
        }
        let (corr, offset) = in_flight.pop_front().unwrap();
        let r = c.receive::<OffsetCommitRequest>(corr, 8).await;
        assert_eq!(r.topics[0].partitions[0].error_code, 0);
        acked = offset;
    }
    kill9(&mut child);
    assert!(acked > 0, "some commits were acknowledged");
    let mut child = spawn();
    let mut c = connect().await;
    let got = fetch_offsets(&mut c, "crash", "t", &[0], 8).await[0].0;
    assert!(
        got >= acked && got < next,
        "committed {got}, last acknowledged {acked}, last sent {}",
        next - 1
    );
    eprintln!(
        "{} commits acknowledged before kill -9; {got} recovered",
        acked + 1
    );
    kill9(&mut child);
}

/// The rebalance timeout bounds both phases: a member that does not rejoin in time is dropped
/// from the new generation, and one that never sends SyncGroup is dropped and the rest rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_timeout_drops_members_that_do_not_rejoin_or_sync() {
    let b = harness::start(FAST).await;
    let mut a = b.client().await;
    let mut bc = b.client().await;
    let mut cc = b.client().await;
    let quick = |group: &str, member: &str| {
        join_req(group, member, None, 10_000, &range(&["t"]), 7).with_rebalance_timeout_ms(500)
    };
    let a_id = a.call(&quick("g6", ""), 7).await.member_id.to_string();
    assert_eq!(a.call(&quick("g6", &a_id), 7).await.generation_id, 1);
    let b_id = bc.call(&quick("g6", ""), 7).await.member_id.to_string();
    let b_join = bc.send(&quick("g6", &b_id), 7).await;
    wait_state(&mut a, "g6", "PreparingRebalance").await;
    let ja = a.call(&quick("g6", &a_id), 7).await;
    let jb = bc.receive::<JoinGroupRequest>(b_join, 7).await;
    assert_eq!((ja.generation_id, jb.generation_id), (2, 2));
    a.call(
        &sync_req("g6", 2, &a_id, &[(&a_id, b"a"), (&b_id, b"b")], 5),
        5,
    )
    .await;

    // C joins; A rejoins; B stays silent (its session is long, so only the deadline removes it).
    let c_id = cc.call(&quick("g6", ""), 7).await.member_id.to_string();
    let c_join = cc.send(&quick("g6", &c_id), 7).await;
    wait_state(&mut a, "g6", "PreparingRebalance").await;
    let started = Instant::now();
    let ja = a.call(&quick("g6", &a_id), 7).await;
    let jc = cc.receive::<JoinGroupRequest>(c_join, 7).await;
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for B"
    );
    assert_eq!((ja.error_code, jc.error_code), (0, 0));
    assert_eq!(ja.generation_id, 3);
    let mut members: Vec<String> = ja.members.iter().map(|m| m.member_id.to_string()).collect();
    members.sort();
    let mut want = vec![a_id.clone(), c_id.clone()];
    want.sort();
    assert_eq!(members, want, "B did not rejoin in time and was dropped");
    assert_eq!(
        bc.call(&heartbeat_req("g6", 2, &b_id), 4).await.error_code,
        UNKNOWN_MEMBER_ID
    );

    // C syncs; the leader (A) never does: after the rebalance timeout A is dropped and C is
    // told to rejoin, which it then does alone.
    let sc = cc.call(&sync_req("g6", 3, &c_id, &[], 5), 5).await;
    assert_eq!(sc.error_code, REBALANCE_IN_PROGRESS);
    let jc = cc.call(&quick("g6", &c_id), 7).await;
    assert_eq!(jc.error_code, 0);
    assert_eq!(jc.generation_id, 4);
    assert_eq!(jc.leader.as_str(), c_id);
    assert_eq!(jc.members.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_topic_is_internal_and_cannot_be_deleted() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "t", 1).await;
    // A standalone commit creates __consumer_offsets.
    let r = c
        .call(&commit_req("admin", -1, "", "t", &[(0, 5)], 8), 8)
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let all = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let internal: Vec<(String, bool)> = all
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                t.is_internal,
            )
        })
        .collect();
    assert!(
        internal.contains(&("__consumer_offsets".to_string(), true)),
        "{internal:?}"
    );
    assert!(internal.contains(&("t".to_string(), false)), "{internal:?}");
    let del =
        DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("__consumer_offsets"))]);
    let resp = c.call(&del, 5).await;
    assert_eq!(resp.responses[0].error_code, 17, "refused");
    let fetched = fetch_offsets(&mut c, "admin", "t", &[0], 8).await;
    assert_eq!(fetched[0].0, 5, "offsets kept: {fetched:?}");
}

/// Session deadlines take effect at the deadline, not at the coordinator's next sweep: a tool
/// that deletes a group right after its only member's session has ended finds it Empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_is_seen_at_its_deadline() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    for round in 0..5 {
        let group = format!("deadline-{round}");
        let j = join(&mut c, &group, &["t"], 300).await;
        assert_eq!(j.error_code, 0);
        let id = j.member_id.to_string();
        // The broker sees the sync between these two instants (a loaded machine may take a
        // while to carry the answer back).
        let sync_sent_at = Instant::now();
        let synced = c
            .call(
                &sync_req(&group, j.generation_id, &id, &[(&id, b"x")], 5),
                5,
            )
            .await;
        assert_eq!(synced.error_code, 0);
        // The member's last contact was the sync; its 300 ms session ends 300 ms after it. Not
        // before (DescribeGroups is no contact)...
        let synced_at = Instant::now();
        let d = describe(&mut c, &group).await;
        assert_eq!(d.group_state.as_str(), "Stable", "round {round}");
        assert_eq!(d.members.len(), 1, "round {round}");
        // ...and seen soon after, not at some coarser sweep.
        loop {
            let d = describe(&mut c, &group).await;
            if d.group_state.as_str() == "Empty" {
                assert!(d.members.is_empty(), "round {round}");
                break;
            }
            assert!(
                synced_at.elapsed() < Duration::from_millis(600),
                "round {round}: the 300 ms session still held after {:?}",
                synced_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            sync_sent_at.elapsed() >= Duration::from_millis(300),
            "round {round}: expired {:?} after the sync was sent, before its 300 ms session",
            sync_sent_at.elapsed()
        );
        let del = c
            .call(
                &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group))]),
                2,
            )
            .await;
        assert_eq!(del.results[0].error_code, 0, "round {round}");
    }
}
