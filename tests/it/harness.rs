//! Test harness: start a broker in-process, and a minimal Kafka client that encodes requests
//! with `kafka-protocol`'s client side and reads responses off a plain TCP stream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gregor::config::{Config, Sources};
use gregor::Broker;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, FetchRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

/// A broker running in this process, with its data directory.
pub struct TestBroker {
    pub broker: Broker,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// Starts a broker on 127.0.0.1:0 with a fresh data directory and `settings` overrides.
pub async fn start(settings: &[(&str, &str)]) -> TestBroker {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().to_path_buf();
    let broker = start_in(&dir, settings).await;
    TestBroker {
        broker,
        dir,
        _tmp: Some(tmp),
    }
}

/// Starts a broker on 127.0.0.1:0 over an existing data directory.
pub async fn start_in(dir: &Path, settings: &[(&str, &str)]) -> Broker {
    // Broker logs go to the test's captured output (shown on failure); RUST_LOG filters.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut overrides = vec![
        (
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        ),
        ("log.dirs".to_string(), dir.display().to_string()),
    ];
    overrides.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = Config::load(&Sources {
        file: None,
        env: false,
        overrides,
    })
    .expect("config");
    // A start that waits for ever (say, for a quorum that never forms) fails the test instead
    // of holding up the whole run.
    tokio::time::timeout(START_LIMIT, Broker::start(config))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the broker in {} did not start within {START_LIMIT:?}",
                dir.display()
            )
        })
        .expect("broker starts")
}

/// How long a test broker may take to start, or to stop cleanly.
pub const START_LIMIT: Duration = Duration::from_secs(60);

/// Shuts `broker` down cleanly, failing the test if that takes longer than [`START_LIMIT`].
pub async fn shut_down(broker: Broker) {
    tokio::time::timeout(START_LIMIT, broker.shutdown())
        .await
        .unwrap_or_else(|_| panic!("the broker did not stop within {START_LIMIT:?}"))
        .expect("clean shutdown");
}

impl TestBroker {
    pub fn addr(&self) -> SocketAddr {
        self.broker.local_addr()
    }

    pub async fn client(&self) -> Client {
        Client::connect(self.addr()).await
    }

    /// Shuts down cleanly and starts again over the same directory (new port).
    pub async fn restart(self, settings: &[(&str, &str)]) -> TestBroker {
        let TestBroker { broker, dir, _tmp } = self;
        shut_down(broker).await;
        let broker = start_in(&dir, settings).await;
        TestBroker { broker, dir, _tmp }
    }
}

/// A raw protocol client over one connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation: i32,
}

/// Default time any single response may take in tests.
pub const TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).ok();
        Client {
            stream,
            next_correlation: 1,
        }
    }

    /// Encodes `request` at `version` into a full frame with the given correlation id.
    pub fn frame<R: Request>(request: &R, version: i16, correlation_id: i32) -> Bytes {
        let key = ApiKey::try_from(R::KEY).expect("known key");
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("gregor-tests")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .expect("header encodes");
        request.encode(&mut body, version).expect("request encodes");
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        frame.freeze()
    }

    /// Sends `request` without waiting; returns its correlation id.
    pub async fn send<R: Request>(&mut self, request: &R, version: i16) -> i32 {
        let corr = self.next_correlation;
        self.next_correlation += 1;
        let frame = Self::frame(request, version, corr);
        self.stream.write_all(&frame).await.expect("write");
        corr
    }

    /// Reads one response frame body (after the size), or None if the broker closed.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        match tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut size)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => return None,
            Err(_) => panic!("no response within {TIMEOUT:?}"),
        }
        let size = i32::from_be_bytes(size) as usize;
        let mut body = vec![0u8; size];
        tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut body))
            .await
            .expect("response body in time")
            .ok()?;
        Some(Bytes::from(body))
    }

    /// Reads and decodes the response to `correlation_id` (which must be the next one).
    pub async fn receive<R: Request>(&mut self, correlation_id: i32, version: i16) -> R::Response {
        let mut frame = self
            .read_frame()
            .await
            .expect("broker answered rather than closing");
        let header_version = <R::Response as HeaderVersion>::header_version(version);
        let header = kafka_protocol::messages::ResponseHeader::decode(&mut frame, header_version)
            .expect("response header");
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses come back in request order"
        );
        let response = R::Response::decode(&mut frame, version).expect("response decodes");
        assert_eq!(frame.remaining(), 0, "no trailing bytes in the response");
        response
    }

    /// Sends `request` and waits for its response.
    pub async fn call<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        let corr = self.send(request, version).await;
        self.receive::<R>(corr, version).await
    }

    /// True if the broker closed the connection (read returns EOF) within the timeout.
    pub async fn closed_by_broker(&mut self) -> bool {
        let mut buf = [0u8; 1];
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read(&mut buf)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// `StrBytes` from a string literal or String.
pub fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

// Requests most tests need, built for the negotiated version.

pub async fn create(c: &mut Client, name: &str, partitions: i32) -> CreateTopicsResponse {
    create_with_configs(c, name, partitions, &[]).await
}

/// CreateTopics v7 for one topic with `configs` (name, value) pairs.
pub async fn create_with_configs(
    c: &mut Client,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> CreateTopicsResponse {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(s(k))
                .with_value(Some(s(v)))
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(s(name)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(configs)])
        .with_timeout_ms(5000);
    c.call(&req, 7).await
}

pub fn produce_request(
    topic: &str,
    id: Uuid,
    partition: i32,
    batch: &[u8],
    acks: i16,
    version: i16,
) -> ProduceRequest {
    let mut t =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(Bytes::copy_from_slice(batch)))]);
    t = if version >= 13 {
        t.with_topic_id(id)
    } else {
        t.with_name(TopicName(s(topic)))
    };
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![t])
}

pub async fn produce(
    c: &mut Client,
    topic: &str,
    id: Uuid,
    partition: i32,
    batch: &[u8],
    version: i16,
) -> PartitionProduceResponse {
    let resp = c
        .call(
            &produce_request(topic, id, partition, batch, -1, version),
            version,
        )
        .await;
    resp.responses[0].partition_responses[0].clone()
}

pub fn fetch_request(
    topic: &str,
    id: Uuid,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    partition_max: i32,
    version: i16,
) -> FetchRequest {
    let mut t = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_current_leader_epoch(-1)
        .with_partition_max_bytes(partition_max)]);
    t = if version >= 13 {
        t.with_topic_id(id)
    } else {
        t.with_topic(TopicName(s(topic)))
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(50 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![t])
}

pub async fn fetch(
    c: &mut Client,
    topic: &str,
    id: Uuid,
    partition: i32,
    offset: i64,
    version: i16,
) -> PartitionData {
    let resp = c
        .call(
            &fetch_request(topic, id, partition, offset, 0, 1 << 20, version),
            version,
        )
        .await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses.len(), 1);
    resp.responses[0].partitions[0].clone()
}

/// Brokers forming one cluster in this process: each a voter of the metadata quorum with its
/// own data directory, client listener on 127.0.0.1:0 and controller listener on a port picked
/// free beforehand (the voters must name it before anyone binds).
pub struct TestCluster {
    pub nodes: Vec<Option<TestBroker>>,
    /// The settings every node was started with (the voters among them).
    pub settings: Vec<(String, String)>,
    pub controller_ports: Vec<u16>,
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl TestCluster {
    /// Starts `n` nodes (ids 1..=n) at once and waits until every one serves.
    pub async fn start(n: usize, settings: &[(&str, &str)]) -> TestCluster {
        let controller_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let voters = controller_ports
            .iter()
            .enumerate()
            .map(|(i, port)| format!("{}@127.0.0.1:{port}", i + 1))
            .collect::<Vec<_>>()
            .join(",");
        let mut common: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        common.push(("controller.quorum.voters".into(), voters));
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            settings: common,
            controller_ports,
        };
        let starts: Vec<_> = (1..=n)
            .map(|id| {
                let tmp = tempfile::tempdir().expect("tempdir");
                let settings = cluster.node_settings(id);
                tokio::spawn(async move {
                    let dir = tmp.path().to_path_buf();
                    let pairs: Vec<(&str, &str)> = settings
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let broker = start_in(&dir, &pairs).await;
                    TestBroker {
                        broker,
                        dir,
                        _tmp: Some(tmp),
                    }
                })
            })
            .collect();
        // All at once: each waits in its start for a quorum leader, which needs a majority.
        for start in starts {
            cluster
                .nodes
                .push(Some(start.await.expect("node start task")));
        }
        cluster
    }

    /// The settings node `id` starts with.
    fn node_settings(&self, id: usize) -> Vec<(String, String)> {
        let mut s = self.settings.clone();
        s.push(("node.id".into(), id.to_string()));
        s.push((
            "listeners".into(),
            format!(
                "PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
                self.controller_ports[id - 1]
            ),
        ));
        s
    }

    /// Node `id` (1-based), which must be running.
    pub fn node(&self, id: usize) -> &TestBroker {
        self.nodes[id - 1].as_ref().expect("node is running")
    }

    /// Stops node `id` cleanly, keeping its data directory for [`TestCluster::restart`].
    pub async fn stop(&mut self, id: usize) -> StoppedNode {
        let TestBroker { broker, dir, _tmp } = self.nodes[id - 1].take().expect("node is running");
        shut_down(broker).await;
        StoppedNode { dir, _tmp }
    }

    /// Starts node `id` again over its data directory (same controller port, new client port).
    pub async fn restart(&mut self, id: usize, stopped: StoppedNode) {
        let settings = self.node_settings(id);
        let pairs: Vec<(&str, &str)> = settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let broker = start_in(&stopped.dir, &pairs).await;
        self.nodes[id - 1] = Some(TestBroker {
            broker,
            dir: stopped.dir,
            _tmp: stopped._tmp,
        });
    }
}

/// A stopped node's data directory.
pub struct StoppedNode {
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}
