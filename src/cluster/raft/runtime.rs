//! openraft's async runtime for the metadata quorum: tokio, as openraft's own `TokioRuntime`,
//! except for where election timeouts get their randomness. By default that is the thread's
//! OS-seeded generator, exactly as before; a test that runs the quorum in a deterministic
//! simulation (every node's runtime driven from one thread, `tests/it/quorum_sim.rs`) seeds
//! the thread with [`seed_thread_rng`], so a run replays from its seed.

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use openraft::{AsyncRuntime, OptionalSend, TokioRuntime};

thread_local! {
    /// The state of this thread's seeded generator (splitmix64), if a test seeded it.
    static SEEDED: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Makes the election timeouts drawn on this thread follow `seed` (`None`: back to the OS
/// generator). Only tests call it.
pub fn seed_thread_rng(seed: Option<u64>) {
    SEEDED.with(|s| s.set(seed));
}

/// The next number from the seeded generator, or `None` if this thread is not seeded.
fn next_seeded() -> Option<u64> {
    SEEDED.with(|s| {
        let state = s.get()?.wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(Some(state));
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Some(z ^ (z >> 31))
    })
}

/// The generator openraft draws election timeouts from: the seeded one if this thread has
/// one, else `rand::thread_rng()`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ElectionRng;

impl rand::RngCore for ElectionRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        next_seeded().unwrap_or_else(|| rand::thread_rng().next_u64())
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if SEEDED.with(Cell::get).is_none() {
            return rand::thread_rng().fill_bytes(dest);
        }
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// tokio, with [`ElectionRng`]. Everything else is `TokioRuntime`'s.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Runtime;

type Tokio = TokioRuntime;

impl AsyncRuntime for Runtime {
    type JoinError = <Tokio as AsyncRuntime>::JoinError;
    type JoinHandle<T: OptionalSend + 'static> = <Tokio as AsyncRuntime>::JoinHandle<T>;
    type Sleep = <Tokio as AsyncRuntime>::Sleep;
    type Instant = <Tokio as AsyncRuntime>::Instant;
    type TimeoutError = <Tokio as AsyncRuntime>::TimeoutError;
    type Timeout<R, T: Future<Output = R> + OptionalSend> = <Tokio as AsyncRuntime>::Timeout<R, T>;
    type ThreadLocalRng = ElectionRng;
    type OneshotSender<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotSender<T>;
    type OneshotReceiverError = <Tokio as AsyncRuntime>::OneshotReceiverError;
    type OneshotReceiver<T: OptionalSend> = <Tokio as AsyncRuntime>::OneshotReceiver<T>;

    fn spawn<T>(future: T) -> Self::JoinHandle<T::Output>
    where
        T: Future + OptionalSend + 'static,
        T::Output: OptionalSend + 'static,
    {
        Tokio::spawn(future)
    }

    fn sleep(duration: Duration) -> Self::Sleep {
        Tokio::sleep(duration)
    }

    fn sleep_until(deadline: Self::Instant) -> Self::Sleep {
        Tokio::sleep_until(deadline)
    }

    fn timeout<R, F: Future<Output = R> + OptionalSend>(
        duration: Duration,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout(duration, future)
    }

    fn timeout_at<R, F: Future<Output = R> + OptionalSend>(
        deadline: Self::Instant,
        future: F,
    ) -> Self::Timeout<R, F> {
        Tokio::timeout_at(deadline, future)
    }

    fn is_panic(join_error: &Self::JoinError) -> bool {
        Tokio::is_panic(join_error)
    }

    fn thread_rng() -> Self::ThreadLocalRng {
        ElectionRng
    }

    fn oneshot<T>() -> (Self::OneshotSender<T>, Self::OneshotReceiver<T>)
    where
        T: OptionalSend,
    {
        Tokio::oneshot()
    }
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn a_seeded_thread_replays_its_draws() {
        let draw = || -> Vec<u64> { (0..8).map(|_| ElectionRng.gen_range(150..300)).collect() };
        seed_thread_rng(Some(42));
        let first = draw();
        seed_thread_rng(Some(42));
        assert_eq!(draw(), first, "same seed, same timeouts");
        seed_thread_rng(Some(43));
        assert_ne!(draw(), first, "another seed, other timeouts");
        seed_thread_rng(None);
        assert!(draw().iter().all(|t| (150..300).contains(t)));
    }
}
