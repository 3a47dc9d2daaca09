//! A follower's connection to a partition leader: Kafka requests out, Kafka responses back, on
//! the leader's client listener (Gregor has one listener, which is the inter-broker one).
//! One request at a time: the fetcher waits for each answer before it asks again, so there is
//! nothing to match but the correlation id, which is checked.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest response accepted: a fetch asks for at most `replica.fetch.response.max.bytes`
/// (plus one oversized batch per KIP-74), so anything past this is a broken peer.
const MAX_RESPONSE: usize = 256 << 20;

/// Why a request to the leader failed. Every case means: drop the connection, back off, and
/// look at the metadata again.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no answer in {0:?}")]
    Timeout(Duration),
    #[error("cannot encode the request: {0}")]
    Encode(String),
    #[error("undecodable response: {0}")]
    Decode(String),
    #[error("response of {0} bytes is past the limit")]
    TooLarge(usize),
    #[error("response to correlation id {got}, expected {want}")]
    Correlation { got: i32, want: i32 },
}

/// One connection to one broker.
pub struct BrokerClient {
    stream: TcpStream,
    client_id: StrBytes,
    next_correlation: i32,
}

impl BrokerClient {
    /// Connects to `addr` (`host:port`) within `timeout`.
    pub async fn connect(
        addr: &str,
        client_id: String,
        timeout: Duration,
    ) -> Result<BrokerClient, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(BrokerClient {
            stream,
            client_id: StrBytes::from_string(client_id),
            next_correlation: 0,
        })
    }

    /// Sends `request` at `version` and waits up to `timeout` for its response.
    pub async fn send<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, ClientError> {
        let correlation_id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut body = BytesMut::with_capacity(256);
        body.put_i32(0); // size, filled in below
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        request
            .encode(&mut body, version)
            .map_err(|e| ClientError::Encode(e.to_string()))?;
        let size = i32::try_from(body.len() - 4).map_err(|e| ClientError::Encode(e.to_string()))?;
        body[..4].copy_from_slice(&size.to_be_bytes());
        let exchange = async {
            self.stream.write_all(&body).await?;
            let mut len = [0u8; 4];
            self.stream.read_exact(&mut len).await?;
            let len = usize::try_from(i32::from_be_bytes(len)).unwrap_or(usize::MAX);
            if len > MAX_RESPONSE {
                return Err(ClientError::TooLarge(len));
            }
            let mut frame = vec![0u8; len];
            self.stream.read_exact(&mut frame).await?;
            Ok::<_, ClientError>(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(timeout))??;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if header.correlation_id != correlation_id {
            return Err(ClientError::Correlation {
                got: header.correlation_id,
                want: correlation_id,
            });
        }
        R::Response::decode(&mut frame, version).map_err(|e| ClientError::Decode(e.to_string()))
    }
}
