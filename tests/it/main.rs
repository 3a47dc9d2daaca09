//! Integration tests: a real broker started in-process on 127.0.0.1:0 with a temporary data
//! directory, driven over TCP with raw Kafka protocol frames. One binary keeps link time down.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "test code: a failed assumption is a failed test, and a print is a diagnostic"
)]

// The same allocator as the broker binary, so the in-process broker behaves as deployed (the
// wire-level hostile tests live in protocol-tests/).
#[global_allocator]
static ALLOCATOR: gregor::alloc_guard::GuardedAllocator = gregor::alloc_guard::GuardedAllocator;

mod harness;

mod cleaner_crash;
mod cluster;
mod cluster_coordinators;
mod cluster_transactions;
mod configs;
mod coordinator_lifecycle;
mod decompression;
mod flush_and_cleaner;
mod groups;
mod kip848;
mod off_runtime;
mod process;
mod produce_fetch;
mod quorum_sim;
mod read_committed;
mod replication;
mod request_budget;
mod retention;
mod settings;
mod topics;
mod transactions;
mod zero_copy;
