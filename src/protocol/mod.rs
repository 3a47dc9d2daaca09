//! The protocol layer: turns one request frame into one (possibly deferred) response frame.
//!
//! Handlers never see sockets. The connection hands [`handle_frame`] a frame; it validates the
//! header against the advertised versions, decodes the body synchronously (bounded by the frame
//! size, see `alloc_guard`), runs the handler and encodes its answer. Work that must wait (a
//! produce waiting for fsync, a long-polling fetch) comes back as a spawned task, so that later
//! requests on the same connection proceed while the connection writes responses in order.

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
    /// Send nothing (acks=0 produce).
    Silent,
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
pub fn handle_frame(ctx: &Arc<BrokerContext>, mut frame: Bytes) -> Outcome {
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
    if let Err(e) = header::decode_header(&mut frame, key, version) {
        return Outcome::Close(format!("{key:?} v{version}: bad request header: {e}"));
    }
    let corr = prefix.correlation_id;
    match key {
        ApiKey::ApiVersions => {
            run::<m::ApiVersionsRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::api_versions::handle(c, r, v))
            })
        }
        ApiKey::Metadata => run::<m::MetadataRequest, _>(ctx, frame, corr, version, |c, r, v| {
            Reply::Now(handlers::metadata::handle(c, r, v))
        }),
        ApiKey::Produce => {
            run::<m::ProduceRequest, _>(ctx, frame, corr, version, handlers::produce::handle)
        }
        ApiKey::Fetch => {
            run::<m::FetchRequest, _>(ctx, frame, corr, version, handlers::fetch::handle)
        }
        ApiKey::ListOffsets => {
            run::<m::ListOffsetsRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::list_offsets::handle(c, r, v))
            })
        }
        ApiKey::CreateTopics => {
            run::<m::CreateTopicsRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::create_topics::handle(c, r, v))
            })
        }
        ApiKey::DeleteTopics => {
            run::<m::DeleteTopicsRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::delete_topics::handle(c, r, v))
            })
        }
        ApiKey::InitProducerId => {
            run::<m::InitProducerIdRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::init_producer_id::handle(c, r, v))
            })
        }
        ApiKey::OffsetForLeaderEpoch => {
            run::<m::OffsetForLeaderEpochRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::offset_for_leader_epoch::handle(c, r, v))
            })
        }
        ApiKey::DescribeCluster => {
            run::<m::DescribeClusterRequest, _>(ctx, frame, corr, version, |c, r, v| {
                Reply::Now(handlers::describe_cluster::handle(c, r, v))
            })
        }
        other => Outcome::Close(format!("{other:?} is advertised but has no handler")),
    }
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
    let request = match Req::decode(&mut body, version) {
        Ok(r) => r,
        Err(e) => return Outcome::Close(format!("v{version} request body does not decode: {e}")),
    };
    if !header::fully_consumed(&body) {
        return Outcome::Close(format!(
            "v{version} request has {} trailing bytes",
            body.len()
        ));
    }
    match handler(ctx, request, version) {
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
