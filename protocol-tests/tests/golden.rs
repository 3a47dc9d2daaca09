//! Golden frames: requests byte for byte as real clients send them (captured from librdkafka
//! 2.0.2 via kcat, and kafka-python 2.0.2, which pins old versions), one comment per field. Each
//! is sent to a fresh broker over TCP and the decoded answer is checked field by field; the
//! Produce response is also checked byte for byte.

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

use bytes::{Buf, Bytes};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, HeaderVersion};
use tokio::io::AsyncWriteExt;

/// Joins annotated pieces into one frame body.
fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let body: Vec<u8> = parts.concat();
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

const KAFKA_PYTHON: &[u8] = b"kafka-python-2.0.2";

/// librdkafka 2.0.2 opening every connection: ApiVersions v3 (flexible, header v2).
fn librdkafka_api_versions_v3() -> Vec<u8> {
    frame(&[
        &[0x00, 0x12],             // api_key 18 = ApiVersions
        &[0x00, 0x03],             // api_version 3
        &[0x00, 0x00, 0x00, 0x01], // correlation_id 1
        &[0x00, 0x07],             // client_id length 7 (header client_id is never compact)
        b"rdkafka",                // client_id
        &[0x00],                   // header tagged fields: none
        &[0x0b],                   // client_software_name: compact string, length 10 + 1
        b"librdkafka",             //
        &[0x06],                   // client_software_version: compact string, length 5 + 1
        b"2.0.2",                  //
        &[0x00],                   // body tagged fields: none
    ])
}

/// kafka-python 2.0.2: ApiVersions v0, no body at all.
fn kafka_python_api_versions_v0() -> Vec<u8> {
    frame(&[
        &[0x00, 0x12],             // api_key 18 = ApiVersions
        &[0x00, 0x00],             // api_version 0
        &[0x00, 0x00, 0x00, 0x01], // correlation_id 1
        &[0x00, 0x12],             // client_id length 18
        KAFKA_PYTHON,              // client_id
    ])
}

/// kafka-python 2.0.2 bootstrap: Metadata v0 with an empty topic list, meaning "all topics".
fn kafka_python_metadata_v0() -> Vec<u8> {
    frame(&[
        &[0x00, 0x03],             // api_key 3 = Metadata
        &[0x00, 0x00],             // api_version 0
        &[0x00, 0x00, 0x00, 0x02], // correlation_id 2
        &[0x00, 0x12],             // client_id length 18
        KAFKA_PYTHON,              // client_id
        &[0x00, 0x00, 0x00, 0x00], // topics: int32 count 0 (v0: all topics)
    ])
}

/// librdkafka asking for one topic, allowing auto-creation: Metadata v4.
fn librdkafka_metadata_v4() -> Vec<u8> {
    frame(&[
        &[0x00, 0x03],             // api_key 3 = Metadata
        &[0x00, 0x04],             // api_version 4
        &[0x00, 0x00, 0x00, 0x02], // correlation_id 2
        &[0x00, 0x07],             // client_id length 7
        b"rdkafka",                // client_id
        &[0x00, 0x00, 0x00, 0x01], // topics: int32 count 1
        &[0x00, 0x06],             //   name: string length 6
        b"golden",                 //   name
        &[0x01],                   // allow_auto_topic_creation: true
    ])
}

/// librdkafka (kcat -P, no compression, acks=-1) producing key "k1" value "v1": Produce v7.
fn librdkafka_produce_v7() -> Vec<u8> {
    frame(&[
        &[0x00, 0x00],                                     // api_key 0 = Produce
        &[0x00, 0x07],                                     // api_version 7
        &[0x00, 0x00, 0x00, 0x03],                         // correlation_id 3
        &[0x00, 0x07],                                     // client_id length 7
        b"rdkafka",                                        // client_id
        &[0xff, 0xff],                                     // transactional_id: null
        &[0xff, 0xff],                                     // acks: -1 (all)
        &[0x00, 0x00, 0x75, 0x30],                         // timeout_ms: 30000
        &[0x00, 0x00, 0x00, 0x01],                         // topic_data: count 1
        &[0x00, 0x06],                                     //   name length 6
        b"golden",                                         //   name
        &[0x00, 0x00, 0x00, 0x01],                         //   partition_data: count 1
        &[0x00, 0x00, 0x00, 0x00],                         //     index: partition 0
        &[0x00, 0x00, 0x00, 0x48], //     records: 72 bytes, one record batch:
        &[0, 0, 0, 0, 0, 0, 0, 0], //       baseOffset 0 (the broker assigns the real one)
        &[0x00, 0x00, 0x00, 0x3c], //       batchLength 60 (bytes after this field)
        &[0x00, 0x00, 0x00, 0x00], //       partitionLeaderEpoch 0
        &[0x02],                   //       magic 2
        &[0xe7, 0x0c, 0xc2, 0x47], //       crc32c over attributes..end
        &[0x00, 0x00],             //       attributes: no codec, CreateTime
        &[0x00, 0x00, 0x00, 0x00], //       lastOffsetDelta 0
        &[0x00, 0x00, 0x01, 0xa2, 0x01, 0x62, 0xf3, 0x41], // baseTimestamp
        &[0x00, 0x00, 0x01, 0xa2, 0x01, 0x62, 0xf3, 0x41], // maxTimestamp
        &[0xff; 8],                //       producerId -1 (not idempotent)
        &[0xff, 0xff],             //       producerEpoch -1
        &[0xff, 0xff, 0xff, 0xff], //       baseSequence -1
        &[0x00, 0x00, 0x00, 0x01], //       recordCount 1
        &[0x14],                   //       record length: zigzag varint 10
        &[0x00],                   //         attributes
        &[0x00],                   //         timestampDelta 0
        &[0x00],                   //         offsetDelta 0
        &[0x04],                   //         key length 2
        b"k1",                     //         key
        &[0x04],                   //         value length 2
        b"v1",                     //         value
        &[0x00],                   //         headers: count 0
    ])
}

/// The batch inside `librdkafka_produce_v7`, as the frame carries it.
fn produced_batch() -> Vec<u8> {
    let f = librdkafka_produce_v7();
    f[f.len() - 72..].to_vec()
}

/// librdkafka's consumer (read_committed): Fetch v11.
fn librdkafka_fetch_v11() -> Vec<u8> {
    frame(&[
        &[0x00, 0x01],             // api_key 1 = Fetch
        &[0x00, 0x0b],             // api_version 11
        &[0x00, 0x00, 0x00, 0x05], // correlation_id 5
        &[0x00, 0x07],             // client_id length 7
        b"rdkafka",                // client_id
        &[0xff, 0xff, 0xff, 0xff], // replica_id -1 (a consumer)
        &[0x00, 0x00, 0x01, 0xf4], // max_wait_ms 500
        &[0x00, 0x00, 0x00, 0x01], // min_bytes 1
        &[0x03, 0x20, 0x00, 0x00], // max_bytes 52428800
        &[0x01],                   // isolation_level 1 (read_committed)
        &[0x00, 0x00, 0x00, 0x00], // session_id 0
        &[0xff, 0xff, 0xff, 0xff], // session_epoch -1 (no session)
        &[0x00, 0x00, 0x00, 0x01], // topics: count 1
        &[0x00, 0x06],             //   topic length 6
        b"golden",                 //   topic
        &[0x00, 0x00, 0x00, 0x01], //   partitions: count 1
        &[0x00, 0x00, 0x00, 0x00], //     partition 0
        &[0xff, 0xff, 0xff, 0xff], //     current_leader_epoch -1 (no check)
        &[0, 0, 0, 0, 0, 0, 0, 0], //     fetch_offset 0
        &[0xff; 8],                //     log_start_offset -1
        &[0x00, 0x10, 0x00, 0x00], //     partition_max_bytes 1048576
        &[0x00, 0x00, 0x00, 0x00], // forgotten_topics_data: count 0
        &[0x00, 0x00],             // rack_id: empty string
    ])
}

/// kafka-python 2.0.2's consumer: Fetch v4, the oldest version a 4.x broker serves.
fn kafka_python_fetch_v4() -> Vec<u8> {
    frame(&[
        &[0x00, 0x01],             // api_key 1 = Fetch
        &[0x00, 0x04],             // api_version 4
        &[0x00, 0x00, 0x00, 0x02], // correlation_id 2
        &[0x00, 0x12],             // client_id length 18
        KAFKA_PYTHON,              // client_id
        &[0xff, 0xff, 0xff, 0xff], // replica_id -1
        &[0x00, 0x00, 0x01, 0xf4], // max_wait_ms 500
        &[0x00, 0x00, 0x00, 0x01], // min_bytes 1
        &[0x03, 0x20, 0x00, 0x00], // max_bytes 52428800
        &[0x00],                   // isolation_level 0 (read_uncommitted)
        &[0x00, 0x00, 0x00, 0x01], // topics: count 1
        &[0x00, 0x06],             //   topic length 6
        b"golden",                 //   topic
        &[0x00, 0x00, 0x00, 0x01], //   partitions: count 1
        &[0x00, 0x00, 0x00, 0x00], //     partition 0
        &[0, 0, 0, 0, 0, 0, 0, 0], //     fetch_offset 0
        &[0x00, 0x10, 0x00, 0x00], //     partition_max_bytes 1048576
    ])
}

/// kafka-python 2.0.2 `seek_to_beginning`: ListOffsets v1 for the earliest offset.
fn kafka_python_list_offsets_v1() -> Vec<u8> {
    frame(&[
        &[0x00, 0x02],                                     // api_key 2 = ListOffsets
        &[0x00, 0x01],                                     // api_version 1
        &[0x00, 0x00, 0x00, 0x01],                         // correlation_id 1
        &[0x00, 0x12],                                     // client_id length 18
        KAFKA_PYTHON,                                      // client_id
        &[0xff, 0xff, 0xff, 0xff],                         // replica_id -1
        &[0x00, 0x00, 0x00, 0x01],                         // topics: count 1
        &[0x00, 0x06],                                     //   name length 6
        b"golden",                                         //   name
        &[0x00, 0x00, 0x00, 0x01],                         //   partitions: count 1
        &[0x00, 0x00, 0x00, 0x00],                         //     partition_index 0
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe], // timestamp -2 (earliest)
    ])
}

/// librdkafka >= 2.3 (here 2.16, via confluent-kafka `list_topics()`) asking for all topics:
/// Metadata v13 with a 4-byte placeholder where the compact null array belongs (librdkafka
/// issue #5049). Kafka reads the schema's fields and ignores the 3 bytes left over; so must we.
fn librdkafka_2_16_metadata_v13_all_topics() -> Vec<u8> {
    frame(&[
        &[0x00, 0x03],             // api_key 3 = Metadata
        &[0x00, 0x0d],             // api_version 13 (flexible: header v2)
        &[0x00, 0x00, 0x00, 0x03], // correlation_id 3
        &[0x00, 0x07],             // client_id length 7
        b"rdkafka",                // client_id
        &[0x00],                   // header tagged fields: none
        &[0x00],                   // topics: compact array, 0 = null = all topics
        &[0x00],                   // allow_auto_topic_creation: false
        &[0x00],                   // include_topic_authorized_operations: false
        &[0x00],                   // tagged fields: none
        &[0x01, 0x00, 0x00],       // 3 trailing bytes (the rest of librdkafka's placeholder)
    ])
}

/// Sends one golden frame and decodes the answer as `R` at `version`.
async fn exchange<R: Decodable + HeaderVersion>(
    c: &mut harness::Client,
    golden: &[u8],
    version: i16,
) -> (i32, R, Bytes) {
    c.stream.write_all(golden).await.expect("send");
    let raw = c.read_frame().await.expect("answered");
    let mut body = raw.clone();
    let header = ResponseHeader::decode(&mut body, R::header_version(version)).expect("header");
    let response = R::decode(&mut body, version).expect("body decodes");
    assert_eq!(body.remaining(), 0, "nothing trailing");
    (header.correlation_id, response, raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_client_frames_get_kafka_answers() {
    let b = harness::start(&[]).await;
    let mut c = b.client().await;

    let (corr, r, _) =
        exchange::<ApiVersionsResponse>(&mut c, &librdkafka_api_versions_v3(), 3).await;
    assert_eq!((corr, r.error_code), (1, 0));
    assert!(r
        .api_keys
        .iter()
        .any(|k| k.api_key == 0 && k.min_version == 3 && k.max_version >= 7));
    let (corr, r, _) =
        exchange::<ApiVersionsResponse>(&mut c, &kafka_python_api_versions_v0(), 0).await;
    assert_eq!((corr, r.error_code), (1, 0));
    assert!(
        r.api_keys
            .iter()
            .any(|k| k.api_key == 1 && k.min_version == 4),
        "Fetch v4 offered to kafka-python"
    );

    let (_, r, _) = exchange::<MetadataResponse>(&mut c, &librdkafka_metadata_v4(), 4).await;
    let golden = &r.topics[0];
    assert_eq!(
        (golden.error_code, golden.partitions.len()),
        (0, 1),
        "auto-created"
    );
    assert_eq!(golden.partitions[0].leader_id.0, 1);
    assert_eq!(r.controller_id.0, 1);
    let (_, r, _) = exchange::<MetadataResponse>(&mut c, &kafka_python_metadata_v0(), 0).await;
    assert_eq!(r.topics.len(), 1, "v0 empty list = all topics");
    assert_eq!(r.brokers[0].port, i32::from(b.addr().port()));

    // librdkafka's malformed all-topics request is answered, not met with a closed connection.
    let (corr, r, _) =
        exchange::<MetadataResponse>(&mut c, &librdkafka_2_16_metadata_v13_all_topics(), 13).await;
    assert_eq!((corr, r.topics.len()), (3, 1), "all topics");

    let (_, r, raw) = exchange::<ProduceResponse>(&mut c, &librdkafka_produce_v7(), 7).await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset, p.log_start_offset), (0, 0, 0));
    // The whole Produce v7 response, byte for byte.
    let expected: Vec<u8> = [
        &[0x00, 0x00, 0x00, 0x03][..], // correlation_id 3 (response header v0)
        &[0x00, 0x00, 0x00, 0x01],     // responses: count 1
        &[0x00, 0x06],                 //   name length 6
        b"golden",                     //   name
        &[0x00, 0x00, 0x00, 0x01],     //   partition_responses: count 1
        &[0x00, 0x00, 0x00, 0x00],     //     index 0
        &[0x00, 0x00],                 //     error_code 0
        &[0, 0, 0, 0, 0, 0, 0, 0],     //     base_offset 0
        &[0xff; 8],                    //     log_append_time_ms -1 (CreateTime)
        &[0, 0, 0, 0, 0, 0, 0, 0],     //     log_start_offset 0
        &[0x00, 0x00, 0x00, 0x00],     // throttle_time_ms 0
    ]
    .concat();
    assert_eq!(&raw[..], &expected[..]);

    let stored = produced_batch(); // base offset 0 and epoch 0 already: stored unchanged
    let (corr, r, _) = exchange::<FetchResponse>(&mut c, &librdkafka_fetch_v11(), 11).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((corr, r.error_code, r.session_id), (5, 0, 0));
    assert_eq!(
        (
            p.error_code,
            p.high_watermark,
            p.last_stable_offset,
            p.log_start_offset
        ),
        (0, 1, 1, 0)
    );
    assert_eq!(
        p.aborted_transactions.as_deref(),
        Some(&[][..]),
        "read_committed: empty list"
    );
    assert_eq!(p.records.as_deref(), Some(&stored[..]));
    let (_, r, _) = exchange::<FetchResponse>(&mut c, &kafka_python_fetch_v4(), 4).await;
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
    assert_eq!(p.records.as_deref(), Some(&stored[..]));

    let (_, r, _) =
        exchange::<ListOffsetsResponse>(&mut c, &kafka_python_list_offsets_v1(), 1).await;
    let p = &r.topics[0].partitions[0];
    assert_eq!((p.error_code, p.offset, p.timestamp), (0, 0, -1));
}
