//! Retention and log-start-offset administration over the wire: DeleteRecords (Fetch below the
//! start → OFFSET_OUT_OF_RANGE, ListOffsets earliest), retention.ms / retention.bytes applied by
//! the retention task, CreatePartitions and DescribeLogDirs.

use std::time::Duration;

use gregor::records::testutil::simple_batch;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;

use crate::configs::alter;
use crate::harness::create;
use crate::harness::{self, s, Client};
use crate::harness::{fetch, fetch_request, produce};

async fn delete_records(c: &mut Client, topic: &str, offset: i64, version: i16) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])])
        .with_timeout_ms(5000);
    let resp = c.call(&req, version).await;
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

async fn earliest(c: &mut Client, topic: &str) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-2)])]);
    c.call(&req, 7).await.topics[0].partitions[0].offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_offset() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    assert_eq!(
        alter(&mut c, "t", &[("segment.bytes", 0, Some("200"))], false)
            .await
            .0,
        0
    );
    for _ in 0..5 {
        produce(&mut c, "t", id, 0, &simple_batch(1, 100, 1), 9).await;
    }
    let log = b.broker.context().partition("t", 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 1, 2, 3, 4]);
    for version in 0..=2 {
        assert_eq!(
            delete_records(&mut c, "t", 1 + i64::from(version), version).await,
            (0, 1 + i64::from(version))
        );
    }
    assert_eq!(earliest(&mut c, "t").await, 3);
    assert_eq!(
        log.segment_base_offsets(),
        vec![3, 4],
        "wholly-deleted segments are gone"
    );
    // Fetch below the start: OFFSET_OUT_OF_RANGE; at the start: data.
    let resp = c
        .call(&fetch_request("t", id, 0, 1, 0, 1 << 20, 12), 12)
        .await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 1);
    let resp = c
        .call(&fetch_request("t", id, 0, 3, 0, 1 << 20, 12), 12)
        .await;
    let p = &resp.responses[0].partitions[0];
    assert_eq!((p.error_code, p.log_start_offset), (0, 3));
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    // Beyond the high watermark; unknown topic.
    assert_eq!(delete_records(&mut c, "t", 99, 2).await.0, 1);
    assert_eq!(delete_records(&mut c, "absent", 0, 2).await.0, 3);
    // -1 = up to the high watermark; survives a restart.
    assert_eq!(delete_records(&mut c, "t", -1, 2).await, (0, 5));
    drop(c);
    let b = b.restart(&[]).await;
    let mut c = b.client().await;
    assert_eq!(earliest(&mut c, "t").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_task_applies_retention_ms_and_bytes() {
    let b = harness::start(&[("log.retention.check.interval.ms", "100")]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    alter(&mut c, "t", &[("segment.bytes", 0, Some("200"))], false).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Two old batches then three recent ones, one segment each.
    for ts in [now - 3_600_000, now - 3_600_000, now, now, now] {
        produce(&mut c, "t", id, 0, &simple_batch(1, 100, ts), 9).await;
    }
    let log = b.broker.context().partition("t", 0).unwrap();
    assert_eq!(log.segment_base_offsets().len(), 5);
    // retention.ms of a minute: the two old segments go, by the background task.
    alter(&mut c, "t", &[("retention.ms", 0, Some("60000"))], false).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while log.segment_base_offsets().first() != Some(&2) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention ran: {:?}",
            log.segment_base_offsets()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(earliest(&mut c, "t").await, 2);
    // retention.bytes: keep about one segment besides the active one.
    let one = log.size_bytes() / 3;
    alter(
        &mut c,
        "t",
        &[("retention.bytes", 0, Some(&(one + one / 2).to_string()))],
        false,
    )
    .await;
    while log.segment_base_offsets() != vec![3, 4] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "size retention ran: {:?}",
            log.segment_base_offsets()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(earliest(&mut c, "t").await, 3);
}

/// A quiet topic whose records all sit in the active segment still loses them to
/// `retention.ms`: as in Kafka, the active segment is rolled and the old one deleted, and
/// appends continue at the same offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_ms_reaches_data_in_the_active_segment() {
    let b = harness::start(&[("log.retention.check.interval.ms", "100")]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "quiet", 1).await.topics[0].topic_id;
    alter(&mut c, "quiet", &[("retention.ms", 0, Some("1500"))], false).await;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    for _ in 0..3 {
        let p = produce(&mut c, "quiet", id, 0, &simple_batch(1, 50, now()), 9).await;
        assert_eq!(p.error_code, 0);
    }
    let log = b.broker.context().partition("quiet", 0).unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0], "one active segment");
    // Not before its time: the data is younger than retention.ms.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(earliest(&mut c, "quiet").await, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while earliest(&mut c, "quiet").await != 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retention reached the active segment: {:?}",
            log.segment_base_offsets()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        log.segment_base_offsets(),
        vec![3],
        "rolled, old segment deleted"
    );
    // The file goes once the segment is out of the log (as in Kafka, a moment after the log
    // start moved), not necessarily before ListOffsets shows the new start.
    let old_segment = b.dir.join("quiet-0/00000000000000000000.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while old_segment.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "old segment file removed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reading the deleted range is out of range; appends go on from offset 3.
    let f = fetch(&mut c, "quiet", id, 0, 0, 12).await;
    assert_eq!(f.error_code, 1, "OFFSET_OUT_OF_RANGE");
    let p = produce(&mut c, "quiet", id, 0, &simple_batch(1, 50, now()), 9).await;
    assert_eq!((p.error_code, p.base_offset), (0, 3));
    // That record expires in turn; the empty segment rolled for it is never rolled again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(log.segment_base_offsets(), vec![4]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(log.segment_base_offsets(), vec![4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_partitions_adds_and_never_removes() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "t", 2).await;
    alter(&mut c, "t", &[("retention.ms", 0, Some("12345"))], false).await;
    let call = |count: i32, validate_only: bool, assignments: Option<Vec<i32>>| {
        CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(s("t")))
                .with_count(count)
                .with_assignments(assignments.map(|a| {
                    a.into_iter()
                        .map(|n| {
                            CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(n)])
                        })
                        .collect()
                }))])
            .with_timeout_ms(5000)
            .with_validate_only(validate_only)
    };
    let r = c.call(&call(1, false, None), 3).await;
    assert_eq!(
        r.results[0].error_code, 37,
        "INVALID_PARTITIONS for a decrease"
    );
    let r = c.call(&call(2, false, None), 3).await;
    assert_eq!(
        r.results[0].error_code, 37,
        "INVALID_PARTITIONS for no change"
    );
    let r = c.call(&call(4, false, Some(vec![1, 7])), 2).await;
    assert_eq!(r.results[0].error_code, 39, "INVALID_REPLICA_ASSIGNMENT");
    let r = c.call(&call(4, true, None), 1).await;
    assert_eq!(r.results[0].error_code, 0);
    assert!(
        b.broker.context().partition("t", 2).is_none(),
        "validate_only"
    );
    let r = c.call(&call(4, false, Some(vec![1, 1])), 0).await;
    assert_eq!(r.results[0].error_code, 0);
    let new = b.broker.context().partition("t", 3).expect("created");
    assert_eq!(
        new.config().retention_ms,
        12345,
        "new partitions get the topic configs"
    );
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.topics[0].partitions.len(), 4);
    let bad = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("absent")))
            .with_count(3)]);
    assert_eq!(c.call(&bad, 3).await.results[0].error_code, 3);
    drop(c);
    let b = b.restart(&[]).await;
    assert!(
        b.broker.context().partition("t", 3).is_some(),
        "survives restart"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_log_dirs_reports_real_sizes() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 2).await.topics[0].topic_id;
    let batch = simple_batch(3, 100, 1);
    produce(&mut c, "t", id, 0, &batch, 9).await;
    produce(&mut c, "t", id, 0, &batch, 9).await;
    for version in 1..=4 {
        let resp = c
            .call(
                &DescribeLogDirsRequest::default().with_topics(None),
                version,
            )
            .await;
        assert_eq!(resp.results.len(), 1);
        let dir = &resp.results[0];
        assert_eq!(dir.error_code, 0);
        assert!(!dir.log_dir.is_empty());
        let t = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "t")
            .unwrap();
        let size = |p: i32| {
            t.partitions
                .iter()
                .find(|x| x.partition_index == p)
                .unwrap()
                .partition_size
        };
        assert_eq!(size(0), 2 * batch.len() as i64, "v{version}");
        assert_eq!(size(1), 0);
        if version >= 4 {
            assert!(dir.total_bytes > 0 && dir.usable_bytes >= 0);
        }
    }
    let only =
        DescribeLogDirsRequest::default()
            .with_topics(Some(vec![DescribableLogDirTopic::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![1])]));
    let resp = c.call(&only, 4).await;
    let parts = &resp.results[0].topics[0].partitions;
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].partition_index, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_refuses_keyless_records_and_is_compacted() {
    use gregor::records::testutil::build_batch;
    use gregor::records::Compression;
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "c", 1).await.topics[0].topic_id;
    alter(
        &mut c,
        "c",
        &[
            ("cleanup.policy", 0, Some("compact")),
            ("segment.bytes", 0, Some("200")),
        ],
        false,
    )
    .await;
    let p = produce(&mut c, "c", id, 0, &simple_batch(1, 10, 1), 9).await;
    assert_eq!(
        p.error_code, 87,
        "INVALID_RECORD for a record without a key"
    );
    // KIP-467: a batch with keyed and keyless records names just the keyless ones (v8+), so a
    // client fails only those; before v8 there is no place for them.
    let mixed = build_batch(
        &[
            (Some(b"a"), Some(b"1"), vec![], 1000),
            (None, Some(b"2"), vec![], 1000),
            (Some(b"c"), Some(b"3"), vec![], 1000),
            (None, Some(b"4"), vec![], 1000),
        ],
        Compression::Lz4,
        -1,
        -1,
        -1,
    );
    let p = produce(&mut c, "c", id, 0, &mixed, 9).await;
    assert_eq!(p.error_code, 87);
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![1, 3]);
    assert!(p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .is_some_and(|m| m.contains("without a key")));
    assert!(p.error_message.is_some());
    let p = produce(&mut c, "c", id, 0, &mixed, 7).await;
    assert_eq!((p.error_code, p.record_errors.len()), (87, 0));
    for v in 0..6 {
        let value = format!("value-{v}");
        let batch = build_batch(
            &[(Some(b"k"), Some(value.as_bytes()), vec![], 1000 + v)],
            Compression::Snappy,
            -1,
            -1,
            -1,
        );
        assert_eq!(produce(&mut c, "c", id, 0, &batch, 9).await.error_code, 0);
    }
    let log = b.broker.context().partition("c", 0).unwrap();
    let before = log.size_bytes();
    b.broker.context().logs.run_cleaner(1 << 20);
    assert!(
        log.size_bytes() < before,
        "compacted: {} -> {}",
        before,
        log.size_bytes()
    );
    // Consumers still read every offset range; only the latest value of `k` below the
    // active segment survives, and offsets are unchanged.
    let resp = c
        .call(&fetch_request("c", id, 0, 0, 0, 1 << 20, 12), 12)
        .await;
    let part = &resp.responses[0].partitions[0];
    assert_eq!(part.error_code, 0);
    assert_eq!(part.high_watermark, 6);
}

/// A full disk: the producer gets KAFKA_STORAGE_ERROR, reads keep working, and once space is
/// freed writes are accepted again, at the next offset, with nothing torn left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_gives_storage_errors_then_recovers() {
    use gregor::config::{Config, Sources};
    use gregor::log::io::FaultyIo;
    use std::sync::Arc;
    let tmp = tempfile::tempdir().unwrap();
    let config = Config::load(&Sources {
        file: None,
        env: false,
        overrides: vec![
            ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
            ("log.dirs".into(), tmp.path().display().to_string()),
        ],
    })
    .unwrap();
    let io = Arc::new(FaultyIo::new());
    let broker = gregor::Broker::start_with_io(config, io.clone())
        .await
        .unwrap();
    let mut c = Client::connect(broker.local_addr()).await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    let batch = simple_batch(2, 100, 1);
    assert_eq!(produce(&mut c, "t", id, 0, &batch, 9).await.base_offset, 0);
    io.set_disk_full(Some(50));
    for _ in 0..2 {
        let p = produce(&mut c, "t", id, 0, &batch, 9).await;
        assert_eq!(p.error_code, 56, "KAFKA_STORAGE_ERROR");
    }
    let resp = c
        .call(&fetch_request("t", id, 0, 0, 0, 1 << 20, 12), 12)
        .await;
    let part = &resp.responses[0].partitions[0];
    assert_eq!(
        (part.error_code, part.high_watermark),
        (0, 2),
        "reads keep working"
    );
    assert_eq!(part.records.as_ref().map(|r| r.len()), Some(batch.len()));
    io.set_disk_full(None);
    let p = produce(&mut c, "t", id, 0, &batch, 9).await;
    assert_eq!((p.error_code, p.base_offset), (0, 2), "accepted again");
    drop(c);
    broker.shutdown().await.unwrap();
}

/// Each partition keeps a file open, so the broker refuses to grow past what its open-file
/// limit allows (otherwise the next accept fails with EMFILE), and nothing is half-created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_beyond_the_open_file_budget_are_refused() {
    let b = harness::start(&[]).await;
    let limit = b.broker.context().partition_limit;
    assert!(limit > 100, "a useful limit on this machine: {limit}");
    let mut c = b.client().await;
    create(&mut c, "p", 1).await;
    let over = i32::try_from(limit + 1).unwrap();
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(s("p")))
            .with_count(over)
            .with_assignments(None)])
        .with_timeout_ms(5000);
    let r = c.call(&grow, 3).await.results[0].clone();
    assert_eq!(r.error_code, 37, "INVALID_PARTITIONS");
    assert!(r.error_message.unwrap().contains("at most"));
    let big = CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s("huge")))
            .with_num_partitions(over)
            .with_replication_factor(1),
    ]);
    assert_eq!(c.call(&big, 7).await.topics[0].error_code, 37);
    // A dry run (validate_only) gives the same answer as the real request.
    let dry_grow = grow.clone().with_validate_only(true);
    assert_eq!(c.call(&dry_grow, 3).await.results[0].error_code, 37);
    let dry_big = big.clone().with_validate_only(true);
    assert_eq!(c.call(&dry_big, 7).await.topics[0].error_code, 37);
    // Nothing was created, and the broker keeps serving.
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let names: Vec<(String, usize)> = md
        .topics
        .iter()
        .map(|t| (t.name.as_ref().unwrap().to_string(), t.partitions.len()))
        .collect();
    assert_eq!(names, vec![("p".to_string(), 1)]);
    assert!(!b.dir.join("huge-0").exists());
    assert_eq!(create(&mut c, "fine", 2).await.topics[0].error_code, 0);
}
