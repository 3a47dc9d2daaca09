//! Topic and broker configs over the wire: DescribeConfigs (values, sources, synonyms, types,
//! documentation) in every version, IncrementalAlterConfigs and AlterConfigs (validation,
//! validate_only, persistence across restart), and the log honouring the configs at run time
//! (segment.bytes, segment.ms, LogAppendTime).

use gregor::records::testutil::simple_batch;
use gregor::records::BatchHeader;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::incremental_alter_configs_request as inc;
use kafka_protocol::messages::*;

use crate::harness::{self, s, Client};
use crate::harness::{create, create_with_configs};
use crate::harness::{fetch, produce};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

pub async fn describe(
    c: &mut Client,
    kind: i8,
    name: &str,
    keys: Option<&[&str]>,
    version: i16,
) -> DescribeConfigsResult {
    let req = DescribeConfigsRequest::default()
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(
                keys.map(|k| k.iter().map(|x| s(x)).collect()),
            )])
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3);
    let mut resp = c.call(&req, version).await;
    resp.results.remove(0)
}

fn value_of(r: &DescribeConfigsResult, name: &str) -> (String, i8) {
    let e = r
        .configs
        .iter()
        .find(|c| c.name.as_str() == name)
        .unwrap_or_else(|| panic!("{name} is described"));
    (
        e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        e.config_source,
    )
}

/// An IncrementalAlterConfigs request for one resource of type `kind` (topic, broker, broker
/// logger, group) with `(name, operation, value)` operations.
pub fn alter_request(
    kind: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_resources(vec![inc::AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(n, op, v)| {
                        inc::AlterableConfig::default()
                            .with_name(s(n))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            )])
        .with_validate_only(validate_only)
}

/// Alters a topic's configs; returns the error code and message.
pub async fn alter(
    c: &mut Client,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let resp = c
        .call(&alter_request(TOPIC, topic, ops, validate_only), 1)
        .await;
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_sources_synonyms_and_versions() {
    let b = harness::start(&[("log.retention.ms", "86400000")]).await;
    let mut c = b.client().await;
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(TopicName(s("cfg")))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(s("segment.bytes"))
            .with_value(Some(s("100000")))])]);
    let created = c.call(&req, 7).await;
    assert_eq!(created.topics[0].error_code, 0);
    // CreateTopics v5+ lists every config with its source, as DescribeConfigs does.
    let listed = created.topics[0].configs.as_ref().unwrap();
    let find = |n: &str| listed.iter().find(|c| c.name.as_str() == n).unwrap();
    assert_eq!(find("segment.bytes").config_source, 1);
    assert_eq!(find("retention.ms").config_source, 4);
    assert_eq!(find("cleanup.policy").config_source, 5);
    for version in 1..=4 {
        let r = describe(&mut c, TOPIC, "cfg", None, version).await;
        assert_eq!(r.error_code, 0, "v{version}");
        assert!(r.configs.len() >= 25, "every topic config is listed");
        // Set on the topic.
        assert_eq!(value_of(&r, "segment.bytes"), ("100000".into(), 1));
        // From the broker's static configuration.
        assert_eq!(value_of(&r, "retention.ms"), ("86400000".into(), 4));
        // Defaults.
        assert_eq!(value_of(&r, "cleanup.policy"), ("delete".into(), 5));
        assert_eq!(value_of(&r, "max.message.bytes"), ("1048588".into(), 5));
        assert_eq!(value_of(&r, "min.cleanable.dirty.ratio"), ("0.5".into(), 5));
        let seg = r
            .configs
            .iter()
            .find(|e| e.name.as_str() == "segment.bytes")
            .unwrap();
        let syn: Vec<(String, i8)> = seg
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![
                ("segment.bytes".to_string(), 1),
                ("log.segment.bytes".to_string(), 5)
            ],
            "v{version}"
        );
        assert!(!seg.read_only && !seg.is_sensitive);
        if version >= 3 {
            assert_eq!(seg.config_type, 3, "INT");
            assert!(seg.documentation.as_ref().is_some_and(|d| !d.is_empty()));
        }
    }
    // Only the keys asked for.
    let r = describe(&mut c, TOPIC, "cfg", Some(&["retention.ms"]), 4).await;
    assert_eq!(r.configs.len(), 1);
    // Unknown topic.
    let r = describe(&mut c, TOPIC, "absent", None, 4).await;
    assert_eq!(r.error_code, 3);
    // The broker's own settings.
    let r = describe(&mut c, BROKER, "1", None, 4).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(value_of(&r, "log.retention.ms"), ("86400000".into(), 4));
    assert_eq!(value_of(&r, "log.retention.bytes"), ("-1".into(), 5));
    // Kafka's dynamic broker settings (the topic configs' broker defaults) are writable; the
    // others are static.
    let read_only = |name: &str| {
        r.configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .map(|e| e.read_only)
    };
    assert_eq!(read_only("log.retention.ms"), Some(false));
    assert_eq!(read_only("message.max.bytes"), Some(false));
    assert_eq!(read_only("log.dirs"), Some(true));
    assert_eq!(read_only("num.partitions"), Some(true));
    let r = describe(&mut c, BROKER, "7", None, 4).await;
    assert_ne!(r.error_code, 0, "another broker id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_alter_configs_validates_persists_and_applies() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "t", 2).await;
    // SET, then visible as TOPIC_CONFIG and in the partition logs at once.
    let (code, _) = alter(
        &mut c,
        "t",
        &[
            ("retention.ms", 0, Some("1000")),
            ("segment.bytes", 0, Some("4096")),
        ],
        false,
    )
    .await;
    assert_eq!(code, 0);
    let r = describe(&mut c, TOPIC, "t", None, 4).await;
    assert_eq!(value_of(&r, "retention.ms"), ("1000".into(), 1));
    let log = b.broker.context().partition("t", 1).unwrap();
    assert_eq!(log.config().retention_ms, 1000);
    assert_eq!(log.config().segment_bytes, 4096);
    // APPEND / SUBTRACT on a list start from the effective value.
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("cleanup.policy", 2, Some("compact"))],
            false
        )
        .await
        .0,
        0
    );
    let r = describe(&mut c, TOPIC, "t", Some(&["cleanup.policy"]), 4).await;
    assert_eq!(value_of(&r, "cleanup.policy"), ("delete,compact".into(), 1));
    assert!(log.config().compact && log.config().delete);
    assert_eq!(
        alter(&mut c, "t", &[("cleanup.policy", 3, Some("delete"))], false)
            .await
            .0,
        0
    );
    assert!(log.config().compact && !log.config().delete);
    // SUBTRACT may empty the list (Kafka 4.x): neither retention nor compaction then applies.
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("cleanup.policy", 3, Some("compact"))],
            false
        )
        .await
        .0,
        0
    );
    let r = describe(&mut c, TOPIC, "t", Some(&["cleanup.policy"]), 4).await;
    assert_eq!(value_of(&r, "cleanup.policy"), ("".into(), 1));
    assert!(!log.config().compact && !log.config().delete);
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("cleanup.policy", 0, Some("compact"))],
            false
        )
        .await
        .0,
        0
    );
    assert!(log.config().compact && !log.config().delete);
    // APPEND on a non-list, bad values and unknown names: INVALID_CONFIG naming the key.
    let (code, msg) = alter(&mut c, "t", &[("retention.ms", 2, Some("5"))], false).await;
    assert_eq!(code, 40);
    assert!(msg.contains("retention.ms"), "{msg}");
    let (code, msg) = alter(&mut c, "t", &[("segment.bytes", 0, Some("lots"))], false).await;
    assert_eq!(code, 40);
    assert!(msg.contains("segment.bytes"), "{msg}");
    let (code, msg) = alter(&mut c, "t", &[("retention.mss", 0, Some("5"))], false).await;
    assert_eq!(code, 40);
    assert!(msg.contains("retention.mss"), "{msg}");
    // A failed request changes nothing, even its valid parts.
    let (code, _) = alter(
        &mut c,
        "t",
        &[
            ("retention.ms", 0, Some("7")),
            ("segment.bytes", 0, Some("0")),
        ],
        false,
    )
    .await;
    assert_eq!(code, 40);
    assert_eq!(log.config().retention_ms, 1000);
    // Unknown topic; duplicate keys.
    assert_eq!(
        alter(&mut c, "nope", &[("retention.ms", 0, Some("5"))], false)
            .await
            .0,
        3
    );
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("retention.ms", 0, Some("5")), ("retention.ms", 1, None)],
            false
        )
        .await
        .0,
        42
    );
    // validate_only leaves everything as it was.
    assert_eq!(
        alter(&mut c, "t", &[("retention.ms", 0, Some("5"))], true)
            .await
            .0,
        0
    );
    assert_eq!(log.config().retention_ms, 1000);
    // DELETE returns to the default.
    assert_eq!(
        alter(&mut c, "t", &[("segment.bytes", 1, None)], false)
            .await
            .0,
        0
    );
    let r = describe(&mut c, TOPIC, "t", Some(&["segment.bytes"]), 4).await;
    assert_eq!(value_of(&r, "segment.bytes"), ("1073741824".into(), 5));
    // Static broker settings cannot change at run time.
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        inc::AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(s("1"))
            .with_configs(vec![inc::AlterableConfig::default()
                .with_name(s("log.dirs"))
                .with_config_operation(0)
                .with_value(Some(s("/elsewhere")))]),
    ]);
    assert_eq!(c.call(&req, 0).await.responses[0].error_code, 42);
    // Survives a restart, in metadata and in the logs.
    drop(c);
    let b = b.restart(&[]).await;
    let mut c = b.client().await;
    let r = describe(&mut c, TOPIC, "t", None, 2).await;
    assert_eq!(value_of(&r, "retention.ms"), ("1000".into(), 1));
    assert_eq!(value_of(&r, "cleanup.policy"), ("compact".into(), 1));
    let log = b.broker.context().partition("t", 0).unwrap();
    assert_eq!(log.config().retention_ms, 1000);
    assert!(log.config().compact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alter_configs_replaces_the_whole_set() {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "t", 1).await;
    assert_eq!(
        alter(&mut c, "t", &[("retention.ms", 0, Some("1000"))], false)
            .await
            .0,
        0
    );
    for version in 0..=2 {
        let req =
            AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(s("t"))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(s("retention.bytes"))
                    .with_value(Some(s("12345")))])]);
        let resp = c.call(&req, version).await;
        assert_eq!(resp.responses[0].error_code, 0, "v{version}");
    }
    let r = describe(&mut c, TOPIC, "t", None, 4).await;
    assert_eq!(value_of(&r, "retention.bytes"), ("12345".into(), 1));
    assert_eq!(value_of(&r, "retention.ms").1, 5, "replaced, not merged");
    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(TOPIC)
        .with_resource_name(s("t"))
        .with_configs(vec![AlterableConfig::default()
            .with_name(s("message.timestamp.type"))
            .with_value(Some(s("Sometimes")))])]);
    let resp = c.call(&req, 2).await;
    assert_eq!(resp.responses[0].error_code, 40);
    assert!(resp.responses[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("message.timestamp.type")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_honours_segment_configs_and_log_append_time_at_run_time() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    let log = b.broker.context().partition("t", 0).unwrap();
    let batch = simple_batch(1, 100, 1_000);
    produce(&mut c, "t", id, 0, &batch, 9).await;
    produce(&mut c, "t", id, 0, &batch, 9).await;
    assert_eq!(log.segment_base_offsets(), vec![0]);
    // segment.bytes: each later batch rolls.
    assert_eq!(
        alter(&mut c, "t", &[("segment.bytes", 0, Some("200"))], false)
            .await
            .0,
        0
    );
    produce(&mut c, "t", id, 0, &batch, 9).await;
    produce(&mut c, "t", id, 0, &batch, 9).await;
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3]);
    // segment.ms: a batch newer than the active segment's first by more than segment.ms rolls.
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("segment.bytes", 1, None), ("segment.ms", 0, Some("1000"))],
            false
        )
        .await
        .0,
        0
    );
    produce(&mut c, "t", id, 0, &simple_batch(1, 10, 1_500), 9).await;
    assert_eq!(
        log.segment_base_offsets(),
        vec![0, 2, 3],
        "within segment.ms"
    );
    produce(&mut c, "t", id, 0, &simple_batch(1, 10, 2_001), 9).await;
    assert_eq!(log.segment_base_offsets(), vec![0, 2, 3, 5]);
    // LogAppendTime: the stored copy carries the broker's time, and Produce returns it.
    assert_eq!(
        alter(
            &mut c,
            "t",
            &[("message.timestamp.type", 0, Some("LogAppendTime"))],
            false
        )
        .await
        .0,
        0
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let p = produce(&mut c, "t", id, 0, &simple_batch(2, 10, 3_000), 9).await;
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= before, "{}", p.log_append_time_ms);
    let data = fetch(&mut c, "t", id, 0, p.base_offset, 12).await;
    let records = data.records.unwrap();
    let h = BatchHeader::new(&records).unwrap();
    assert_eq!(h.base_offset(), p.base_offset);
    assert_eq!(h.max_timestamp(), p.log_append_time_ms);
    assert_eq!(
        h.timestamp_type(),
        gregor::records::TimestampType::LogAppendTime
    );
    assert_eq!(
        h.crc(),
        gregor::records::batch::compute_crc(&records[..h.total_size().unwrap()])
    );
    // ListOffsets by timestamp sees the append time.
    let found = log.offset_for_timestamp(before).unwrap();
    assert_eq!(found.map(|(o, _)| o), Some(p.base_offset));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_compression_type_recompresses_stored_batches() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    alter(&mut c, "t", &[("compression.type", 0, Some("gzip"))], false).await;
    let batch = simple_batch(5, 300, 42);
    let p = produce(&mut c, "t", id, 0, &batch, 9).await;
    assert_eq!(p.error_code, 0);
    let data = fetch(&mut c, "t", id, 0, 0, 12).await;
    let stored = data.records.unwrap();
    let h = BatchHeader::new(&stored).unwrap();
    assert_eq!(h.compression(), Some(gregor::records::Compression::Gzip));
    assert!(stored.len() < batch.len(), "compressed");
    assert_eq!(h.record_count(), 5);
    let a = gregor::records::records(&stored, 1 << 20).unwrap();
    let a: Vec<_> = a
        .iter()
        .map(|r| r.unwrap().value.map(<[u8]>::to_vec))
        .collect();
    let o = gregor::records::records(&batch, 1 << 20).unwrap();
    let o: Vec<_> = o
        .iter()
        .map(|r| r.unwrap().value.map(<[u8]>::to_vec))
        .collect();
    assert_eq!(a, o);
    // `producer` again: stored as sent.
    alter(&mut c, "t", &[("compression.type", 1, None)], false).await;
    let p = produce(&mut c, "t", id, 0, &batch, 9).await;
    let data = fetch(&mut c, "t", id, 0, p.base_offset, 12).await;
    assert_eq!(data.records.unwrap().len(), batch.len());
}

/// A batch of text-like records that compresses better at higher levels.
fn wordy_batch(n: usize) -> Vec<u8> {
    let words = [
        "kafka", "broker", "segment", "offset", "replica", "leader", "fetch",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let values: Vec<String> = (0..n)
        .map(|_| {
            (0..400)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    words[(state % words.len() as u64) as usize]
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let recs: Vec<gregor::records::testutil::TestRecord<'_>> = values
        .iter()
        .map(|v| (None, Some(v.as_bytes()), vec![], 42))
        .collect();
    gregor::records::testutil::build_batch(&recs, gregor::records::Compression::None, -1, -1, -1)
}

/// Sets `compression.type` and a level on topic `lv`, produces `batch` and returns the size of
/// the batch as stored.
async fn stored_len(
    c: &mut Client,
    id: uuid::Uuid,
    batch: &[u8],
    (codec, key, level): (&str, &str, &str),
) -> usize {
    let ops = [("compression.type", 0, Some(codec)), (key, 0, Some(level))];
    assert_eq!(alter(c, "lv", &ops, false).await.0, 0);
    let p = produce(c, "lv", id, 0, batch, 9).await;
    assert_eq!(p.error_code, 0);
    let stored = fetch(c, "lv", id, 0, p.base_offset, 12)
        .await
        .records
        .unwrap();
    let h = BatchHeader::new(&stored).unwrap();
    assert_eq!(h.record_count(), 20);
    h.total_size().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_levels_apply_to_broker_side_recompression() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "lv", 1).await.topics[0].topic_id;
    let batch = wordy_batch(20);
    let gzip_fast = stored_len(&mut c, id, &batch, ("gzip", "compression.gzip.level", "1")).await;
    let gzip_best = stored_len(&mut c, id, &batch, ("gzip", "compression.gzip.level", "9")).await;
    let zstd_fast = stored_len(&mut c, id, &batch, ("zstd", "compression.zstd.level", "1")).await;
    let zstd_best = stored_len(&mut c, id, &batch, ("zstd", "compression.zstd.level", "19")).await;
    assert!(
        gzip_best < gzip_fast,
        "gzip 9: {gzip_best} vs 1: {gzip_fast}"
    );
    assert!(
        zstd_best < zstd_fast,
        "zstd 19: {zstd_best} vs 1: {zstd_fast}"
    );
    // Out-of-range levels are refused, naming the key.
    let (code, message) = alter(
        &mut c,
        "lv",
        &[("compression.zstd.level", 0, Some("23"))],
        false,
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG");
    assert!(message.contains("compression.zstd.level"), "{message}");
    let (code, _) = alter(
        &mut c,
        "lv",
        &[("compression.gzip.level", 0, Some("0"))],
        false,
    )
    .await;
    assert_eq!(code, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_bounds_are_enforced_for_create_time() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "t", 1).await.topics[0].topic_id;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let future = simple_batch(2, 10, now + 2 * 3_600_000);
    // Kafka 4's default message.timestamp.after.max.ms is one hour.
    assert_eq!(produce(&mut c, "t", id, 0, &future, 9).await.error_code, 32);
    alter(
        &mut c,
        "t",
        &[("message.timestamp.after.max.ms", 0, Some("86400000"))],
        false,
    )
    .await;
    assert_eq!(produce(&mut c, "t", id, 0, &future, 9).await.error_code, 0);
    let old = simple_batch(2, 10, 1);
    assert_eq!(produce(&mut c, "t", id, 0, &old, 9).await.error_code, 0);
    alter(
        &mut c,
        "t",
        &[("message.timestamp.before.max.ms", 0, Some("60000"))],
        false,
    )
    .await;
    let p = produce(&mut c, "t", id, 0, &old, 9).await;
    assert_eq!(p.error_code, 32);
    // Every record of the batch is too old: each is named (KIP-467).
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!(indexes, vec![0, 1]);
    // LogAppendTime replaces the timestamps, so no bound applies.
    alter(
        &mut c,
        "t",
        &[("message.timestamp.type", 0, Some("LogAppendTime"))],
        false,
    )
    .await;
    assert_eq!(produce(&mut c, "t", id, 0, &old, 9).await.error_code, 0);
}

/// Dynamic broker configs (`kafka-configs --entity-type brokers [--entity-default]`): the
/// cluster default and this broker's own layer over the static configuration, are validated as a
/// whole, apply at once (to produce limits and to every partition log without an override),
/// show their sources, and survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_apply_at_once_and_persist() {
    const DYNAMIC_BROKER_CONFIG: i8 = 2;
    const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
    let b = harness::start(&[("log.retention.ms", "86400000")]).await;
    let mut c = b.client().await;
    let id = create(&mut c, "dyn", 1).await.topics[0].topic_id;
    create_with_configs(&mut c, "own", 1, &[("retention.ms", "5000")]).await;
    let broker_alter = |name: &str, ops: &[(&str, i8, Option<&str>)], validate_only: bool| {
        alter_request(BROKER, name, ops, validate_only)
    };
    let code = |r: IncrementalAlterConfigsResponse| r.responses[0].error_code;
    // Bad values, unknown names and other brokers are refused; validate_only changes nothing.
    let bad = c
        .call(
            &broker_alter("", &[("log.retention.ms", 0, Some("soon"))], false),
            1,
        )
        .await;
    assert_eq!(code(bad), 40);
    let unknown = c
        .call(
            &broker_alter("1", &[("log.retention.mss", 0, Some("1"))], false),
            1,
        )
        .await;
    assert_eq!(code(unknown), 40);
    let other = c
        .call(
            &broker_alter("7", &[("log.retention.ms", 0, Some("1"))], false),
            1,
        )
        .await;
    assert_eq!(code(other), 42);
    let dry = c
        .call(
            &broker_alter("", &[("log.retention.ms", 0, Some("60000"))], true),
            1,
        )
        .await;
    assert_eq!(code(dry), 0);
    let log = b.broker.context().partition("dyn", 0).unwrap();
    assert_eq!(log.config().retention_ms, 86_400_000);

    // The cluster default applies to topics without an override, at once.
    let ok = c
        .call(
            &broker_alter("", &[("log.retention.ms", 0, Some("60000"))], false),
            1,
        )
        .await;
    assert_eq!(code(ok), 0);
    assert_eq!(log.config().retention_ms, 60_000);
    let own = b.broker.context().partition("own", 0).unwrap();
    assert_eq!(own.config().retention_ms, 5000, "a topic override wins");
    let r = describe(&mut c, TOPIC, "dyn", Some(&["retention.ms"]), 4).await;
    assert_eq!(
        value_of(&r, "retention.ms"),
        ("60000".into(), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    let sources: Vec<i8> = r.configs[0].synonyms.iter().map(|s| s.source).collect();
    assert_eq!(sources, vec![DYNAMIC_DEFAULT_BROKER_CONFIG, 4, 5]);
    // This broker's own layer wins over the default; message.max.bytes limits produce at once.
    let ok = c
        .call(
            &broker_alter(
                "1",
                &[
                    ("log.retention.ms", 0, Some("120000")),
                    ("message.max.bytes", 0, Some("2000")),
                ],
                false,
            ),
            1,
        )
        .await;
    assert_eq!(code(ok), 0);
    assert_eq!(log.config().retention_ms, 120_000);
    let big = simple_batch(1, 3000, 1);
    assert_eq!(produce(&mut c, "dyn", id, 0, &big, 9).await.error_code, 10);
    let r = describe(&mut c, BROKER, "1", Some(&["log.retention.ms"]), 4).await;
    assert_eq!(
        value_of(&r, "log.retention.ms"),
        ("120000".into(), DYNAMIC_BROKER_CONFIG)
    );
    // The default resource lists only what is set at that level.
    let r = describe(&mut c, BROKER, "", None, 4).await;
    let names: Vec<&str> = r.configs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["log.retention.ms"]);
    assert_eq!(value_of(&r, "log.retention.ms"), ("60000".into(), 3));

    // Both layers survive a restart; deleting them returns to the static value.
    drop(c);
    let b = b.restart(&[("log.retention.ms", "86400000")]).await;
    let mut c = b.client().await;
    let log = b.broker.context().partition("dyn", 0).unwrap();
    assert_eq!(log.config().retention_ms, 120_000);
    assert_eq!(produce(&mut c, "dyn", id, 0, &big, 9).await.error_code, 10);
    for name in ["1", ""] {
        let r = c
            .call(
                &broker_alter(
                    name,
                    &[
                        ("log.retention.ms", 1, None),
                        ("message.max.bytes", 1, None),
                    ],
                    false,
                ),
                1,
            )
            .await;
        assert_eq!(code(r), 0);
    }
    assert_eq!(log.config().retention_ms, 86_400_000);
    assert_eq!(produce(&mut c, "dyn", id, 0, &big, 9).await.error_code, 0);
    let r = describe(&mut c, TOPIC, "dyn", Some(&["retention.ms"]), 4).await;
    assert_eq!(value_of(&r, "retention.ms"), ("86400000".into(), 4));
}

/// ListConfigResources (KIP-1142): the resources configs can be described for, by type, as
/// `kafka-configs --describe --entity-type X` without a name lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_config_resources_names_topics_brokers_and_configured_groups() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    create(&mut c, "lcr-b", 1).await;
    create(&mut c, "lcr-a", 1).await;
    // A group has configs only once some are set.
    let set_group = alter_request(
        32,
        "lcr-group",
        &[("consumer.session.timeout.ms", 0, Some("50000"))],
        false,
    );
    assert_eq!(c.call(&set_group, 1).await.responses[0].error_code, 0);
    let list = |types: Vec<i8>| ListConfigResourcesRequest::default().with_resource_types(types);
    let names = |r: &ListConfigResourcesResponse| -> Vec<(i8, String)> {
        let mut v: Vec<(i8, String)> = r
            .config_resources
            .iter()
            .map(|x| (x.resource_type, x.resource_name.to_string()))
            .collect();
        v.sort();
        v
    };
    let r = c.call(&list(vec![]), 1).await;
    assert_eq!(r.error_code, 0);
    assert_eq!(
        names(&r),
        vec![
            (2, "lcr-a".into()),
            (2, "lcr-b".into()),
            (4, "1".into()),
            (8, "1".into()),
            (32, "lcr-group".into())
        ]
    );
    let r = c.call(&list(vec![2]), 1).await;
    assert_eq!(names(&r), vec![(2, "lcr-a".into()), (2, "lcr-b".into())]);
    // An unknown type is UNSUPPORTED_VERSION, as in Kafka; v0 lists client metrics only.
    assert_eq!(c.call(&list(vec![2, 99]), 1).await.error_code, 35);
    let r = c.call(&list(vec![]), 0).await;
    assert_eq!((r.error_code, r.config_resources.len()), (0, 0));
}

/// Without an authorizer, Kafka answers the ACL APIs with SECURITY_DISABLED (54): the whole
/// DescribeAcls, and each creation and filter of CreateAcls / DeleteAcls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_apis_answer_security_disabled_without_an_authorizer() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    for v in 1..=3 {
        let d = c
            .call(
                &DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
                v,
            )
            .await;
        assert_eq!(d.error_code, 54, "v{v}");
        assert_eq!(
            d.error_message.as_deref(),
            Some("No Authorizer is configured.")
        );
        assert!(d.resources.is_empty());
        let creation = create_acls_request::AclCreation::default()
            .with_resource_type(2)
            .with_resource_name(s("t"))
            .with_resource_pattern_type(3)
            .with_principal(s("User:alice"))
            .with_host(s("*"))
            .with_operation(3)
            .with_permission_type(3);
        let cr = c
            .call(
                &CreateAclsRequest::default().with_creations(vec![creation.clone(), creation]),
                v,
            )
            .await;
        let codes: Vec<i16> = cr.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![54, 54], "v{v}");
        let filter = delete_acls_request::DeleteAclsFilter::default()
            .with_resource_type_filter(1)
            .with_pattern_type_filter(1)
            .with_operation(1)
            .with_permission_type(1);
        let dr = c
            .call(&DeleteAclsRequest::default().with_filters(vec![filter]), v)
            .await;
        let codes: Vec<i16> = dr.filter_results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, vec![54], "v{v}");
    }
}
