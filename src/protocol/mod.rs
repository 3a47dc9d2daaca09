//! The protocol layer: turns one request frame into one (possibly deferred) response frame.
//!
//! Handlers never see sockets. The connection hands [`handle_frame`] a frame; it validates the
//! header against the advertised versions, decodes the body synchronously (bounded by the frame
//! size, see `alloc_guard`), runs the handler and encodes its answer. Work that must wait (a
//! produce waiting for fsync, a long-polling fetch) comes back as a spawned task, so that later
//! requests on the same connection proceed while the connection writes responses in order.

pub mod body;
pub mod frame;
pub mod header;
pub mod versions;

use std::future::Future;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ApiKey, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use tokio::task::JoinHandle;

use crate::broker::BrokerContext;
use crate::handlers;

/// What the connection should do with one request.
pub enum Outcome {
    /// Send this encoded frame (size prefix included).
    Ready(Bytes),
    /// Send what this task produces, when it finishes; `None` from the task closes the connection.
    Later(JoinHandle<Option<Bytes>>),
    /// Send this frame made of bytes and file regions (zero-copy Fetch).
    ReadyBody(body::ResponseBody),
    /// Send the frame this task produces, when it finishes; `None` closes the connection.
    LaterBody(JoinHandle<Option<body::ResponseBody>>),
    /// Send nothing (acks=0 produce).
    Silent,
    /// The request runs on the blocking pool; the connection waits for this outcome before it
    /// reads the next request, so that requests which append keep their order (Produce).
    Ordered(JoinHandle<Outcome>),
    /// Close the connection, as Kafka does for unknown APIs, unadvertised versions, undecodable
    /// requests and failed acks=0 produces.
    Close(String),
}

/// What a handler returns: a response now, one later, or none.
pub enum Reply<R> {
    Now(R),
    Later(std::pin::Pin<Box<dyn Future<Output = R> + Send>>),
    /// acks=0: nothing to send.
    Nothing,
    /// acks=0 produce that failed: Kafka closes the connection so the client refreshes metadata.
    CloseConnection(String),
}

/// Handles one frame from a client.
/// `peer` is the client's address, reported as the member's host in DescribeGroups.
pub fn handle_frame(
    ctx: &Arc<BrokerContext>,
    mut frame: Bytes,
    peer: std::net::SocketAddr,
) -> Outcome {
    let Some(prefix) = header::peek_prefix(&frame) else {
        return Outcome::Close(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    };
    let Ok(key) = ApiKey::try_from(prefix.api_key) else {
        return Outcome::Close(format!("unknown API key {}", prefix.api_key));
    };
    if !versions::is_supported(key, prefix.api_version) {
        if key == ApiKey::ApiVersions {
            // Never close on ApiVersions: answer in v0 shape so the client can step down.
            return Outcome::Ready(handlers::api_versions::unsupported_version_frame(
                prefix.correlation_id,
            ));
        }
        return Outcome::Close(format!(
            "{key:?} v{} is not supported (advertised {:?})",
            prefix.api_version,
            versions::range(key)
        ));
    }
    let version = prefix.api_version;
    tracing::debug!(api = ?key, version, correlation_id = prefix.correlation_id, "request");
    let header = match header::decode_header(&mut frame, key, version) {
        Ok(h) => h,
        Err(e) => return Outcome::Close(format!("{key:?} v{version}: bad request header: {e}")),
    };
    // Group members are reported with the client id they connected with.
    let client_id = header.client_id.map(|c| c.to_string()).unwrap_or_default();
    // Kafka reports hosts the way Java prints an InetAddress: with a leading slash.
    let client_host = format!("/{}", peer.ip());
    let corr = prefix.correlation_id;
    match key {
        ApiKey::ApiVersions => run_now::<m::ApiVersionsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::api_versions::handle,
        ),
        ApiKey::Metadata => run_now_blocking::<m::MetadataRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::metadata::handle,
        ),
        ApiKey::Produce => produce(ctx, frame, corr, version),
        ApiKey::Fetch => run_framed::<m::FetchRequest>(ctx, frame, corr, version, |c, r, v| {
            handlers::fetch::handle_framed(c, r, v, corr)
        }),
        ApiKey::ListOffsets => run_now::<m::ListOffsetsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::list_offsets::handle,
        ),
        ApiKey::CreateTopics => run_now_blocking::<m::CreateTopicsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::create_topics::handle,
        ),
        ApiKey::DeleteTopics => run_now_blocking::<m::DeleteTopicsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::delete_topics::handle,
        ),
        ApiKey::InitProducerId => run_blocking::<m::InitProducerIdRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::init_producer_id::handle,
        ),
        ApiKey::AddPartitionsToTxn => run::<m::AddPartitionsToTxnRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::add_partitions_to_txn::handle,
        ),
        ApiKey::AddOffsetsToTxn => run::<m::AddOffsetsToTxnRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::add_offsets_to_txn::handle,
        ),
        ApiKey::EndTxn => {
            run::<m::EndTxnRequest, _>(ctx, frame, corr, version, handlers::end_txn::handle)
        }
        ApiKey::TxnOffsetCommit => run::<m::TxnOffsetCommitRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::txn_offset_commit::handle,
        ),
        ApiKey::WriteTxnMarkers => run::<m::WriteTxnMarkersRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::write_txn_markers::handle,
        ),
        ApiKey::OffsetForLeaderEpoch => run_now::<m::OffsetForLeaderEpochRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::offset_for_leader_epoch::handle,
        ),
        ApiKey::DescribeTransactions => run_now::<m::DescribeTransactionsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_transactions::handle,
        ),
        ApiKey::ListTransactions => run_now::<m::ListTransactionsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::list_transactions::handle,
        ),
        ApiKey::DescribeAcls => run_now::<m::DescribeAclsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::acls::handle_describe,
        ),
        ApiKey::CreateAcls => run_now::<m::CreateAclsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::acls::handle_create,
        ),
        ApiKey::DeleteAcls => run_now::<m::DeleteAclsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::acls::handle_delete,
        ),
        ApiKey::ListConfigResources => run_now::<m::ListConfigResourcesRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::list_config_resources::handle,
        ),
        ApiKey::DescribeTopicPartitions => run_now::<m::DescribeTopicPartitionsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_topic_partitions::handle,
        ),
        ApiKey::DescribeProducers => run_now::<m::DescribeProducersRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_producers::handle,
        ),
        ApiKey::AlterPartitionReassignments => {
            run_now_blocking::<m::AlterPartitionReassignmentsRequest, _>(
                ctx,
                frame,
                corr,
                version,
                handlers::reassignments::alter,
            )
        }
        ApiKey::ListPartitionReassignments => run_now::<m::ListPartitionReassignmentsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::reassignments::list,
        ),
        ApiKey::ElectLeaders => run_now_blocking::<m::ElectLeadersRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::elect_leaders::handle,
        ),
        ApiKey::UnregisterBroker => run_now_blocking::<m::UnregisterBrokerRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::unregister_broker::handle,
        ),
        ApiKey::DescribeQuorum => run_now::<m::DescribeQuorumRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_quorum::handle,
        ),
        ApiKey::DescribeCluster => run_now::<m::DescribeClusterRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_cluster::handle,
        ),
        ApiKey::DescribeConfigs => run_now::<m::DescribeConfigsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_configs::handle,
        ),
        ApiKey::AlterConfigs => run_now_blocking::<m::AlterConfigsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::alter_configs::handle_alter,
        ),
        ApiKey::IncrementalAlterConfigs => {
            run_now_blocking::<m::IncrementalAlterConfigsRequest, _>(
                ctx,
                frame,
                corr,
                version,
                handlers::alter_configs::handle_incremental,
            )
        }
        ApiKey::DeleteRecords => run_now_blocking::<m::DeleteRecordsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::delete_records::handle,
        ),
        ApiKey::CreatePartitions => run_now_blocking::<m::CreatePartitionsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::create_partitions::handle,
        ),
        ApiKey::DescribeLogDirs => run_now::<m::DescribeLogDirsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_log_dirs::handle,
        ),
        ApiKey::FindCoordinator => run::<m::FindCoordinatorRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::find_coordinator::handle,
        ),
        ApiKey::JoinGroup => {
            run_blocking::<m::JoinGroupRequest, _>(ctx, frame, corr, version, move |c, r, v| {
                handlers::join_group::handle(c, r, v, &client_id, &client_host)
            })
        }
        ApiKey::SyncGroup => run_blocking::<m::SyncGroupRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::sync_group::handle,
        ),
        ApiKey::Heartbeat => run_now_blocking::<m::HeartbeatRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::heartbeat::handle,
        ),
        ApiKey::LeaveGroup => run_now_blocking::<m::LeaveGroupRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::leave_group::handle,
        ),
        ApiKey::OffsetCommit => run_blocking::<m::OffsetCommitRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::offset_commit::handle,
        ),
        ApiKey::OffsetFetch => run_now::<m::OffsetFetchRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::offset_fetch::handle,
        ),
        ApiKey::DescribeGroups => run_now::<m::DescribeGroupsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::describe_groups::handle,
        ),
        ApiKey::ListGroups => run_now::<m::ListGroupsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::list_groups::handle,
        ),
        ApiKey::DeleteGroups => run_blocking::<m::DeleteGroupsRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::delete_groups::handle,
        ),
        ApiKey::ConsumerGroupHeartbeat => run_now_blocking::<m::ConsumerGroupHeartbeatRequest, _>(
            ctx,
            frame,
            corr,
            version,
            move |c, r, v| {
                handlers::consumer_group_heartbeat::handle(c, r, v, &client_id, &client_host)
            },
        ),
        ApiKey::ConsumerGroupDescribe => run_now::<m::ConsumerGroupDescribeRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::consumer_group_describe::handle,
        ),
        ApiKey::OffsetDelete => run_blocking::<m::OffsetDeleteRequest, _>(
            ctx,
            frame,
            corr,
            version,
            handlers::offset_delete::handle,
        ),
        other => Outcome::Close(format!("{other:?} is advertised but has no handler")),
    }
}

/// Decodes a request body of type `Req`; an undecodable body closes the connection.
fn decode_request<Req: Decodable>(body: &mut Bytes, version: i16) -> Result<Req, Outcome> {
    let request = Req::decode(body, version)
        .map_err(|e| Outcome::Close(format!("v{version} request body does not decode: {e}")))?;
    if !header::fully_consumed(body) {
        // Kafka parses what the schema describes and ignores the rest; librdkafka >= 2.3 relies
        // on that (its all-topics Metadata v13 carries 3 stray bytes, librdkafka issue #5049).
        tracing::debug!(
            "v{version} request has {} trailing bytes; ignored",
            body.len()
        );
    }
    Ok(request)
}

/// [`run_blocking`] for a handler that always answers at once.
fn run_now_blocking<Req, Resp>(
    ctx: &Arc<BrokerContext>,
    body: Bytes,
    correlation_id: i32,
    version: i16,
    handler: impl FnOnce(&Arc<BrokerContext>, Req, i16) -> Resp + Send + 'static,
) -> Outcome
where
    Req: Decodable + Send + 'static,
    Resp: Encodable + HeaderVersion + Send + 'static,
{
    run_blocking(ctx, body, correlation_id, version, move |c, r, v| {
        Reply::Now(handler(c, r, v))
    })
}

/// Like [`run`], for handlers that touch the file system (create or delete topics, write the
/// metadata, append to an internal topic): the handler runs on tokio's blocking pool, never on
/// a runtime worker that serves other connections, and what it defers is awaited as usual.
/// Such handlers never reply `Nothing` (only acks=0 Produce does); if one did, the connection
/// would be closed.
fn run_blocking<Req, Resp>(
    ctx: &Arc<BrokerContext>,
    mut body: Bytes,
    correlation_id: i32,
    version: i16,
    handler: impl FnOnce(&Arc<BrokerContext>, Req, i16) -> Reply<Resp> + Send + 'static,
) -> Outcome
where
    Req: Decodable + Send + 'static,
    Resp: Encodable + HeaderVersion + Send + 'static,
{
    let request = match decode_request::<Req>(&mut body, version) {
        Ok(r) => r,
        Err(close) => return close,
    };
    let ctx = ctx.clone();
    Outcome::Later(tokio::spawn(async move {
        let reply = match tokio::task::spawn_blocking(move || handler(&ctx, request, version)).await
        {
            Ok(reply) => reply,
            Err(e) => {
                tracing::error!("v{version} request handler did not finish: {e}");
                return None;
            }
        };
        let resp = match reply {
            Reply::Now(resp) => resp,
            Reply::Later(fut) => fut.await,
            Reply::Nothing | Reply::CloseConnection(_) => return None,
        };
        match encode_response(correlation_id, version, &resp) {
            Ok(frame) => Some(frame),
            Err(e) => {
                tracing::error!("cannot encode v{version} response: {e}");
                None
            }
        }
    }))
}

/// [`run`] for a handler that always answers at once.
fn run_now<Req, Resp>(
    ctx: &Arc<BrokerContext>,
    body: Bytes,
    correlation_id: i32,
    version: i16,
    handler: impl FnOnce(&Arc<BrokerContext>, Req, i16) -> Resp,
) -> Outcome
where
    Req: Decodable,
    Resp: Encodable + HeaderVersion + Send + 'static,
{
    run(ctx, body, correlation_id, version, |c, r, v| {
        Reply::Now(handler(c, r, v))
    })
}

/// Decodes a request body of type `Req`, runs `handler`, and encodes what it replies.
fn run<Req, Resp>(
    ctx: &Arc<BrokerContext>,
    mut body: Bytes,
    correlation_id: i32,
    version: i16,
    handler: impl FnOnce(&Arc<BrokerContext>, Req, i16) -> Reply<Resp>,
) -> Outcome
where
    Req: Decodable,
    Resp: Encodable + HeaderVersion + Send + 'static,
{
    let request = match decode_request::<Req>(&mut body, version) {
        Ok(r) => r,
        Err(close) => return close,
    };
    reply_outcome(handler(ctx, request, version), correlation_id, version)
}

/// Produce: inline like [`run`], unless a batch needs record-level work (decompression and a
/// pass over its records: compacted topics, timestamp bounds, recompression), which is CPU work
/// that must not hold a runtime worker serving other connections. That request's handler runs
/// on tokio's blocking pool, and unlike [`run_blocking`] the connection waits for it — not for
/// what it defers, such as the fsync an acks=all produce waits on — before it reads the next
/// request: appends sent on one connection land in the order sent, as with Kafka's one request
/// at a time per connection.
fn produce(
    ctx: &Arc<BrokerContext>,
    mut body: Bytes,
    correlation_id: i32,
    version: i16,
) -> Outcome {
    let request = match decode_request::<m::ProduceRequest>(&mut body, version) {
        Ok(r) => r,
        Err(close) => return close,
    };
    if let Some(pending) = handlers::txn_verification::pending_for_produce(ctx, &request, version) {
        // Another broker coordinates the transaction: ask it first (KIP-890 verification),
        // still in order with this connection's other requests.
        let ctx = ctx.clone();
        return Outcome::Ordered(tokio::spawn(async move {
            let verdicts = handlers::txn_verification::verify(&ctx, pending).await;
            let appended = tokio::task::spawn_blocking(move || {
                let reply = handlers::produce::handle_verified(&ctx, request, version, &verdicts);
                reply_outcome(reply, correlation_id, version)
            })
            .await;
            appended.unwrap_or_else(|e| Outcome::Close(format!("produce task failed: {e}")))
        }));
    }
    if !handlers::produce::needs_record_work(ctx, &request, version) {
        let reply = handlers::produce::handle(ctx, request, version);
        return reply_outcome(reply, correlation_id, version);
    }
    let ctx = ctx.clone();
    Outcome::Ordered(tokio::task::spawn_blocking(move || {
        let reply = handlers::produce::handle(&ctx, request, version);
        reply_outcome(reply, correlation_id, version)
    }))
}

/// What the connection does with a handler's reply: encode it now, or when it is ready.
fn reply_outcome<Resp>(reply: Reply<Resp>, correlation_id: i32, version: i16) -> Outcome
where
    Resp: Encodable + HeaderVersion + Send + 'static,
{
    match reply {
        Reply::Now(resp) => match encode_response(correlation_id, version, &resp) {
            Ok(frame) => Outcome::Ready(frame),
            Err(e) => Outcome::Close(format!("cannot encode v{version} response: {e}")),
        },
        Reply::Later(fut) => Outcome::Later(tokio::spawn(async move {
            let resp = fut.await;
            match encode_response(correlation_id, version, &resp) {
                Ok(frame) => Some(frame),
                Err(e) => {
                    tracing::error!("cannot encode v{version} response: {e}");
                    None
                }
            }
        })),
        Reply::Nothing => Outcome::Silent,
        Reply::CloseConnection(why) => Outcome::Close(why),
    }
}

/// Like [`run`], for handlers that frame their response themselves as a
/// [`body::ResponseBody`] (zero-copy Fetch). An `Err` from the handler closes the connection.
fn run_framed<Req>(
    ctx: &Arc<BrokerContext>,
    mut body: Bytes,
    _correlation_id: i32,
    version: i16,
    handler: impl FnOnce(&Arc<BrokerContext>, Req, i16) -> Reply<Result<body::ResponseBody, String>>,
) -> Outcome
where
    Req: Decodable,
{
    let request = match decode_request::<Req>(&mut body, version) {
        Ok(r) => r,
        Err(close) => return close,
    };
    match handler(ctx, request, version) {
        Reply::Now(Ok(frame)) => Outcome::ReadyBody(frame),
        Reply::Now(Err(e)) => Outcome::Close(e),
        Reply::Later(fut) => Outcome::LaterBody(tokio::spawn(async move {
            match fut.await {
                Ok(frame) => Some(frame),
                Err(e) => {
                    tracing::error!("{e}");
                    None
                }
            }
        })),
        Reply::Nothing => Outcome::Silent,
        Reply::CloseConnection(why) => Outcome::Close(why),
    }
}

/// Encodes `[size][response header][body]` for `version` of the response type.
pub fn encode_response<R: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &R,
) -> anyhow::Result<Bytes> {
    let header_version = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let size = header.compute_size(header_version)? + response.compute_size(version)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(i32::try_from(size)?);
    header.encode(&mut buf, header_version)?;
    response.encode(&mut buf, version)?;
    Ok(buf.freeze())
}
