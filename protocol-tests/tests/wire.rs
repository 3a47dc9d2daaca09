//! Every advertised API and version on the wire. First, well-formed requests: each gets a
//! response that decodes, at the same version, as that API's response, with nothing trailing.
//! Then hostile input: the same requests mutated (huge and negative counts/lengths at every
//! position, every truncation, trailing garbage), and the fixed catalogue (zero-length frame,
//! oversized frame, short header, unknown key, unadvertised version, a client that leaves
//! mid-response). The broker must answer or close — never panic, abort or balloon — and keep
//! serving other connections.

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

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor::protocol::versions::SUPPORTED;
use gregor::records::testutil::simple_batch;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::harness::{s, Client};

fn encode<R: Encodable>(r: &R, v: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    r.encode(&mut b, v).expect("sample encodes");
    b.to_vec()
}

/// Sample request bodies for `key` at `version`: the default one and one with every array
/// populated, so counts sit at many different positions.
fn sample_bodies(key: ApiKey, v: i16) -> Vec<Vec<u8>> {
    let name = TopicName(s("t"));
    match key {
        ApiKey::Produce => {
            let p = if v >= 13 {
                TopicProduceData::default().with_topic_id(uuid::Uuid::from_u128(7))
            } else {
                TopicProduceData::default().with_name(name)
            };
            let p = p.with_partition_data(vec![PartitionProduceData::default()
                .with_records(Some(Bytes::from(simple_batch(2, 3, 1))))]);
            let empty = ProduceRequest::default().with_transactional_id(None);
            vec![
                encode(&empty, v),
                encode(&empty.clone().with_acks(1).with_topic_data(vec![p]), v),
            ]
        }
        ApiKey::Fetch => {
            let f = if v >= 13 {
                FetchTopic::default().with_topic_id(uuid::Uuid::from_u128(7))
            } else {
                FetchTopic::default().with_topic(name)
            };
            let f =
                f.with_partitions(vec![FetchPartition::default().with_partition_max_bytes(100)]);
            vec![
                encode(&FetchRequest::default(), v),
                encode(&FetchRequest::default().with_topics(vec![f]), v),
            ]
        }
        ApiKey::ListOffsets => {
            let t = ListOffsetsTopic::default()
                .with_name(name)
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]);
            vec![
                encode(&ListOffsetsRequest::default(), v),
                encode(&ListOffsetsRequest::default().with_topics(vec![t]), v),
            ]
        }
        ApiKey::Metadata => {
            let t = MetadataRequestTopic::default().with_name(Some(name));
            vec![
                encode(&MetadataRequest::default().with_topics(Some(vec![])), v),
                encode(&MetadataRequest::default().with_topics(Some(vec![t])), v),
            ]
        }
        ApiKey::ApiVersions if v >= 3 => {
            vec![encode(
                &ApiVersionsRequest::default()
                    .with_client_software_name(s("x"))
                    .with_client_software_version(s("1")),
                v,
            )]
        }
        ApiKey::ApiVersions => vec![encode(&ApiVersionsRequest::default(), v)],
        ApiKey::CreateTopics => {
            let t = CreatableTopic::default()
                .with_name(name)
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1")))]);
            vec![
                encode(&CreateTopicsRequest::default(), v),
                encode(
                    &CreateTopicsRequest::default()
                        .with_topics(vec![t])
                        .with_validate_only(true),
                    v,
                ),
            ]
        }
        ApiKey::DeleteTopics if v >= 6 => vec![encode(
            &DeleteTopicsRequest::default()
                .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(TopicName(s("absent"))))]),
            v,
        )],
        ApiKey::DeleteTopics => vec![encode(
            &DeleteTopicsRequest::default().with_topic_names(vec![TopicName(s("absent"))]),
            v,
        )],
        ApiKey::InitProducerId => vec![
            encode(&InitProducerIdRequest::default(), v),
            encode(
                &InitProducerIdRequest::default().with_transactional_id(None),
                v,
            ),
        ],
        ApiKey::OffsetForLeaderEpoch => {
            let t = OffsetForLeaderTopic::default()
                .with_topic(name)
                .with_partitions(vec![OffsetForLeaderPartition::default()]);
            vec![encode(
                &OffsetForLeaderEpochRequest::default().with_topics(vec![t]),
                v,
            )]
        }
        ApiKey::DescribeCluster => vec![encode(&DescribeClusterRequest::default(), v)],
        ApiKey::ElectLeaders => {
            let t = elect_leaders_request::TopicPartitions::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![0, 7]);
            vec![
                encode(&ElectLeadersRequest::default(), v),
                encode(
                    &ElectLeadersRequest::default()
                        .with_election_type(if v >= 1 { 1 } else { 0 })
                        .with_topic_partitions(Some(vec![t])),
                    v,
                ),
            ]
        }
        // Topic "t" does not exist: UNKNOWN_TOPIC_OR_PARTITION, nothing changes.
        ApiKey::AlterPartitionReassignments => {
            let p = alter_partition_reassignments_request::ReassignablePartition::default()
                .with_partition_index(0)
                .with_replicas(Some(vec![BrokerId(1), BrokerId(7)]));
            let cancel = alter_partition_reassignments_request::ReassignablePartition::default()
                .with_partition_index(3)
                .with_replicas(None);
            vec![
                encode(&AlterPartitionReassignmentsRequest::default(), v),
                encode(
                    &AlterPartitionReassignmentsRequest::default().with_topics(vec![
                        alter_partition_reassignments_request::ReassignableTopic::default()
                            .with_name(TopicName(s("t")))
                            .with_partitions(vec![p, cancel]),
                    ]),
                    v,
                ),
            ]
        }
        ApiKey::ListPartitionReassignments => vec![
            encode(&ListPartitionReassignmentsRequest::default(), v),
            encode(
                &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 9]),
                ])),
                v,
            ),
        ],
        // Broker 42 is not registered: the answer is BROKER_ID_NOT_REGISTERED, nothing changes.
        ApiKey::UnregisterBroker => vec![encode(
            &UnregisterBrokerRequest::default().with_broker_id(BrokerId(42)),
            v,
        )],
        ApiKey::DescribeQuorum => {
            let t = describe_quorum_request::TopicData::default()
                .with_topic_name(TopicName(s("__cluster_metadata")))
                .with_partitions(vec![describe_quorum_request::PartitionData::default()]);
            vec![
                encode(&DescribeQuorumRequest::default(), v),
                encode(&DescribeQuorumRequest::default().with_topics(vec![t]), v),
            ]
        }
        ApiKey::DescribeConfigs => {
            let r = describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configuration_keys(Some(vec![s("retention.ms")]));
            vec![
                encode(&DescribeConfigsRequest::default(), v),
                encode(
                    &DescribeConfigsRequest::default().with_resources(vec![r]),
                    v,
                ),
            ]
        }
        ApiKey::AlterConfigs => {
            let r = alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1")))]);
            vec![encode(
                &AlterConfigsRequest::default()
                    .with_resources(vec![r])
                    .with_validate_only(true),
                v,
            )]
        }
        ApiKey::DeleteRecords => {
            let t = delete_records_request::DeleteRecordsTopic::default()
                .with_name(TopicName(s("absent")))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default().with_offset(0),
                ]);
            vec![
                encode(&DeleteRecordsRequest::default(), v),
                encode(&DeleteRecordsRequest::default().with_topics(vec![t]), v),
            ]
        }
        ApiKey::CreatePartitions => {
            let t = create_partitions_request::CreatePartitionsTopic::default()
                .with_name(TopicName(s("t")))
                .with_count(2)
                .with_assignments(Some(vec![
                    create_partitions_request::CreatePartitionsAssignment::default()
                        .with_broker_ids(vec![BrokerId(1)]),
                ]));
            vec![encode(
                &CreatePartitionsRequest::default()
                    .with_topics(vec![t])
                    .with_validate_only(true),
                v,
            )]
        }
        ApiKey::DescribeLogDirs => {
            let t = describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![0, 1]);
            vec![
                encode(&DescribeLogDirsRequest::default().with_topics(None), v),
                encode(
                    &DescribeLogDirsRequest::default().with_topics(Some(vec![t])),
                    v,
                ),
            ]
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("1"))),
                ]);
            vec![encode(
                &IncrementalAlterConfigsRequest::default()
                    .with_resources(vec![r])
                    .with_validate_only(true),
                v,
            )]
        }
        ApiKey::FindCoordinator if v >= 4 => vec![encode(
            &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g"), s("h")]),
            v,
        )],
        ApiKey::FindCoordinator => vec![encode(
            &FindCoordinatorRequest::default().with_key(s("g")),
            v,
        )],
        ApiKey::JoinGroup => {
            let r = JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_session_timeout_ms(6000)
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
                )
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"meta"))]);
            let r = if v >= 1 {
                r.with_rebalance_timeout_ms(1000)
            } else {
                r
            };
            vec![encode(&r, v)]
        }
        ApiKey::SyncGroup => vec![encode(
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(1)
                .with_member_id(s("m"))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s("m"))
                        .with_assignment(Bytes::from_static(b"a")),
                ]),
            v,
        )],
        ApiKey::Heartbeat => vec![encode(
            &HeartbeatRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_generation_id(1)
                .with_member_id(s("m")),
            v,
        )],
        ApiKey::LeaveGroup if v >= 3 => vec![encode(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_members(vec![
                    leave_group_request::MemberIdentity::default().with_member_id(s("m"))
                ]),
            v,
        )],
        ApiKey::LeaveGroup => vec![encode(
            &LeaveGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(s("m")),
            v,
        )],
        ApiKey::OffsetCommit => {
            let t = offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(name)
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(1),
                ]);
            vec![encode(
                &OffsetCommitRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(vec![t]),
                v,
            )]
        }
        ApiKey::OffsetFetch if v >= 8 => {
            let t = offset_fetch_request::OffsetFetchRequestTopics::default()
                .with_name(name)
                .with_partition_indexes(vec![0, 1]);
            vec![encode(
                &OffsetFetchRequest::default().with_groups(vec![
                    offset_fetch_request::OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s("g")))
                        .with_topics(Some(vec![t])),
                ]),
                v,
            )]
        }
        ApiKey::OffsetFetch => {
            let t = offset_fetch_request::OffsetFetchRequestTopic::default()
                .with_name(name)
                .with_partition_indexes(vec![0, 1]);
            vec![encode(
                &OffsetFetchRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(Some(vec![t])),
                v,
            )]
        }
        ApiKey::DescribeGroups => vec![encode(
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("h"))]),
            v,
        )],
        ApiKey::ListGroups if v >= 4 => vec![encode(
            &ListGroupsRequest::default().with_states_filter(vec![s("Stable"), s("Empty")]),
            v,
        )],
        ApiKey::ListGroups => vec![encode(&ListGroupsRequest::default(), v)],
        ApiKey::DeleteGroups => vec![encode(
            &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s("absent"))]),
            v,
        )],
        ApiKey::OffsetDelete => vec![encode(
            &OffsetDeleteRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(name)
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default(),
                        ]),
                ]),
            v,
        )],
        ApiKey::ConsumerGroupHeartbeat => vec![
            encode(
                &ConsumerGroupHeartbeatRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_member_id(s("m"))
                    .with_rebalance_timeout_ms(1000)
                    .with_subscribed_topic_names(Some(vec![name.clone()]))
                    .with_server_assignor(Some(s("uniform")))
                    .with_topic_partitions(Some(vec![
                        consumer_group_heartbeat_request::TopicPartitions::default()
                            .with_partitions(vec![0, 1]),
                    ])),
                v,
            ),
            encode(&ConsumerGroupHeartbeatRequest::default(), v),
        ],
        ApiKey::ConsumerGroupDescribe => vec![encode(
            &ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![GroupId(s("g")), GroupId(s("h"))]),
            v,
        )],
        ApiKey::AddPartitionsToTxn if v >= 4 => {
            let t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name)
                .with_partitions(vec![0, 1]);
            let txn = add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(1))
                .with_verify_only(true)
                .with_topics(vec![t]);
            vec![encode(
                &AddPartitionsToTxnRequest::default().with_transactions(vec![txn]),
                v,
            )]
        }
        ApiKey::AddPartitionsToTxn => {
            let t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(name)
                .with_partitions(vec![0]);
            vec![encode(
                &AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(s("tx")))
                    .with_v3_and_below_producer_id(ProducerId(1))
                    .with_v3_and_below_topics(vec![t]),
                v,
            )]
        }
        ApiKey::AddOffsetsToTxn => vec![encode(
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(1))
                .with_group_id(GroupId(s("g"))),
            v,
        )],
        ApiKey::EndTxn => vec![encode(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(1))
                .with_committed(true),
            v,
        )],
        ApiKey::WriteTxnMarkers => vec![encode(
            &WriteTxnMarkersRequest::default().with_markers(vec![
                write_txn_markers_request::WritableTxnMarker::default()
                    .with_producer_id(ProducerId(1))
                    .with_transaction_result(true)
                    .with_topics(vec![
                        write_txn_markers_request::WritableTxnMarkerTopic::default()
                            .with_name(name.clone())
                            .with_partition_indexes(vec![0]),
                    ]),
            ]),
            v,
        )],
        ApiKey::TxnOffsetCommit => {
            let t = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                .with_name(name)
                .with_partitions(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_committed_offset(1),
                ]);
            vec![encode(
                &TxnOffsetCommitRequest::default()
                    .with_transactional_id(TransactionalId(s("tx")))
                    .with_group_id(GroupId(s("g")))
                    .with_producer_id(ProducerId(1))
                    .with_topics(vec![t]),
                v,
            )]
        }
        ApiKey::DescribeTransactions => vec![encode(
            &DescribeTransactionsRequest::default()
                .with_transactional_ids(vec![TransactionalId(s("tx"))]),
            v,
        )],
        ApiKey::ListTransactions => vec![encode(
            &ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("Nonsense")])
                .with_producer_id_filters(vec![ProducerId(1)])
                .with_duration_filter(if v >= 1 { 10 } else { -1 }),
            v,
        )],
        ApiKey::DescribeProducers => vec![encode(
            &DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(name)
                    .with_partition_indexes(vec![0, 1]),
            ]),
            v,
        )],
        ApiKey::DescribeTopicPartitions => vec![encode(
            &DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    describe_topic_partitions_request::TopicRequest::default().with_name(name),
                ])
                .with_response_partition_limit(1)
                .with_cursor(Some(
                    describe_topic_partitions_request::Cursor::default()
                        .with_topic_name(TopicName(s("zzz")))
                        .with_partition_index(-3),
                )),
            v,
        )],
        ApiKey::ListConfigResources => vec![encode(
            &ListConfigResourcesRequest::default().with_resource_types(if v >= 1 {
                vec![2, 99]
            } else {
                Vec::new()
            }),
            v,
        )],
        ApiKey::DescribeAcls => vec![encode(
            &DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
            v,
        )],
        ApiKey::CreateAcls => vec![encode(
            &CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]),
            v,
        )],
        ApiKey::DeleteAcls => vec![encode(
            &DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ]),
            v,
        )],
        other => panic!("{other:?} is advertised but has no hostile-test sample: add one"),
    }
}

/// The request header for `key`/`version` with correlation id 1.
fn header(key: ApiKey, v: i16) -> Vec<u8> {
    let h = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(v)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("hostile")));
    encode_header(&h, key.request_header_version(v))
}

fn encode_header(h: &RequestHeader, hv: i16) -> Vec<u8> {
    let mut b = BytesMut::new();
    h.encode(&mut b, hv).expect("header encodes");
    b.to_vec()
}

/// Every mutation of `body` that attacks a length field or the frame's end.
fn mutations(body: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let patterns: [&[u8]; 5] = [
        &[0x7f, 0xff, 0xff, 0xff],       // int32 max count/length
        &[0x80, 0x00, 0x00, 0x00],       // int32 min (negative)
        &[0xff, 0xff, 0xff, 0xfe],       // -2
        &[0xff, 0xff, 0xff, 0xff, 0x0f], // varint u32 max (compact count)
        &[0xff, 0x7f],                   // int16 max (string length)
    ];
    for pos in 0..=body.len() {
        for p in patterns {
            let mut m = body[..pos].to_vec();
            m.extend_from_slice(p);
            if pos + p.len() < body.len() {
                m.extend_from_slice(&body[pos + p.len()..]);
            }
            out.push(m);
        }
        if pos < body.len() {
            out.push(body[..pos].to_vec()); // truncated
        }
    }
    let mut trailing = body.to_vec();
    trailing.extend_from_slice(b"garbage!");
    out.push(trailing);
    out
}

/// How long one hostile frame (and the probe behind it) may go without an answer or a close.
const HOSTILE_PATIENCE: Duration = Duration::from_secs(10);

/// Sends one frame on a fresh connection, then an ApiVersions probe, and waits for the broker to
/// answer the probe or close the connection: the Kafka-shaped reactions to a bad request (an
/// error-code answer is followed by the probe's answer; a request Kafka cannot parse closes the
/// connection). Anything else within `HOSTILE_PATIENCE`, a hang with the connection open, is
/// returned as an error naming the frame.
async fn send_hostile(addr: std::net::SocketAddr, frame_body: Vec<u8>) -> Result<(), String> {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        panic!("broker stopped accepting")
    };
    let mut frame = Vec::with_capacity(frame_body.len() + 64);
    frame.extend_from_slice(&(frame_body.len() as i32).to_be_bytes());
    frame.extend_from_slice(&frame_body);
    frame.extend_from_slice(&Client::frame(&ApiVersionsRequest::default(), 0, 424242));
    if stream.write_all(&frame).await.is_err() {
        return Ok(()); // closed already
    }
    let reacted = tokio::time::timeout(HOSTILE_PATIENCE, async {
        let mut buf = vec![0u8; 64 * 1024];
        let mut seen = Vec::new();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == 424242i32.to_be_bytes()) {
                        return;
                    }
                }
            }
        }
    })
    .await;
    reacted.map_err(|_| {
        format!(
            "neither answered nor closed within {HOSTILE_PATIENCE:?}: frame {}",
            hex(&frame_body)
        )
    })
}

/// True if `frame_body` (header and body) is a well-formed request that Kafka itself may hold
/// unanswered for longer than `HOSTILE_PATIENCE`, so that silence is not a fault: a JoinGroup
/// (Kafka answers it when the group's rebalance completes, bounded only by the largest
/// `rebalance_timeout_ms` any member declared, and the sweep's other frames join the same group
/// with mutated timeouts up to `i32::MAX`), or a Fetch whose `max_wait_ms` exceeds the patience.
/// Anything that does not decode must be answered or closed: Kafka closes on a parse error.
fn may_park(key: ApiKey, version: i16, frame_body: &[u8]) -> bool {
    use kafka_protocol::protocol::Decodable;
    let mut buf = Bytes::copy_from_slice(frame_body);
    if RequestHeader::decode(&mut buf, key.request_header_version(version)).is_err() {
        return false;
    }
    match key {
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut buf, version).is_ok(),
        ApiKey::Fetch => FetchRequest::decode(&mut buf, version)
            .is_ok_and(|r| i64::from(r.max_wait_ms) >= HOSTILE_PATIENCE.as_millis() as i64),
        _ => false,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_frames_for_every_advertised_api_and_version() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    harness::create(&mut c, "t", 1).await;
    let addr = b.addr();
    let limit = Arc::new(Semaphore::new(16));
    let mut tasks = tokio::task::JoinSet::new();
    let mut count = 0usize;
    for &(key, min, max) in SUPPORTED {
        for v in min..=max {
            let h = header(key, v);
            for body in sample_bodies(key, v) {
                for m in mutations(&body) {
                    let mut frame = h.clone();
                    frame.extend_from_slice(&m);
                    let permit = limit.clone().acquire_owned().await.unwrap();
                    count += 1;
                    tasks.spawn(async move {
                        let r = match send_hostile(addr, frame.clone()).await {
                            Err(_) if may_park(key, v, &frame) => Ok(()),
                            r => r.map_err(|e| format!("{key:?} v{v}: {e}")),
                        };
                        drop(permit);
                        r
                    });
                }
            }
        }
    }
    let mut hung = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r.expect("no hostile task panicked") {
            hung.push(e);
        }
    }
    assert!(
        hung.is_empty(),
        "{} hostile frames got neither an answer nor a close:\n{}",
        hung.len(),
        hung.join("\n")
    );
    assert!(count > 5_000, "the sweep covered {count} frames");
    eprintln!("hostile sweep: {count} mutated frames over every advertised API and version");
    // Still serving, correctly.
    let mut c = b.client().await;
    let ok = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(ok.error_code, 0);
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert!(md
        .topics
        .iter()
        .any(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some("t")));
    // Hostile counts reserved address space, never resident memory.
    let rss = rss_kib();
    assert!(
        rss < 1024 * 1024,
        "resident memory stayed bounded: {rss} KiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_catalogue_of_bad_frames() {
    let b = harness::start(&[("socket.request.max.bytes", "100000")]).await;
    let addr = b.addr();
    let raw = |bytes: Vec<u8>| async move {
        let mut c = Client::connect(addr).await;
        c.stream.write_all(&bytes).await.unwrap();
        c
    };
    // Zero-length frame, negative size, frame above the cap, truncated header.
    for frame in [
        vec![0, 0, 0, 0],
        (-5i32).to_be_bytes().to_vec(),
        100_001i32.to_be_bytes().to_vec(),
        vec![0, 0, 0, 3, 0, 3, 0],
    ] {
        let mut c = raw(frame.clone()).await;
        assert!(c.closed_by_broker().await, "closed on {frame:?}");
    }
    // Unknown API key, and an unadvertised version of a known API: closed, as Kafka does.
    for (key, version) in [(999i16, 0i16), (3, 99), (0, 2), (1, 3)] {
        let mut body = Vec::new();
        body.extend_from_slice(&key.to_be_bytes());
        body.extend_from_slice(&version.to_be_bytes());
        body.extend_from_slice(&7i32.to_be_bytes());
        body.extend_from_slice(&(-1i16).to_be_bytes());
        let mut frame = (body.len() as i32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        let mut c = raw(frame).await;
        assert!(c.closed_by_broker().await, "closed on key {key} v{version}");
    }
    // A frame announced at the cap, then the client stalls and leaves: nothing held.
    let mut stalled = raw(99_999i32.to_be_bytes().to_vec()).await;
    stalled.stream.write_all(&[0u8; 100]).await.unwrap();
    drop(stalled);
    // A client that leaves in the middle of a large response.
    let mut c = Client::connect(addr).await;
    let id = harness::create(&mut c, "big", 1).await.topics[0].topic_id;
    for _ in 0..20 {
        let batch = simple_batch(1, 90_000, 1);
        harness::produce(&mut c, "big", id, 0, &batch, 9).await;
    }
    let mut leaver = Client::connect(addr).await;
    leaver
        .send(
            &harness::fetch_request("big", id, 0, 0, 0, 10 << 20, 12),
            12,
        )
        .await;
    drop(leaver);
    // A second request before the first is answered is served in order (pipelining).
    let a = c.send(&ApiVersionsRequest::default(), 3).await;
    let m = c
        .send(&MetadataRequest::default().with_topics(None), 1)
        .await;
    assert_eq!(c.receive::<ApiVersionsRequest>(a, 3).await.error_code, 0);
    assert_eq!(c.receive::<MetadataRequest>(m, 1).await.topics.len(), 1);
}

/// The exact frame from PROTOCOL.md §3.4: a MetadataRequest v1 whose topic count is 0x7fffffff.
/// Without the guarded allocator this asks the system for ~150 GB and aborts the process; with it
/// the decoder runs out of bytes and returns an ordinary error. This test process installs the
/// same allocator as the broker, so reaching the assertion at all is the proof.
#[test]
fn hostile_count_decodes_to_an_error_instead_of_aborting() {
    use kafka_protocol::protocol::Decodable;
    for version in [1i16, 12] {
        let body: &[u8] = if version < 9 {
            &[0x7f, 0xff, 0xff, 0xff]
        } else {
            &[0xff, 0xff, 0xff, 0xff, 0x0f]
        };
        let mut buf = Bytes::copy_from_slice(body);
        assert!(
            MetadataRequest::decode(&mut buf, version).is_err(),
            "v{version}"
        );
    }
    assert!(rss_kib() < 1024 * 1024, "nothing became resident");
}

/// Decodes a response frame body (after the size) as `key`'s response at `version`; returns the
/// correlation id. Every advertised API must be listed here.
fn decode_response(key: ApiKey, version: i16, mut frame: Bytes) -> anyhow::Result<i32> {
    use kafka_protocol::protocol::{Decodable, HeaderVersion};
    macro_rules! as_response {
        ($t:ty) => {{
            let header = ResponseHeader::decode(&mut frame, <$t>::header_version(version))?;
            <$t>::decode(&mut frame, version)?;
            header.correlation_id
        }};
    }
    let correlation_id = match key {
        ApiKey::Produce => as_response!(ProduceResponse),
        ApiKey::Fetch => as_response!(FetchResponse),
        ApiKey::ListOffsets => as_response!(ListOffsetsResponse),
        ApiKey::Metadata => as_response!(MetadataResponse),
        ApiKey::ApiVersions => as_response!(ApiVersionsResponse),
        ApiKey::CreateTopics => as_response!(CreateTopicsResponse),
        ApiKey::DeleteTopics => as_response!(DeleteTopicsResponse),
        ApiKey::InitProducerId => as_response!(InitProducerIdResponse),
        ApiKey::OffsetForLeaderEpoch => as_response!(OffsetForLeaderEpochResponse),
        ApiKey::DescribeCluster => as_response!(DescribeClusterResponse),
        ApiKey::DescribeQuorum => as_response!(DescribeQuorumResponse),
        ApiKey::UnregisterBroker => as_response!(UnregisterBrokerResponse),
        ApiKey::ElectLeaders => as_response!(ElectLeadersResponse),
        ApiKey::AlterPartitionReassignments => as_response!(AlterPartitionReassignmentsResponse),
        ApiKey::ListPartitionReassignments => as_response!(ListPartitionReassignmentsResponse),
        ApiKey::DescribeConfigs => as_response!(DescribeConfigsResponse),
        ApiKey::AlterConfigs => as_response!(AlterConfigsResponse),
        ApiKey::IncrementalAlterConfigs => as_response!(IncrementalAlterConfigsResponse),
        ApiKey::DeleteRecords => as_response!(DeleteRecordsResponse),
        ApiKey::CreatePartitions => as_response!(CreatePartitionsResponse),
        ApiKey::DescribeLogDirs => as_response!(DescribeLogDirsResponse),
        ApiKey::FindCoordinator => as_response!(FindCoordinatorResponse),
        ApiKey::JoinGroup => as_response!(JoinGroupResponse),
        ApiKey::SyncGroup => as_response!(SyncGroupResponse),
        ApiKey::Heartbeat => as_response!(HeartbeatResponse),
        ApiKey::LeaveGroup => as_response!(LeaveGroupResponse),
        ApiKey::OffsetCommit => as_response!(OffsetCommitResponse),
        ApiKey::OffsetFetch => as_response!(OffsetFetchResponse),
        ApiKey::DescribeGroups => as_response!(DescribeGroupsResponse),
        ApiKey::ListGroups => as_response!(ListGroupsResponse),
        ApiKey::DeleteGroups => as_response!(DeleteGroupsResponse),
        ApiKey::OffsetDelete => as_response!(OffsetDeleteResponse),
        ApiKey::ConsumerGroupHeartbeat => as_response!(ConsumerGroupHeartbeatResponse),
        ApiKey::ConsumerGroupDescribe => as_response!(ConsumerGroupDescribeResponse),
        ApiKey::AddPartitionsToTxn => as_response!(AddPartitionsToTxnResponse),
        ApiKey::AddOffsetsToTxn => as_response!(AddOffsetsToTxnResponse),
        ApiKey::EndTxn => as_response!(EndTxnResponse),
        ApiKey::TxnOffsetCommit => as_response!(TxnOffsetCommitResponse),
        ApiKey::WriteTxnMarkers => as_response!(WriteTxnMarkersResponse),
        ApiKey::DescribeTransactions => as_response!(DescribeTransactionsResponse),
        ApiKey::ListTransactions => as_response!(ListTransactionsResponse),
        ApiKey::DescribeProducers => as_response!(DescribeProducersResponse),
        ApiKey::DescribeTopicPartitions => as_response!(DescribeTopicPartitionsResponse),
        ApiKey::ListConfigResources => as_response!(ListConfigResourcesResponse),
        ApiKey::DescribeAcls => as_response!(DescribeAclsResponse),
        ApiKey::CreateAcls => as_response!(CreateAclsResponse),
        ApiKey::DeleteAcls => as_response!(DeleteAclsResponse),
        other => anyhow::bail!("{other:?} is advertised but has no response type here: add it"),
    };
    anyhow::ensure!(
        frame.is_empty(),
        "{} trailing bytes after the {key:?} v{version} response",
        frame.len()
    );
    Ok(correlation_id)
}

/// True for a request the broker answers with silence (a Produce with acks=0).
fn silent(key: ApiKey, version: i16, body: &[u8]) -> bool {
    use kafka_protocol::protocol::Decodable;
    key == ApiKey::Produce
        && ProduceRequest::decode(&mut Bytes::copy_from_slice(body), version)
            .is_ok_and(|r| r.acks == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_advertised_api_and_version_answers_a_well_formed_request() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;
    harness::create(&mut c, "t", 1).await;
    let mut checked = 0;
    let mut answered = std::collections::HashSet::new();
    for &(key, min, max) in SUPPORTED {
        for v in min..=max {
            for body in sample_bodies(key, v) {
                let mut frame_body = header(key, v);
                frame_body.extend_from_slice(&body);
                let mut frame = (frame_body.len() as i32).to_be_bytes().to_vec();
                frame.extend_from_slice(&frame_body);
                c.stream.write_all(&frame).await.unwrap();
                if silent(key, v, &body) {
                    continue;
                }
                let response = c.read_frame().await.unwrap_or_else(|| {
                    panic!("{key:?} v{v}: connection closed on a valid request")
                });
                let corr = decode_response(key, v, response)
                    .unwrap_or_else(|e| panic!("{key:?} v{v}: response does not decode: {e}"));
                assert_eq!(corr, 1, "{key:?} v{v}");
                answered.insert((key as i16, v));
                checked += 1;
            }
        }
    }
    eprintln!("{checked} well-formed requests answered with decodable responses");
    let advertised: usize = SUPPORTED
        .iter()
        .map(|&(_, min, max)| (max - min + 1) as usize)
        .sum();
    assert_eq!(
        answered.len(),
        advertised,
        "every advertised API and version was answered"
    );
    // The connection is still in step after all of them.
    let ok = c.call(&ApiVersionsRequest::default(), 3).await;
    assert_eq!(ok.error_code, 0);
}
