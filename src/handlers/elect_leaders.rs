//! ElectLeaders (key 43, v0–2; `kafka-leader-election`): preferred elections move a
//! partition's leadership back to its first replica when that replica is live and in sync;
//! "unclean" elections (type 1) give a leaderless partition a live in-sync replica. Each new
//! leader is committed through the metadata quorum with the next leader epoch.
//!
//! A preferred replica that is fenced or out of sync is not elected
//! (PREFERRED_LEADER_NOT_AVAILABLE); an unclean election takes a live replica even out of sync
//! (it may lack acknowledged records: that is what the operator asks for), and there being none
//! is ELIGIBLE_LEADERS_NOT_AVAILABLE.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};

use super::str_bytes;
use crate::broker::BrokerContext;
use crate::metadata::{Election, ElectionKind};

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

pub fn handle(
    ctx: &Arc<BrokerContext>,
    request: ElectLeadersRequest,
    _version: i16,
) -> ElectLeadersResponse {
    let kind = match request.election_type {
        PREFERRED => ElectionKind::Preferred,
        UNCLEAN => ElectionKind::Unclean,
        _ => {
            return ElectLeadersResponse::default()
                .with_error_code(ResponseError::InvalidRequest.code())
        }
    };
    // Null means every partition; then partitions that need no election are left out, as
    // Kafka leaves them out.
    let everything = request.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match request.topic_partitions {
        Some(list) => list
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
        None => ctx
            .metadata
            .topics()
            .iter()
            .map(|t| (t.name.clone(), (0..t.partitions).collect()))
            .collect(),
    };
    let results = wanted
        .into_iter()
        .map(|(topic, partitions)| {
            let partition_result = partitions
                .into_iter()
                .map(|p| (p, elect(ctx, &topic, p, kind)))
                .filter(|(_, outcome)| {
                    !(everything && matches!(outcome, Err((ResponseError::ElectionNotNeeded, _))))
                })
                .map(|(p, outcome)| {
                    let answer = PartitionResult::default().with_partition_id(p);
                    match outcome {
                        Ok(()) => answer.with_error_message(None),
                        Err((e, message)) => answer
                            .with_error_code(e.code())
                            .with_error_message(Some(str_bytes(message))),
                    }
                })
                .collect();
            ReplicaElectionResult::default()
                .with_topic(TopicName(str_bytes(topic)))
                .with_partition_result(partition_result)
        })
        .filter(|r| !(everything && r.partition_result.is_empty()))
        .collect();
    ElectLeadersResponse::default().with_replica_election_results(results)
}

fn elect(
    ctx: &BrokerContext,
    topic: &str,
    partition: i32,
    kind: ElectionKind,
) -> Result<(), (ResponseError, String)> {
    match ctx.metadata.elect_leader(topic, partition, kind) {
        Ok(Election::Elected) => {
            tracing::info!(topic, partition, ?kind, "elected a new leader");
            Ok(())
        }
        Ok(Election::NotNeeded) => Err((
            ResponseError::ElectionNotNeeded,
            "the partition already has the leader this election would pick".into(),
        )),
        Ok(Election::PreferredNotAvailable) => Err((
            ResponseError::PreferredLeaderNotAvailable,
            "the preferred replica is not live and in sync".into(),
        )),
        Ok(Election::NoEligibleLeader) => Err((
            ResponseError::EligibleLeadersNotAvailable,
            "no live in-sync replica can take over".into(),
        )),
        Ok(Election::UnknownPartition) => Err((
            ResponseError::UnknownTopicOrPartition,
            format!("{topic}-{partition} does not exist"),
        )),
        Err(e) => Err((super::errors::metadata_error(&e), e.to_string())),
    }
}
