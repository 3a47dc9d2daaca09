//! DescribeQuorum (key 55): the metadata quorum as this node sees it — leader, term (Kafka's
//! leader epoch of `__cluster_metadata`), high watermark, and per voter its log end offset and
//! when it last answered the leader (`kafka-metadata-quorum describe --status --replication`).
//! Only the leader knows the voters' progress; another node reports -1 there, as Kafka does
//! for what a replica has not observed. v2 adds the voters' controller endpoints (KIP-853).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::cluster::VoterStatus;

/// The metadata log's name, the only partition DescribeQuorum may ask about.
const METADATA_TOPIC: &str = "__cluster_metadata";

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let status = ctx.metadata.quorum().status();
    let now = crate::common::clock::now_ms();
    let high_watermark = status.committed.map_or(-1, |c| c as i64);
    let replica = |v: &VoterStatus| {
        let last_fetch = v.last_contact.map_or(-1, |ago| {
            now - i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)
        });
        ReplicaState::default()
            .with_replica_id(BrokerId(v.id.get()))
            .with_log_end_offset(v.log_end_offset)
            .with_last_fetch_timestamp(last_fetch)
            .with_last_caught_up_timestamp(
                if v.log_end_offset >= high_watermark && high_watermark >= 0 {
                    last_fetch
                } else {
                    -1
                },
            )
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let answer = PartitionData::default().with_partition_index(p.partition_index);
                    if topic.topic_name.0.as_str() != METADATA_TOPIC || p.partition_index != 0 {
                        return answer
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_leader_id(BrokerId(-1))
                            .with_leader_epoch(-1)
                            .with_high_watermark(-1);
                    }
                    answer
                        .with_leader_id(BrokerId(status.leader.map_or(-1, |l| l.get())))
                        .with_leader_epoch(i32::try_from(status.term).unwrap_or(i32::MAX))
                        .with_high_watermark(high_watermark)
                        .with_current_voters(status.voters.iter().map(replica).collect())
                        .with_observers(status.observers.iter().map(replica).collect())
                })
                .collect();
            TopicData::default()
                .with_topic_name(TopicName(topic.topic_name.0.clone()))
                .with_partitions(partitions)
        })
        .collect();
    let response = DescribeQuorumResponse::default().with_topics(topics);
    if version < 2 {
        return response;
    }
    let listener = ctx
        .static_config
        .settings
        .get("controller.listener.names")
        .unwrap_or("CONTROLLER")
        .split(',')
        .next()
        .unwrap_or("CONTROLLER")
        .trim()
        .to_string();
    let nodes = status
        .voters
        .iter()
        .map(|v| {
            let endpoint = ctx
                .static_config
                .cluster
                .voters
                .get(&v.id)
                .cloned()
                .or_else(|| {
                    ctx.static_config
                        .cluster
                        .controller_listener
                        .map(|a| a.to_string())
                });
            let listeners = endpoint
                .and_then(|e| {
                    let (host, port) = e.rsplit_once(':')?;
                    Some(vec![Listener::default()
                        .with_name(str_bytes(listener.clone()))
                        .with_host(str_bytes(host.to_string()))
                        .with_port(port.parse().ok()?)])
                })
                .unwrap_or_default();
            Node::default()
                .with_node_id(BrokerId(v.id.get()))
                .with_listeners(listeners)
        })
        .collect();
    response.with_nodes(nodes)
}
