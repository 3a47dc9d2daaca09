//! KIP-848 consumer groups over the raw protocol: ConsumerGroupHeartbeat joins, epochs and
//! revoke-before-assign reconciliation, leaves (dynamic and static), the error codes Kafka
//! answers (FENCED_MEMBER_EPOCH, UNKNOWN_MEMBER_ID, UNSUPPORTED_ASSIGNOR, UNRELEASED_INSTANCE_ID,
//! INVALID_REGULAR_EXPRESSION, STALE_MEMBER_EPOCH), regex subscriptions, the range assignor,
//! ConsumerGroupDescribe, offsets by member epoch, and the boundaries with classic groups.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as OwnedTp;
use kafka_protocol::messages::*;
use uuid::Uuid;

use crate::groups::{commit_req, fetch_offsets, join_req, subscription};
use crate::harness::create;
use crate::harness::{self, s, Client};

const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNRELEASED_INSTANCE_ID: i16 = 111;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

const FAST: &[(&str, &str)] = &[
    ("offsets.topic.num.partitions", "4"),
    ("group.consumer.heartbeat.interval.ms", "1000"),
];

type Owned = BTreeMap<Uuid, BTreeSet<i32>>;

fn owned_tps(o: &Owned) -> Vec<OwnedTp> {
    o.iter()
        .map(|(id, ps)| {
            OwnedTp::default()
                .with_topic_id(*id)
                .with_partitions(ps.iter().copied().collect())
        })
        .collect()
}

fn to_owned(a: &consumer_group_heartbeat_response::Assignment) -> Owned {
    a.topic_partitions
        .iter()
        .filter(|t| !t.partitions.is_empty())
        .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
        .collect()
}

fn count(o: &Owned) -> usize {
    o.values().map(|p| p.len()).sum()
}

fn join(group: &str, member: &str, topics: &[&str]) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(topics.iter().map(|t| TopicName(s(t))).collect()))
        .with_topic_partitions(Some(Vec::new()))
}

fn beat(group: &str, member: &str, epoch: i32, owned: &Owned) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_member_epoch(epoch)
        .with_rebalance_timeout_ms(-1)
        .with_topic_partitions(Some(owned_tps(owned)))
}

async fn topic_id(c: &mut Client, name: &str) -> Uuid {
    let r = c
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(s(name))))])),
            12,
        )
        .await;
    r.topics[0].topic_id
}

async fn describe(c: &mut Client, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let r = c
        .call(
            &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
            1,
        )
        .await;
    r.groups.into_iter().next().expect("one group")
}

#[tokio::test]
async fn two_members_reconcile_revoke_before_assign() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "k1", 6).await;
    let tid = topic_id(&mut c, "k1").await;
    // v0: the coordinator names the member.
    let a = c.call(&join("g1", "", &["k1"]), 0).await;
    assert_eq!(a.error_code, 0, "{:?}", a.error_message);
    let a_id = a.member_id.clone().expect("member id").to_string();
    assert!(!a_id.is_empty());
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.heartbeat_interval_ms, 1000);
    let a_owned = to_owned(a.assignment.as_ref().expect("assignment"));
    assert_eq!(a_owned, BTreeMap::from([(tid, (0..6).collect())]));

    // v1: the member brings its own id. It gets epoch 2 and nothing yet: a owns everything.
    let bj = c.call(&join("g1", "member-b", &["k1"]), 1).await;
    assert_eq!(bj.error_code, 0, "{:?}", bj.error_message);
    assert_eq!(bj.member_epoch, 2);
    assert_eq!(
        count(&to_owned(bj.assignment.as_ref().expect("assignment"))),
        0
    );

    // a is told to shrink to its target, keeping epoch 1 until it has revoked.
    let a2 = c.call(&beat("g1", &a_id, 1, &a_owned), 1).await;
    assert_eq!(a2.error_code, 0);
    assert_eq!(a2.member_epoch, 1);
    let a_kept = to_owned(a2.assignment.as_ref().expect("shrunk assignment"));
    assert_eq!(count(&a_kept), 3);
    // b asks again: the other three are still a's.
    let b2 = c.call(&beat("g1", "member-b", 2, &Owned::new()), 1).await;
    assert_eq!(b2.error_code, 0);
    assert!(
        b2.assignment.is_none(),
        "nothing released yet: {:?}",
        b2.assignment
    );
    let d = describe(&mut c, "g1").await;
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Reconciling");
    assert_eq!(d.group_epoch, 2);
    assert_eq!(d.assignment_epoch, 2);
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    // a reports it released them: epoch 2.
    let a3 = c.call(&beat("g1", &a_id, 1, &a_kept), 1).await;
    assert_eq!(a3.error_code, 0);
    assert_eq!(a3.member_epoch, 2);
    let b3 = c.call(&beat("g1", "member-b", 2, &Owned::new()), 1).await;
    let b_owned = to_owned(b3.assignment.as_ref().expect("b's partitions"));
    assert_eq!(count(&b_owned), 3);
    let all: BTreeSet<i32> = a_kept[&tid].union(&b_owned[&tid]).copied().collect();
    assert_eq!(all, (0..6).collect());
    let d = describe(&mut c, "g1").await;
    assert_eq!(d.group_state.as_str(), "Stable");
    for m in &d.members {
        assert_eq!(m.member_epoch, 2);
        assert_eq!(m.member_type, 1);
        assert_eq!(m.assignment, m.target_assignment);
        assert_eq!(m.assignment.topic_partitions[0].topic_name.0.as_str(), "k1");
    }

    // A heartbeat at an older epoch with what it owns is fine; a future epoch is fenced.
    let ok = c.call(&beat("g1", &a_id, 1, &a_kept), 1).await;
    assert_eq!(ok.error_code, 0);
    let fenced = c.call(&beat("g1", &a_id, 7, &a_kept), 1).await;
    assert_eq!(fenced.error_code, FENCED_MEMBER_EPOCH);
    let unknown = c.call(&beat("g1", "nobody", 2, &Owned::new()), 1).await;
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);

    // Offsets by member epoch: the right epoch commits, an old one is stale.
    let ok = c
        .call(&commit_req("g1", 2, "member-b", "k1", &[(0, 5)], 9), 9)
        .await;
    assert_eq!(ok.topics[0].partitions[0].error_code, 0);
    let stale = c
        .call(&commit_req("g1", 1, "member-b", "k1", &[(0, 6)], 9), 9)
        .await;
    assert_eq!(stale.topics[0].partitions[0].error_code, STALE_MEMBER_EPOCH);
    let stranger = c
        .call(&commit_req("g1", 2, "x", "k1", &[(0, 6)], 9), 9)
        .await;
    assert_eq!(
        stranger.topics[0].partitions[0].error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(fetch_offsets(&mut c, "g1", "k1", &[0], 9).await[0].0, 5);
    let fetch = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(s("g1")))
            .with_member_id(Some(s("member-b")))
            .with_member_epoch(1)
            .with_topics(None),
    ]);
    assert_eq!(
        c.call(&fetch, 9).await.groups[0].error_code,
        STALE_MEMBER_EPOCH
    );

    // A classic member cannot join; DescribeGroups-style classic calls do not see members.
    let j = c
        .call(
            &join_req(
                "g1",
                "",
                None,
                10_000,
                &[("range", subscription(&["k1"]))],
                5,
            ),
            5,
        )
        .await;
    assert_eq!(j.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // a leaves (epoch -1): b gets everything at the next epoch.
    let left = c.call(&beat("g1", &a_id, -1, &a_kept), 1).await;
    assert_eq!(left.error_code, 0);
    assert_eq!(left.member_epoch, -1);
    let b4 = c.call(&beat("g1", "member-b", 2, &b_owned), 1).await;
    assert_eq!(b4.error_code, 0);
    assert_eq!(b4.member_epoch, 3);
    assert_eq!(
        count(&to_owned(b4.assignment.as_ref().expect("all six"))),
        6
    );

    // DescribeGroups (v0-5) reports a consumer group like an unknown one: Dead, no members.
    let dg = c
        .call(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g1"))]),
            5,
        )
        .await;
    assert_eq!(dg.groups[0].error_code, 0);
    assert_eq!(dg.groups[0].group_state.as_str(), "Dead");
    assert!(dg.groups[0].members.is_empty());

    // ListGroups shows a consumer group.
    let l = c.call(&ListGroupsRequest::default(), 5).await;
    let g = l
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "g1")
        .expect("listed");
    assert_eq!(g.group_type.as_str(), "consumer");
    assert_eq!(g.protocol_type.as_str(), "consumer");
}

#[tokio::test]
async fn errors_as_kafka_answers_them() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "k2", 2).await;
    let bad = join("g2", "m", &["k2"]).with_server_assignor(Some(s("sticky")));
    assert_eq!(c.call(&bad, 1).await.error_code, UNSUPPORTED_ASSIGNOR);
    let no_id = join("g2", "", &["k2"]);
    assert_eq!(c.call(&no_id, 1).await.error_code, INVALID_REQUEST);
    let no_sub = join("g2", "m", &["k2"]).with_subscribed_topic_names(None);
    assert_eq!(c.call(&no_sub, 1).await.error_code, INVALID_REQUEST);
    let bad_re = join("g2", "m", &[])
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(s("k2(")));
    assert_eq!(
        c.call(&bad_re, 1).await.error_code,
        INVALID_REGULAR_EXPRESSION
    );
    assert_eq!(
        c.call(&beat("nogroup", "m", 3, &Owned::new()), 1)
            .await
            .error_code,
        UNKNOWN_MEMBER_ID
    );

    // A classic group with members: ConsumerGroupHeartbeat and ConsumerGroupDescribe say
    // GROUP_ID_NOT_FOUND.
    let classic_join = join_req(
        "classic",
        "",
        None,
        10_000,
        &[("range", subscription(&["k2"]))],
        3,
    );
    let j = c.call(&classic_join, 3).await;
    assert_eq!(j.error_code, 0);
    assert_eq!(
        c.call(&join("classic", "m", &["k2"]), 1).await.error_code,
        GROUP_ID_NOT_FOUND
    );
    let d = describe(&mut c, "classic").await;
    assert_eq!(d.error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(
        describe(&mut c, "missing").await.error_code,
        GROUP_ID_NOT_FOUND
    );

    // Static membership: a second member with the same instance id is refused until the first
    // leaves with epoch -2; then it takes over the partitions and the epoch without a rebalance.
    let s1 = c
        .call(
            &join("g3", "s1", &["k2"]).with_instance_id(Some(s("inst"))),
            1,
        )
        .await;
    assert_eq!(s1.error_code, 0);
    let s1_owned = to_owned(s1.assignment.as_ref().expect("assignment"));
    assert_eq!(count(&s1_owned), 2);
    let dup = c
        .call(
            &join("g3", "s2", &["k2"]).with_instance_id(Some(s("inst"))),
            1,
        )
        .await;
    assert_eq!(dup.error_code, UNRELEASED_INSTANCE_ID);
    let leave = beat("g3", "s1", -2, &s1_owned).with_instance_id(Some(s("inst")));
    let l = c.call(&leave, 1).await;
    assert_eq!(l.error_code, 0);
    assert_eq!(l.member_epoch, -2);
    let s2 = c
        .call(
            &join("g3", "s2", &["k2"]).with_instance_id(Some(s("inst"))),
            1,
        )
        .await;
    assert_eq!(s2.error_code, 0, "{:?}", s2.error_message);
    assert_eq!(
        s2.member_epoch, s1.member_epoch,
        "no new epoch for a static rejoin"
    );
    assert_eq!(
        to_owned(s2.assignment.as_ref().expect("same partitions")),
        s1_owned
    );
    let d = describe(&mut c, "g3").await;
    assert_eq!(d.members.len(), 1);
    assert_eq!(d.members[0].member_id.as_str(), "s2");
}

#[tokio::test]
async fn regex_subscription_and_range_assignor() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "orders-a", 2).await;
    create(&mut c, "orders-b", 3).await;
    create(&mut c, "payments", 4).await;
    let a_id = topic_id(&mut c, "orders-a").await;
    let b_id = topic_id(&mut c, "orders-b").await;
    let req = join("g4", "r1", &[])
        .with_subscribed_topic_names(None)
        .with_subscribed_topic_regex(Some(s("orders-.*")))
        .with_server_assignor(Some(s("range")));
    let r1 = c.call(&req, 1).await;
    assert_eq!(r1.error_code, 0, "{:?}", r1.error_message);
    let got = to_owned(r1.assignment.as_ref().expect("assignment"));
    assert_eq!(
        got,
        BTreeMap::from([(a_id, (0..2).collect()), (b_id, (0..3).collect())])
    );
    // A new matching topic joins the subscription at the next heartbeat.
    create(&mut c, "orders-c", 1).await;
    let c_id = topic_id(&mut c, "orders-c").await;
    let r2 = c.call(&beat("g4", "r1", r1.member_epoch, &got), 1).await;
    assert_eq!(r2.error_code, 0);
    assert_eq!(r2.member_epoch, r1.member_epoch + 1);
    let got2 = to_owned(r2.assignment.as_ref().expect("grown assignment"));
    assert_eq!(got2.get(&c_id), Some(&BTreeSet::from([0])));
    // Range with two members: per topic, contiguous ranges by member id.
    let r3 = c
        .call(
            &join("g4", "r0", &["orders-b"]).with_server_assignor(Some(s("range"))),
            1,
        )
        .await;
    assert_eq!(r3.error_code, 0);
    let d = describe(&mut c, "g4").await;
    assert_eq!(d.assignor_name.as_str(), "range");
    let target = |id: &str| {
        d.members
            .iter()
            .find(|m| m.member_id.as_str() == id)
            .map(|m| {
                m.target_assignment
                    .topic_partitions
                    .iter()
                    .map(|t| (t.topic_name.0.to_string(), t.partitions.clone()))
                    .collect::<BTreeMap<_, _>>()
            })
            .expect("member")
    };
    assert_eq!(target("r0").get("orders-b"), Some(&vec![0, 1]));
    assert_eq!(target("r1").get("orders-b"), Some(&vec![2]));
    assert_eq!(target("r1").get("orders-a"), Some(&vec![0, 1]));
    assert!(!target("r1").contains_key("payments"));
}

#[tokio::test]
async fn offsets_survive_restart_and_group_rejoins() {
    let b = harness::start(FAST).await;
    let mut c = b.client().await;
    create(&mut c, "k5", 2).await;
    let j = c.call(&join("g5", "m", &["k5"]), 1).await;
    assert_eq!(j.error_code, 0);
    let r = c
        .call(
            &commit_req("g5", j.member_epoch, "m", "k5", &[(0, 11), (1, 22)], 9),
            9,
        )
        .await;
    assert!(r.topics[0].partitions.iter().all(|p| p.error_code == 0));
    drop(c);
    let b = b.restart(FAST).await;
    let mut c = b.client().await;
    let got: Vec<i64> = fetch_offsets(&mut c, "g5", "k5", &[0, 1], 9)
        .await
        .iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(got, vec![11, 22]);
    // The member is unknown after the restart; it rejoins with epoch 0 and gets everything.
    let again = c
        .call(&beat("g5", "m", j.member_epoch, &Owned::new()), 1)
        .await;
    assert_eq!(again.error_code, UNKNOWN_MEMBER_ID);
    // The group itself is remembered as an (empty) consumer group with its epoch.
    let d = describe(&mut c, "g5").await;
    assert_eq!(d.error_code, 0, "{:?}", d.error_message);
    assert_eq!(d.group_state.as_str(), "Empty");
    assert_eq!(d.group_epoch, j.member_epoch);
    assert!(d.members.is_empty());
    let j2 = c.call(&join("g5", "m", &["k5"]), 1).await;
    assert_eq!(j2.error_code, 0, "{:?}", j2.error_message);
    assert_eq!(
        count(&to_owned(j2.assignment.as_ref().expect("assignment"))),
        2
    );
    assert_eq!(j2.member_epoch, j.member_epoch + 1, "epochs keep growing");
}

/// Group configs (resource type GROUP, `kafka-configs --entity-type groups`): described with
/// their sources, validated against the broker's bounds, persisted, and honoured: the heartbeat
/// interval given to members and the session after which a silent member is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_configs_are_validated_persisted_and_honoured() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    const GROUP: i8 = 32;
    const INVALID_CONFIG: i16 = 40;
    const DYNAMIC_GROUP_CONFIG: i8 = 8;
    const DEFAULT_CONFIG: i8 = 5;
    let settings: &[(&str, &str)] = &[
        ("offsets.topic.num.partitions", "4"),
        ("group.consumer.heartbeat.interval.ms", "1000"),
        // Allow a short per-group session, so the test need not wait 45 s.
        ("group.consumer.min.session.timeout.ms", "500"),
        ("group.consumer.min.heartbeat.interval.ms", "100"),
    ];
    let b = harness::start(settings).await;
    let mut c = b.client().await;
    create(&mut c, "gc", 2).await;
    let describe_cfg = |group: &str| {
        DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(GROUP)
                .with_resource_name(s(group))
                .with_configuration_keys(None)])
            .with_include_synonyms(true)
    };
    let values = |r: &DescribeConfigsResponse| -> Vec<(String, String, i8)> {
        r.results[0]
            .configs
            .iter()
            .map(|e| {
                (
                    e.name.to_string(),
                    e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    e.config_source,
                )
            })
            .collect()
    };
    let alter = |group: &str, ops: &[(&str, i8, Option<&str>)], validate_only: bool| {
        crate::configs::alter_request(GROUP, group, ops, validate_only)
    };
    // Before anything is set (and before the group exists): the broker's values.
    let r = c.call(&describe_cfg("gc-group"), 4).await;
    assert_eq!(r.results[0].error_code, 0);
    assert_eq!(
        values(&r),
        vec![
            (
                "consumer.session.timeout.ms".into(),
                "45000".into(),
                DEFAULT_CONFIG
            ),
            ("consumer.heartbeat.interval.ms".into(), "1000".into(), 4),
        ]
    );
    // Out of bounds, unknown names, a heartbeat not below the session: INVALID_CONFIG.
    for ops in [
        vec![("consumer.session.timeout.ms", 0, Some("100"))],
        vec![("share.session.timeout.ms", 0, Some("45000"))],
        vec![("consumer.heartbeat.interval.ms", 0, Some("abc"))],
        vec![
            ("consumer.session.timeout.ms", 0, Some("1000")),
            ("consumer.heartbeat.interval.ms", 0, Some("1000")),
        ],
    ] {
        let r = c.call(&alter("gc-group", &ops, false), 1).await;
        assert_eq!(r.responses[0].error_code, INVALID_CONFIG, "{ops:?}");
    }
    // validate_only changes nothing.
    let r = c
        .call(
            &alter(
                "gc-group",
                &[("consumer.session.timeout.ms", 0, Some("2000"))],
                true,
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    assert_eq!(
        values(&c.call(&describe_cfg("gc-group"), 4).await)[0].1,
        "45000"
    );
    let r = c
        .call(
            &alter(
                "gc-group",
                &[
                    ("consumer.session.timeout.ms", 0, Some("1000")),
                    ("consumer.heartbeat.interval.ms", 0, Some("300")),
                ],
                false,
            ),
            1,
        )
        .await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    assert_eq!(
        values(&c.call(&describe_cfg("gc-group"), 4).await),
        vec![
            (
                "consumer.session.timeout.ms".into(),
                "1000".into(),
                DYNAMIC_GROUP_CONFIG
            ),
            (
                "consumer.heartbeat.interval.ms".into(),
                "300".into(),
                DYNAMIC_GROUP_CONFIG
            ),
        ]
    );

    // Honoured: members get the group's interval; a silent member goes after the group's 1 s
    // session, where the broker's session is 45 s.
    let a = c.call(&join("gc-group", "", &["gc"]), 0).await;
    assert_eq!(a.error_code, 0);
    assert_eq!(a.heartbeat_interval_ms, 300);
    let other = c.call(&join("gc-other", "", &["gc"]), 0).await;
    assert_eq!(
        other.heartbeat_interval_ms, 1000,
        "other groups keep the broker's"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if describe(&mut c, "gc-group").await.members.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the silent member outlived the group's 1 s session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(describe(&mut c, "gc-other").await.members.len(), 1);

    // Deleting a config returns it to the broker's value; the rest survives a restart.
    let r = c
        .call(
            &alter(
                "gc-group",
                &[("consumer.session.timeout.ms", 1, None)],
                false,
            ),
            1,
        )
        .await;
    assert_eq!(r.responses[0].error_code, 0);
    drop(c);
    let b = b.restart(settings).await;
    let mut c = b.client().await;
    assert_eq!(
        values(&c.call(&describe_cfg("gc-group"), 4).await),
        vec![
            (
                "consumer.session.timeout.ms".into(),
                "45000".into(),
                DEFAULT_CONFIG
            ),
            (
                "consumer.heartbeat.interval.ms".into(),
                "300".into(),
                DYNAMIC_GROUP_CONFIG
            ),
        ]
    );
}
