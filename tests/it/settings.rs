//! Settings that say what they do: a Kafka topic config Gregor cannot honour is refused
//! (`remote.storage.enable=true`) or described as not applied (`compression.lz4.level`,
//! `file.delete.delay.ms`, `preallocate`), and `min.insync.replicas` above the replica count
//! refuses acks=all produces with NOT_ENOUGH_REPLICAS, as Kafka does.

use gregor::records::testutil::simple_batch;
use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use crate::configs::{alter, describe};
use crate::harness::{self, create, create_with_configs, produce_request};

const TOPIC: i8 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_storage_enable_true_is_refused_on_create_and_alter() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let created = create_with_configs(&mut c, "tiered", 1, &[("remote.storage.enable", "true")])
        .await
        .topics
        .remove(0);
    assert_eq!(
        created.error_code,
        ResponseError::InvalidConfig.code(),
        "{:?}",
        created.error_message
    );
    let ok = create_with_configs(&mut c, "local", 1, &[("remote.storage.enable", "false")]).await;
    assert_eq!(ok.topics[0].error_code, 0);
    let (code, message) = alter(
        &mut c,
        "local",
        &[("remote.storage.enable", 0, Some("TRUE"))],
        false,
    )
    .await;
    assert_eq!(code, ResponseError::InvalidConfig.code(), "{message}");
    assert!(message.contains("remote.storage.enable"), "{message}");
    let (code, _) = alter(&mut c, "local", &[("preallocate", 0, Some("maybe"))], false).await;
    assert_eq!(code, ResponseError::InvalidConfig.code());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_configs_says_which_settings_gregor_does_not_apply() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let created = create_with_configs(
        &mut c,
        "kafka-style",
        1,
        &[
            ("compression.lz4.level", "12"),
            ("file.delete.delay.ms", "1000"),
            ("preallocate", "true"),
        ],
    )
    .await;
    assert_eq!(created.topics[0].error_code, 0, "accepted, as Kafka does");
    let r = describe(&mut c, TOPIC, "kafka-style", None, 4).await;
    for name in [
        "compression.lz4.level",
        "file.delete.delay.ms",
        "preallocate",
    ] {
        let entry = r
            .configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .unwrap_or_else(|| panic!("{name} described"));
        let doc = entry
            .documentation
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default();
        assert!(doc.starts_with("Not appl"), "{name}: {doc}");
        assert_eq!(entry.config_source, 1, "{name} is kept as set");
    }
    let remote = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == "remote.storage.enable")
        .and_then(|e| e.documentation.as_ref())
        .map(|d| d.to_string())
        .unwrap_or_default();
    assert!(remote.contains("only false"), "{remote}");
}

/// Produces one record with `acks`; returns the partition's error code.
async fn produce_code(c: &mut harness::Client, topic: &str, acks: i16) -> i16 {
    let req = produce_request(topic, Uuid::nil(), 0, &simple_batch(1, 10, 1000), acks, 9);
    let resp = c.call(&req, 9).await;
    resp.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_above_the_replica_count_refuses_acks_all() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    // Creation is allowed, as in Kafka.
    let created = create_with_configs(&mut c, "durable", 1, &[("min.insync.replicas", "2")]).await;
    assert_eq!(created.topics[0].error_code, 0);
    assert_eq!(
        produce_code(&mut c, "durable", -1).await,
        ResponseError::NotEnoughReplicas.code()
    );
    // acks=1 does not ask for the in-sync replicas.
    assert_eq!(produce_code(&mut c, "durable", 1).await, 0);
    let log = b.broker.context().partition("durable", 0).unwrap();
    assert_eq!(log.log_end_offset(), 1, "the refused batch was not written");
    let (code, _) = alter(
        &mut c,
        "durable",
        &[("min.insync.replicas", 0, Some("1"))],
        false,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(produce_code(&mut c, "durable", -1).await, 0);
    drop(c);
    // The broker-level default (Kafka's `min.insync.replicas` in server.properties) too.
    let b = harness::start(&[("min.insync.replicas", "2")]).await;
    let mut c = b.client().await;
    create(&mut c, "strict", 1).await;
    assert_eq!(
        produce_code(&mut c, "strict", -1).await,
        ResponseError::NotEnoughReplicas.code()
    );
}
