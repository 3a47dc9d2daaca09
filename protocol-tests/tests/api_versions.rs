//! ApiVersions: the advertised table, every version, and the v0 fallback for unknown versions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed assumption is a failed test, and a print is a diagnostic"
)]

#[global_allocator]
static ALLOCATOR: gregor::alloc_guard::GuardedAllocator = gregor::alloc_guard::GuardedAllocator;

#[path = "../../tests/it/harness.rs"]
#[allow(
    dead_code,
    reason = "shared with tests/it; each test binary uses part of it"
)]
mod harness;

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::Decodable;

use crate::harness::{s, Client};

/// The advertised table as (api key, min, max), sorted by key: a literal on purpose, so that a
/// change to `gregor::protocol::versions::SUPPORTED` must be mirrored here deliberately rather than
/// checked against itself.
const EXPECTED_TABLE: &[(i16, i16, i16)] = &[
    (0, 3, 13), // Produce
    (1, 4, 17), // Fetch
    (2, 1, 10), // ListOffsets
    (3, 0, 13), // Metadata
    (8, 2, 9),  // OffsetCommit
    (9, 1, 9),  // OffsetFetch
    (10, 0, 6), // FindCoordinator
    (11, 0, 9), // JoinGroup
    (12, 0, 4), // Heartbeat
    (13, 0, 5), // LeaveGroup
    (14, 0, 5), // SyncGroup
    (15, 0, 5), // DescribeGroups
    (16, 0, 5), // ListGroups
    (18, 0, 4), // ApiVersions
    (19, 2, 7), // CreateTopics
    (20, 1, 6), // DeleteTopics
    (21, 0, 2), // DeleteRecords
    (22, 0, 5), // InitProducerId
    (23, 2, 4), // OffsetForLeaderEpoch
    (24, 0, 5), // AddPartitionsToTxn
    (25, 0, 4), // AddOffsetsToTxn
    (26, 0, 4), // EndTxn
    (27, 1, 1), // WriteTxnMarkers
    (28, 0, 5), // TxnOffsetCommit
    (29, 1, 3), // DescribeAcls
    (30, 1, 3), // CreateAcls
    (31, 1, 3), // DeleteAcls
    (32, 1, 4), // DescribeConfigs
    (33, 0, 2), // AlterConfigs
    (35, 1, 4), // DescribeLogDirs
    (37, 0, 3), // CreatePartitions
    (42, 0, 2), // DeleteGroups
    (43, 0, 2), // ElectLeaders
    (44, 0, 1), // IncrementalAlterConfigs
    (45, 0, 1), // AlterPartitionReassignments
    (46, 0, 0), // ListPartitionReassignments
    (47, 0, 0), // OffsetDelete
    (55, 0, 2), // DescribeQuorum
    (60, 0, 2), // DescribeCluster
    (61, 0, 0), // DescribeProducers
    (64, 0, 0), // UnregisterBroker
    (65, 0, 0), // DescribeTransactions
    (66, 0, 2), // ListTransactions
    (68, 0, 1), // ConsumerGroupHeartbeat
    (69, 0, 1), // ConsumerGroupDescribe
    (74, 0, 1), // ListConfigResources
    (75, 0, 0), // DescribeTopicPartitions
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_lists_exactly_the_supported_table() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    for version in 0..=4 {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(s("gregor-tests"))
            .with_client_software_version(s("1.0"));
        let resp = c.call(&req, version).await;
        assert_eq!(resp.error_code, 0, "v{version}");
        let mut got: Vec<(i16, i16, i16)> = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        got.sort_unstable();
        assert_eq!(got, EXPECTED_TABLE, "v{version}");
    }
}

/// `kafka-features describe` and the 4.x clients read feature levels from ApiVersions v3+:
/// v4 lists every supported feature, v3 only those whose minimum is above 0, and the finalized
/// list names the levels in force (level 0 features are left out, as Kafka does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_and_v4_carry_the_feature_levels() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(s("gregor-tests"))
        .with_client_software_version(s("1.0"));
    for (version, want_supported) in [
        (3, vec![("metadata.version", 7, 25)]),
        (
            4,
            vec![
                ("metadata.version", 7, 25),
                ("group.version", 0, 1),
                ("kraft.version", 0, 0),
                ("transaction.version", 0, 0),
            ],
        ),
    ] {
        let resp = c.call(&req, version).await;
        let supported: Vec<(String, i16, i16)> = resp
            .supported_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version, f.max_version))
            .collect();
        let want: Vec<(String, i16, i16)> = want_supported
            .into_iter()
            .map(|(n, lo, hi)| (n.to_string(), lo, hi))
            .collect();
        assert_eq!(supported, want, "v{version}");
        assert!(resp.finalized_features_epoch >= 0, "v{version}");
        let finalized: Vec<(String, i16, i16)> = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
            .collect();
        assert_eq!(
            finalized,
            vec![
                ("metadata.version".to_string(), 25, 25),
                ("group.version".to_string(), 1, 1)
            ],
            "v{version}"
        );
    }
    // v2 has no feature fields at all: the answer still decodes and lists the table.
    let resp: ApiVersionsResponse = c.call(&req, 2).await;
    assert!(resp.supported_features.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_version_gets_a_v0_answer_and_the_connection_stays_open() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    // A future ApiVersions v9 whose body we cannot know: header v2 bytes by hand.
    let mut frame = Vec::new();
    let body: Vec<u8> = [
        &18i16.to_be_bytes()[..], // api key ApiVersions
        &9i16.to_be_bytes(),      // version 9
        &77i32.to_be_bytes(),     // correlation id
        &(-1i16).to_be_bytes(),   // null client id
        &[0u8],                   // no tagged fields
        &[0xde, 0xad],            // body of unknown shape
    ]
    .concat();
    frame.extend_from_slice(&(body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&body);
    tokio::io::AsyncWriteExt::write_all(&mut c.stream, &frame)
        .await
        .unwrap();
    let mut resp = c.read_frame().await.expect("answered, not closed");
    assert_eq!(
        i32::from_be_bytes(resp[..4].try_into().unwrap()),
        77,
        "correlation id, header v0"
    );
    let _ = bytes::Buf::get_i32(&mut resp);
    let decoded = ApiVersionsResponse::decode(&mut resp, 0).expect("a v0 body");
    assert_eq!(decoded.error_code, 35, "UNSUPPORTED_VERSION");
    let entry = decoded
        .api_keys
        .iter()
        .find(|k| k.api_key == 18)
        .expect("ApiVersions listed");
    assert_eq!((entry.min_version, entry.max_version), (0, 4));
    // The client steps down and the same connection keeps working.
    let ok = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(ok.error_code, 0);
    let _ = Client::connect(b.addr()).await;
}
