//! SIGKILL while the log cleaner is rewriting segments: the broker process runs with a cleaner
//! that never rests (backoff 1 ms, any dirty byte triggers a pass) under a stream of acks=all
//! updates and tombstones, and is killed at varying moments. After every restart the log must
//! be consistent: every batch intact, offsets increasing, each key's latest acknowledged value
//! (or its deletion) visible, no deleted key resurrected, and fetches at any offset served from
//! consistent indexes. The check reads the log with the cleaner off: a reader scanning while
//! tombstones are removed may legitimately see an old value and miss its tombstone (what Kafka's
//! `delete.retention.ms` guards against; it is 0 here), which is not what this test is about.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use gregor::records::testutil::build_batch;
use gregor::records::{BatchHeader, Compression};

use crate::harness::{create_with_configs, fetch_request, produce_request, Client};
use crate::process::{connect_when_ready, free_port, spawn_with};

const TOPIC: &str = "cc";
const KEYS: usize = 60;
const BROKER_ARGS: &[&str] = &[
    "--set",
    "log.cleaner.backoff.ms=1",
    "--set",
    "log.flush.offset.checkpoint.interval.ms=200",
];
/// The same broker with its cleaner off, to read back what recovery left.
const CHECK_ARGS: &[&str] = &[
    "--set",
    "log.cleaner.enable=false",
    "--set",
    "log.flush.offset.checkpoint.interval.ms=200",
];

/// Every (offset, key, value) from the start; asserts batch integrity and offset order.
async fn read_all(c: &mut Client, id: uuid::Uuid) -> Vec<(i64, String, Option<String>)> {
    let mut out: Vec<(i64, String, Option<String>)> = Vec::new();
    let mut offset = 0i64;
    loop {
        let resp = c
            .call(&fetch_request(TOPIC, id, 0, offset, 0, 1 << 20, 12), 12)
            .await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        let records = p.records.clone().unwrap_or_default();
        if records.is_empty() {
            return out;
        }
        let mut rest = &records[..];
        while let Some(h) = BatchHeader::new(rest) {
            let n = h.total_size().expect("batch length");
            let batch = &rest[..n];
            assert_eq!(
                h.crc(),
                gregor::records::batch::compute_crc(batch),
                "intact batch at {}",
                h.base_offset()
            );
            for r in gregor::records::records(batch, 1 << 20).unwrap().iter() {
                let r = r.expect("record parses");
                let key = String::from_utf8(r.key.expect("keyed").to_vec()).unwrap();
                let value = r.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                if let Some(last) = out.last() {
                    assert!(
                        r.offset > last.0,
                        "offsets increase: {} after {}",
                        r.offset,
                        last.0
                    );
                }
                out.push((r.offset, key, value));
            }
            offset = h.last_offset() + 1;
            rest = &rest[n..];
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_compaction_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = spawn_with(dir.path(), port, BROKER_ARGS);
    let mut c = connect_when_ready(port).await;
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "8192"),
        ("min.cleanable.dirty.ratio", "0"),
        ("delete.retention.ms", "0"),
    ];
    let created = create_with_configs(&mut c, TOPIC, 1, &configs).await;
    assert_eq!(created.topics[0].error_code, 0);
    let id = created.topics[0].topic_id;

    // The latest acknowledged write of each key: Some(value) or None (deleted).
    let mut latest: HashMap<String, Option<String>> = HashMap::new();
    let mut leftovers = 0;
    let padding = "p".repeat(120);
    for round in 0..8u64 {
        let started = Instant::now();
        let mut seq = 0u64;
        // Write for a while (the cleaner keeps rewriting the log meanwhile), then kill.
        while started.elapsed() < Duration::from_millis(300 + 97 * round) {
            let k = format!("k{}", (seq * 7 + round) % KEYS as u64);
            let delete = seq % 11 == 5;
            let value = format!("{k}-r{round}-s{seq}-{padding}");
            let v = (!delete).then_some(value.as_bytes());
            let batch = build_batch(
                &[(Some(k.as_bytes()), v, vec![], 1_000_000 + seq as i64)],
                Compression::Lz4,
                -1,
                -1,
                -1,
            );
            let r = c
                .call(&produce_request(TOPIC, id, 0, &batch, -1, 9), 9)
                .await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
            latest.insert(k, (!delete).then_some(value));
            seq += 1;
        }
        drop(child);
        leftovers += std::fs::read_dir(dir.path().join(format!("{TOPIC}-0")))
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.ends_with(".cleaned") || name.ends_with(".swap")
            })
            .count();
        let checker = spawn_with(dir.path(), port, CHECK_ARGS);
        c = connect_when_ready(port).await;
        let seen = read_all(&mut c, id).await;
        let mut last_seen: HashMap<&str, Option<&str>> = HashMap::new();
        for (_, k, v) in &seen {
            last_seen.insert(k, v.as_deref());
        }
        for (k, want) in &latest {
            match (want, last_seen.get(k.as_str())) {
                (Some(v), Some(Some(got))) => assert_eq!(got, v, "round {round}: latest of {k}"),
                (Some(v), other) => panic!("round {round}: {k} should be {v}, read {other:?}"),
                // Deleted: the tombstone may be there or gone with every older value.
                (None, None) | (None, Some(None)) => {}
                (None, Some(Some(old))) => {
                    panic!("round {round}: deleted {k} came back as {old}")
                }
            }
        }
        // Fetches starting anywhere are served from consistent indexes: none skips a record.
        let stable: Vec<i64> = seen.iter().map(|r| r.0).collect();
        let end = seen.last().map(|r| r.0 + 1).unwrap_or(0);
        for start in (0..end).step_by(37) {
            let resp = c
                .call(&fetch_request(TOPIC, id, 0, start, 0, 4096, 12), 12)
                .await;
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "fetch at {start}");
            let records = p.records.clone().unwrap_or_default();
            let h = BatchHeader::new(&records).expect("a batch at or after every offset");
            assert!(
                h.last_offset() >= start,
                "batch {}..{} for {start}",
                h.base_offset(),
                h.last_offset()
            );
            let next_stable = stable.iter().find(|o| **o >= start);
            assert!(
                next_stable.is_none_or(|o| h.base_offset() <= *o),
                "round {round}: fetch at {start} got batch {}..{}, skipping offset {next_stable:?}",
                h.base_offset(),
                h.last_offset()
            );
        }
        // Back to a broker whose cleaner never rests, for the next round.
        drop(checker);
        child = spawn_with(dir.path(), port, BROKER_ARGS);
        c = connect_when_ready(port).await;
    }
    eprintln!("8 kills during compaction; {leftovers} left a .cleaned or .swap file behind");
    drop(child);
}
