//! The `gregor` binary as an operator runs it: help, configuration errors, SIGTERM (clean exit 0)
//! and SIGKILL under an acks=all load (nothing acknowledged lost, nothing duplicated).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gregor::records::testutil::build_batch;
use gregor::records::Compression;
use kafka_protocol::messages::*;

use crate::harness::create;
use crate::harness::Client;
use crate::harness::{fetch_request, produce_request};

const BIN: &str = env!("CARGO_BIN_EXE_gregor");

/// A 127.0.0.1 port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(dir: &std::path::Path, port: u16) -> Killed {
    spawn_with(dir, port, &[])
}

/// [`spawn`] with extra command-line arguments (e.g. `--set name=value`).
pub fn spawn_with(dir: &std::path::Path, port: u16, extra: &[&str]) -> Killed {
    let child = Command::new(BIN)
        .args([
            "--listeners",
            &format!("PLAINTEXT://127.0.0.1:{port}"),
            "--log-dirs",
            &dir.display().to_string(),
        ])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn gregor");
    Killed(child)
}

pub async fn connect_when_ready(port: u16) -> Client {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Client::connect(addr).await;
        }
        assert!(Instant::now() < deadline, "broker did not start listening");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn kill9(child: &mut Child) {
    // `Child::kill` is SIGKILL on Unix; an error only means the child had already exited.
    let _ = child.kill();
    let _ = child.wait();
}

/// A broker process that is SIGKILLed when dropped, so a failing test leaves none behind.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        kill9(&mut self.0);
    }
}

impl std::ops::Deref for Killed {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Killed {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

#[test]
fn help_lists_every_setting_and_bad_config_names_the_key() {
    let help = Command::new(BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for setting in gregor::config::SETTINGS {
        assert!(
            text.contains(setting.name),
            "--help mentions {}",
            setting.name
        );
    }
    let bad = Command::new(BIN)
        .args(["--set", "num.partitions=abc"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("num.partitions"));
    let unknown = Command::new(BIN)
        .env("GREGOR_LOG_SEGMENT_BYTEZ", "5")
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("log.segment.bytez"));
}

/// Numeric settings from the environment: figment reads `3` as a number, not a string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numeric_settings_from_the_environment_apply() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = Killed(
        Command::new(BIN)
            .args([
                "--listeners",
                &format!("PLAINTEXT://127.0.0.1:{port}"),
                "--log-dirs",
                &dir.path().display().to_string(),
            ])
            .env("GREGOR_NUM_PARTITIONS", "3")
            .env("GREGOR_LOG_RETENTION_MS", "-1")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gregor"),
    );
    let mut c = connect_when_ready(port).await;
    // Auto-creation uses num.partitions.
    let md = c
        .call(
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
                )
                .with_name(Some(TopicName(crate::harness::s("from-env"))))]))
                .with_allow_auto_topic_creation(true),
            12,
        )
        .await;
    assert_eq!(md.topics[0].error_code, 0);
    assert_eq!(md.topics[0].partitions.len(), 3);
}

/// Kafka 4.x's shipped KRaft `server.properties`, with only paths and ports changed, starts a
/// broker: Kafka's hours form of retention is honoured, the controller listener is left out,
/// settings that do not apply are accepted, and a misspelled name still stops start-up with a
/// hint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_server_properties_start_a_broker() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let controller_port = free_port();
    let data = dir.path().join("kraft-combined-logs");
    let props = format!(
        "process.roles=broker,controller\n\
         node.id=1\n\
         controller.quorum.bootstrap.servers=localhost:{controller_port}\n\
         listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}\n\
         inter.broker.listener.name=PLAINTEXT\n\
         advertised.listeners=PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller_port}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\n\
         num.io.threads=8\n\
         socket.send.buffer.bytes=102400\n\
         socket.receive.buffer.bytes=102400\n\
         socket.request.max.bytes=104857600\n\
         log.dirs={}\n\
         num.partitions=1\n\
         num.recovery.threads.per.data.dir=1\n\
         offsets.topic.replication.factor=1\n\
         share.coordinator.state.topic.replication.factor=1\n\
         share.coordinator.state.topic.min.isr=1\n\
         transaction.state.log.replication.factor=1\n\
         transaction.state.log.min.isr=1\n\
         log.retention.hours=168\n\
         log.segment.bytes=1073741824\n\
         log.retention.check.interval.ms=300000\n",
        data.display()
    );
    let file = dir.path().join("server.properties");
    std::fs::write(&file, props).unwrap();
    let _broker = Killed(
        Command::new(BIN)
            .arg("--config")
            .arg(&file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn gregor"),
    );
    let mut c = connect_when_ready(port).await;
    let md = c
        .call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    assert_eq!(md.brokers[0].host.as_str(), "localhost");
    assert_eq!(md.brokers[0].port, i32::from(port));
    let r =
        crate::configs::describe(&mut c, 4, "1", Some(&["log.retention.ms", "log.dirs"]), 4).await;
    let value = |name: &str| {
        r.configs
            .iter()
            .find(|e| e.name.as_str() == name)
            .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
    };
    assert_eq!(
        value("log.retention.ms").as_deref(),
        Some("604800000"),
        "168 hours"
    );
    assert_eq!(value("log.dirs"), Some(data.display().to_string()));
    assert!(data.join("meta.properties").exists());

    let typo = dir.path().join("typo.properties");
    std::fs::write(&typo, "log.retension.ms=5\n").unwrap();
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&typo)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did you mean `log.retention.ms`"), "{err}");
}

async fn logger_levels(c: &mut Client) -> std::collections::BTreeMap<String, String> {
    let r = crate::configs::describe(c, 8, "1", None, 4).await;
    assert_eq!(r.error_code, 0);
    r.configs
        .iter()
        .map(|e| {
            (
                e.name.to_string(),
                e.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect()
}

/// Logger levels change at run time (`kafka-configs --entity-type broker-loggers`): DEBUG on
/// `gregor::protocol` makes the running binary log each request, DELETE puts it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_logger_levels_change_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let log_path = dir.path().join("stderr.log");
    let _broker = Killed(
        Command::new(BIN)
            .args([
                "--listeners",
                &format!("PLAINTEXT://127.0.0.1:{port}"),
                "--log-dirs",
                &dir.path().join("data").display().to_string(),
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("spawn gregor"),
    );
    let mut c = connect_when_ready(port).await;
    let levels = logger_levels(&mut c).await;
    assert_eq!(levels["root"], "WARN");
    assert_eq!(levels["gregor::protocol"], "WARN");
    let alter = |logger: &str, op: i8, level: Option<&str>| {
        crate::configs::alter_request(8, "1", &[(logger, op, level)], false)
    };
    let code = |r: IncrementalAlterConfigsResponse| r.responses[0].error_code;
    assert_eq!(
        code(c.call(&alter("gregor::nope", 0, Some("DEBUG")), 1).await),
        40
    );
    assert_eq!(
        code(c.call(&alter("gregor::protocol", 0, Some("LOUD")), 1).await),
        40
    );
    let quiet = std::fs::read_to_string(&log_path).unwrap();
    assert!(!quiet.contains("DEBUG"), "{quiet}");
    assert_eq!(
        code(
            c.call(&alter("gregor::protocol", 0, Some("DEBUG")), 1)
                .await
        ),
        0
    );
    assert_eq!(logger_levels(&mut c).await["gregor::protocol"], "DEBUG");
    c.call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&log_path)
        .unwrap()
        .contains("DEBUG")
    {
        assert!(Instant::now() < deadline, "no DEBUG line after the change");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Back to the inherited level: no more DEBUG lines.
    assert_eq!(
        code(c.call(&alter("gregor::protocol", 1, None), 1).await),
        0
    );
    assert_eq!(logger_levels(&mut c).await["gregor::protocol"], "WARN");
    let lines_before = std::fs::read_to_string(&log_path).unwrap().lines().count();
    c.call(&MetadataRequest::default().with_topics(None), 12)
        .await;
    std::thread::sleep(Duration::from_millis(200));
    let after = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(after.lines().count(), lines_before, "{after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code, reason = "kill(2): SIGTERM has no std wrapper")]
async fn sigterm_exits_zero_and_sigkill_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let mut c = connect_when_ready(port).await;
    let id = create(&mut c, "durable", 1).await.topics[0].topic_id;

    // SIGTERM: clean exit 0.
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(
        child.wait().unwrap().code(),
        Some(0),
        "clean shutdown exits 0"
    );

    let mut acknowledged: Vec<i64> = Vec::new(); // sequence numbers whose produce was acked
    let mut next_seq = 0i64;
    for round in 0..3 {
        let mut child = spawn(dir.path(), port);
        let mut c = connect_when_ready(port).await;
        // Pipeline acks=all produces of one record each (value = sequence number) and kill -9
        // the broker while requests are in flight.
        let started = Instant::now();
        let mut in_flight = std::collections::VecDeque::new();
        while started.elapsed() < Duration::from_millis(700 + 300 * round) {
            while in_flight.len() < 20 {
                let value = next_seq.to_string();
                let batch = build_batch(
                    &[(None, Some(value.as_bytes()), vec![], next_seq)],
                    Compression::None,
                    -1,
                    -1,
                    -1,
                );
                let corr = c
                    .send(&produce_request("durable", id, 0, &batch, -1, 9), 9)
                    .await;
                in_flight.push_back((corr, next_seq));
                next_seq += 1;
            }
            let (corr, seq) = in_flight.pop_front().unwrap();
            let r = c.receive::<ProduceRequest>(corr, 9).await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            acknowledged.push(seq);
        }
        kill9(&mut child);
        assert!(!acknowledged.is_empty());
    }
    // Restart and read everything back.
    let mut child = spawn(dir.path(), port);
    let mut c = connect_when_ready(port).await;
    let mut offset = 0i64;
    let mut seen: Vec<i64> = Vec::new();
    loop {
        let resp = c
            .call(&fetch_request("durable", id, 0, offset, 0, 1 << 20, 12), 12)
            .await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        let records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            break;
        }
        let mut rest = &records[..];
        while rest.len() >= 61 {
            let len = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize + 12;
            let batch = &rest[..len];
            let base = i64::from_be_bytes(batch[0..8].try_into().unwrap());
            let parsed =
                gregor::records::records(batch, 1 << 20).expect("stored batches are valid");
            for r in parsed.iter() {
                let r = r.expect("record parses");
                let v = std::str::from_utf8(r.value.expect("value")).unwrap();
                seen.push(v.parse().unwrap());
            }
            offset = base + i64::from(i32::from_be_bytes(batch[23..27].try_into().unwrap())) + 1;
            rest = &rest[len..];
        }
    }
    // Every acknowledged record is there, exactly once, in order.
    let mut sorted = seen.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no duplicates");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order");
    let present: std::collections::HashSet<i64> = seen.iter().copied().collect();
    let lost: Vec<i64> = acknowledged
        .iter()
        .copied()
        .filter(|s| !present.contains(s))
        .collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "acknowledged {} records across 3 kills; {} present after recovery",
        acknowledged.len(),
        seen.len()
    );
    kill9(&mut child);
}

/// The broker raises its soft open-file limit to the hard one (one descriptor per partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(unsafe_code, reason = "getrlimit/setrlimit have no safe std wrapper")]
async fn start_up_raises_the_soft_open_file_limit_to_the_hard_one() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--listeners",
        &format!("PLAINTEXT://127.0.0.1:{port}"),
        "--log-dirs",
        &dir.path().display().to_string(),
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    // SAFETY: the closure only calls getrlimit/setrlimit, which are async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let mut l = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut l);
            l.rlim_cur = l.rlim_cur.min(256);
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
            Ok(())
        });
    }
    let mut child = Killed(cmd.spawn().expect("spawn gregor"));
    let _c = connect_when_ready(port).await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    kill9(&mut child);
    assert_eq!(numbers[0], numbers[1], "soft == hard: {line}");
}
