//! The Kafka wire as loadgen needs it: request frames encoded once with `kafka-protocol`, raw
//! response frames read off a socket, and the few one-shot admin calls (create a topic, ask
//! ApiVersions). Hot loops never go through here per message: they re-send pre-encoded frames.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, BrokerId, CreateTopicsRequest, RequestHeader, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Responses larger than this are treated as a protocol error rather than allocated.
const MAX_RESPONSE: usize = 512 * 1024 * 1024;

/// Encodes `request` at `version` into a complete size-prefixed frame.
pub fn frame<R: Request>(request: &R, version: i16, correlation_id: i32) -> Result<Bytes> {
    let key = ApiKey::try_from(R::KEY).map_err(|_| anyhow!("unknown api key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("gregor-loadgen")));
    let mut body = BytesMut::new();
    header.encode(&mut body, key.request_header_version(version))?;
    request.encode(&mut body, version)?;
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(i32::try_from(body.len())?);
    out.extend_from_slice(&body);
    Ok(out.freeze())
}

/// Reads one response frame (without its size prefix).
pub async fn read_frame<T: AsyncRead + Unpin>(rd: &mut T) -> Result<Bytes> {
    let size = rd.read_i32().await.context("reading response size")?;
    let size = usize::try_from(size).map_err(|_| anyhow!("negative frame size {size}"))?;
    if size > MAX_RESPONSE {
        bail!("response frame of {size} bytes");
    }
    let mut body = vec![0u8; size];
    rd.read_exact(&mut body)
        .await
        .context("reading response body")?;
    Ok(Bytes::from(body))
}

/// Decodes a response frame for request type `R` sent at `version`: (correlation id, body).
pub fn decode<R: Request>(mut frame: Bytes, version: i16) -> Result<(i32, R::Response)> {
    let hv = <R::Response as HeaderVersion>::header_version(version);
    let header = ResponseHeader::decode(&mut frame, hv)?;
    let resp = R::Response::decode(&mut frame, version)?;
    if frame.has_remaining() {
        bail!("{} trailing bytes in response", frame.remaining());
    }
    Ok((header.correlation_id, resp))
}

/// Connects with Nagle off: request/response traffic must not wait for delayed ACKs.
pub async fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends one request and waits for its response on `stream`.
pub async fn call<R: Request>(
    stream: &mut TcpStream,
    request: &R,
    version: i16,
) -> Result<R::Response> {
    stream.write_all(&frame(request, version, 1)?).await?;
    let (corr, resp) = decode::<R>(read_frame(stream).await?, version)?;
    if corr != 1 {
        bail!("unexpected correlation id {corr}");
    }
    Ok(resp)
}

/// Creates `topic` with `partitions` partitions; an existing topic (error 36) is fine.
pub async fn create_topic(addr: SocketAddr, topic: &str, partitions: i32) -> Result<()> {
    create_topic_on(addr, topic, partitions, &[]).await
}

/// [`create_topic`] with every partition on `replicas` (the first leads), or one replica
/// placed by the broker if `replicas` is empty.
pub async fn create_topic_on(
    addr: SocketAddr,
    topic: &str,
    partitions: i32,
    replicas: &[i32],
) -> Result<()> {
    let mut s = connect(addr).await?;
    let mut creatable =
        CreatableTopic::default().with_name(TopicName(StrBytes::from_string(topic.to_string())));
    creatable = if replicas.is_empty() {
        creatable
            .with_num_partitions(partitions)
            .with_replication_factor(1)
    } else {
        creatable
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(
                (0..partitions)
                    .map(|p| {
                        CreatableReplicaAssignment::default()
                            .with_partition_index(p)
                            .with_broker_ids(replicas.iter().map(|id| BrokerId(*id)).collect())
                    })
                    .collect(),
            )
    };
    let req = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(60_000);
    let resp = tokio::time::timeout(Duration::from_secs(120), call(&mut s, &req, 7))
        .await
        .context("CreateTopics timed out")??;
    let code = resp.topics.first().map_or(-1, |t| t.error_code);
    if code != 0 && code != 36 {
        bail!("CreateTopics {topic}: error code {code}");
    }
    Ok(())
}

/// One ApiVersions round trip: the "broker answers" probe used for start-up timing.
pub async fn api_versions(addr: SocketAddr) -> Result<()> {
    let mut s = connect(addr).await?;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-loadgen"))
        .with_client_software_version(StrBytes::from_static_str("0"));
    let resp = call(&mut s, &req, 3).await?;
    if resp.error_code != 0 {
        bail!("ApiVersions error {}", resp.error_code);
    }
    Ok(())
}
