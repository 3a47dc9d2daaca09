//! Topic lifecycle: CreateTopics, Metadata (including auto-creation and v0 "all topics"),
//! DeleteTopics, DescribeCluster, and topic ids that survive a restart.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;

use crate::harness::{self, create, s};

fn metadata_for(names: &[&str], auto_create: bool) -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(TopicName(s(n)))))
                .collect(),
        ))
        .with_allow_auto_topic_creation(auto_create)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_delete() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let created = create(&mut c, "orders", 3).await;
    let t = &created.topics[0];
    assert_eq!(
        (t.error_code, t.num_partitions, t.replication_factor),
        (0, 3, 1)
    );
    assert!(!t.topic_id.is_nil(), "a real topic id");
    assert_eq!(
        t.error_message, None,
        "success carries a null message, not \"\""
    );
    assert!(b.dir.join("orders-0").is_dir() && b.dir.join("orders-2").is_dir());

    // Every Metadata version describes it the same way.
    for version in 0..=13 {
        // v0–3 have no auto-creation flag (always true); the codec rejects false there.
        let req = metadata_for(&["orders"], version < 4);
        let md = c.call(&req, version).await;
        assert_eq!(md.brokers.len(), 1, "v{version}");
        assert_eq!(
            md.brokers[0].port,
            i32::from(b.addr().port()),
            "v{version}: advertised port is the bound port"
        );
        let topic = &md.topics[0];
        assert_eq!(topic.error_code, 0, "v{version}");
        assert_eq!(topic.partitions.len(), 3, "v{version}");
        if version >= 10 {
            assert_eq!(topic.topic_id, t.topic_id, "v{version}");
        }
        if version >= 1 {
            assert_eq!(
                md.controller_id.0, 1,
                "v{version}: controller is this broker"
            );
        }
        for p in &topic.partitions {
            assert_eq!(p.leader_id.0, 1);
            assert_eq!(
                p.replica_nodes.iter().map(|n| n.0).collect::<Vec<_>>(),
                vec![1]
            );
        }
    }

    // Errors: exists, bad name, RF above the broker count, bad partitions, unknown config.
    assert_eq!(create(&mut c, "orders", 1).await.topics[0].error_code, 36);
    assert_eq!(create(&mut c, "bad/name", 1).await.topics[0].error_code, 17);
    assert_eq!(create(&mut c, "zero", 0).await.topics[0].error_code, 37);
    let rf3 = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("rf3")))
        .with_num_partitions(1)
        .with_replication_factor(3)]);
    assert_eq!(
        c.call(&rf3, 5).await.topics[0].error_code,
        38,
        "INVALID_REPLICATION_FACTOR"
    );
    let bad_cfg = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("cfg")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("retention.msx"))
            .with_value(Some(s("1")))])]);
    assert_eq!(
        c.call(&bad_cfg, 7).await.topics[0].error_code,
        40,
        "INVALID_CONFIG"
    );

    // validate_only creates nothing; -1 uses broker defaults.
    let dry = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s("dry")))
            .with_num_partitions(-1)
            .with_replication_factor(-1)])
        .with_validate_only(true);
    let resp = c.call(&dry, 7).await;
    assert_eq!(
        (resp.topics[0].error_code, resp.topics[0].num_partitions),
        (0, 1)
    );
    let md = c.call(&metadata_for(&["dry"], false), 12).await;
    assert_eq!(md.topics[0].error_code, 3, "validate_only created nothing");

    // Delete by name (v1) and by id (v6); data leaves the disk.
    let del = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("orders"))]);
    assert_eq!(c.call(&del, 1).await.responses[0].error_code, 0);
    assert!(!b.dir.join("orders-0").exists(), "partition data removed");
    let del_again = DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("orders"))]);
    assert_eq!(c.call(&del_again, 4).await.responses[0].error_code, 3);
    let other = create(&mut c, "by-id", 1).await.topics[0].topic_id;
    let by_id = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_topic_id(other)]);
    let resp = c.call(&by_id, 6).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(
        resp.responses[0].name.as_ref().map(|n| n.0.as_str()),
        Some("by-id")
    );
    let unknown = DeleteTopicsRequest::default()
        .with_topics(vec![DeleteTopicState::default().with_topic_id(other)]);
    assert_eq!(
        c.call(&unknown, 6).await.responses[0].error_code,
        100,
        "UNKNOWN_TOPIC_ID"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_creation_follows_kafka_rules() {
    let b = harness::start(&[("num.partitions", "2")]).await;
    let mut c = b.client().await;
    // v4+ honours the flag; with it false the topic is unknown.
    let md = c.call(&metadata_for(&["auto1"], false), 9).await;
    assert_eq!(md.topics[0].error_code, 3);
    let md = c.call(&metadata_for(&["auto1"], true), 9).await;
    assert_eq!(
        (md.topics[0].error_code, md.topics[0].partitions.len()),
        (0, 2)
    );
    // v0 always allows; an empty v0 list means "all topics" and never creates.
    let md = c.call(&metadata_for(&["auto0"], true), 0).await;
    assert_eq!(md.topics[0].error_code, 0);
    let all = c
        .call(&MetadataRequest::default().with_topics(Some(vec![])), 0)
        .await;
    let mut names: Vec<String> = all
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    assert_eq!(names, vec!["auto0", "auto1"]);
    // v1+: empty list means none; null means all.
    assert!(c
        .call(&MetadataRequest::default().with_topics(Some(vec![])), 4)
        .await
        .topics
        .is_empty());
    assert_eq!(
        c.call(&MetadataRequest::default().with_topics(None), 4)
            .await
            .topics
            .len(),
        2
    );
    // Invalid names are reported, not created.
    assert_eq!(
        c.call(&metadata_for(&["no way"], true), 9).await.topics[0].error_code,
        17
    );

    let off = harness::start(&[("auto.create.topics.enable", "false")]).await;
    let mut c = off.client().await;
    assert_eq!(
        c.call(&metadata_for(&["nope"], true), 9).await.topics[0].error_code,
        3
    );
    assert!(c
        .call(&MetadataRequest::default().with_topics(None), 9)
        .await
        .topics
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_ids_survive_restart() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "keep", 4).await.topics[0].topic_id;
    let cluster = c
        .call(&DescribeClusterRequest::default().with_endpoint_type(1), 1)
        .await
        .cluster_id;
    drop(c);
    let b = b.restart(&[]).await;
    let mut c = b.client().await;
    let md = c.call(&metadata_for(&["keep"], false), 12).await;
    assert_eq!(
        (md.topics[0].topic_id, md.topics[0].partitions.len()),
        (id, 4)
    );
    let dc = c
        .call(&DescribeClusterRequest::default().with_endpoint_type(1), 1)
        .await;
    assert_eq!(dc.cluster_id, cluster, "cluster id is stable");
    assert_eq!(dc.brokers.len(), 1);
    // Metadata v12 by topic id.
    let by_id = MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
        .with_name(None)
        .with_topic_id(id)]));
    let md = c.call(&by_id, 12).await;
    assert_eq!(
        md.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("keep")
    );
    // The Java admin's by-id request leaves the name at its default, "": the id still wins.
    let by_id_empty_name =
        MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(s(""))))
            .with_topic_id(id)]));
    let md = c.call(&by_id_empty_name, 13).await;
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].topic_id, id);
    assert_eq!(
        md.topics[0].name.as_ref().map(|n| n.0.as_str()),
        Some("keep")
    );
    assert_eq!(md.topics[0].partitions.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_reported_only_when_asked() {
    use gregor::handlers::authorized_operations::{CLUSTER, NOT_REQUESTED, TOPIC};
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "ops", 1).await;
    for version in 8..=13 {
        let asked = metadata_for(&["ops"], false)
            .with_include_topic_authorized_operations(true)
            .with_include_cluster_authorized_operations(version <= 10);
        let md = c.call(&asked, version).await;
        assert_eq!(
            md.topics[0].topic_authorized_operations, TOPIC,
            "v{version}"
        );
        let cluster = if version <= 10 {
            CLUSTER
        } else {
            NOT_REQUESTED
        };
        assert_eq!(md.cluster_authorized_operations, cluster, "v{version}");
        let plain = c.call(&metadata_for(&["ops"], false), version).await;
        assert_eq!(
            plain.topics[0].topic_authorized_operations, NOT_REQUESTED,
            "v{version}"
        );
    }
    // Only real AclOperation codes (3..=12): no sign bit, nothing below READ.
    assert_eq!(TOPIC & !0x1ff8, 0);
    assert_eq!(CLUSTER & !0x1ff8, 0);
    let dc = c
        .call(
            &DescribeClusterRequest::default()
                .with_endpoint_type(1)
                .with_include_cluster_authorized_operations(true),
            1,
        )
        .await;
    assert_eq!(dc.cluster_authorized_operations, CLUSTER);
}

/// DescribeTopicPartitions (KIP-966), as 4.x `kafka-topics --describe` pages through it:
/// topics sorted by name, a partition budget per response and a cursor to resume from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_topic_partitions_pages_by_partition_budget_and_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let a_id = create(&mut c, "dtp-a", 3).await.topics[0].topic_id;
    create(&mut c, "dtp-b", 2).await;
    create(&mut c, "dtp-c", 1).await;
    let ask = |topics: &[&str], limit: i32, cursor: Option<(&str, i32)>| {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(TopicName(s(t))))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                Cursor::default()
                    .with_topic_name(TopicName(s(t)))
                    .with_partition_index(p)
            }))
    };
    let shape = |r: &DescribeTopicPartitionsResponse| -> Vec<(String, i16, Vec<i32>)> {
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    t.error_code,
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect()
    };
    let next = |r: &DescribeTopicPartitionsResponse| {
        r.next_cursor
            .as_ref()
            .map(|c| (c.topic_name.to_string(), c.partition_index))
    };
    // Every topic, four partitions a page.
    let r = c.call(&ask(&[], 4, None), 0).await;
    assert_eq!(
        shape(&r),
        vec![
            ("dtp-a".into(), 0, vec![0, 1, 2]),
            ("dtp-b".into(), 0, vec![0])
        ]
    );
    assert_eq!(next(&r), Some(("dtp-b".into(), 1)));
    assert_eq!(r.topics[0].topic_id, a_id);
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.leader_id.0, p.leader_epoch), (1, 0));
    assert_eq!(p.isr_nodes, p.replica_nodes);
    let r = c.call(&ask(&[], 4, Some(("dtp-b", 1))), 0).await;
    assert_eq!(
        shape(&r),
        vec![("dtp-b".into(), 0, vec![1]), ("dtp-c".into(), 0, vec![0])]
    );
    assert_eq!(next(&r), None);
    // Named topics come back sorted; an unknown one carries its error.
    let r = c.call(&ask(&["dtp-c", "nope", "dtp-a"], 0, None), 0).await;
    assert_eq!(
        shape(&r),
        vec![
            ("dtp-a".into(), 0, vec![0, 1, 2]),
            ("dtp-c".into(), 0, vec![0]),
            ("nope".into(), 3, vec![])
        ]
    );
    // A budget that ends exactly at a topic's end resumes at the next topic.
    let r = c.call(&ask(&["dtp-a", "dtp-b"], 3, None), 0).await;
    assert_eq!(shape(&r), vec![("dtp-a".into(), 0, vec![0, 1, 2])]);
    assert_eq!(next(&r), Some(("dtp-b".into(), 0)));
}
