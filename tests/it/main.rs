//! Integration tests: a real broker started in-process on 127.0.0.1:0 with a temporary data
//! directory, driven over TCP with raw Kafka protocol frames. One binary keeps link time down.

// The broker's guard against hostile array counts must be active here too: without it, a hostile
// frame would abort this whole test process (which is exactly what the hostile tests check).
#[global_allocator]
static ALLOCATOR: gregor::alloc_guard::GuardedAllocator = gregor::alloc_guard::GuardedAllocator;

mod harness;

mod api_versions;
mod configs;
mod groups;
mod hostile;
mod kip848;
mod process;
mod produce_fetch;
mod retention;
mod topics;
mod zero_copy;
