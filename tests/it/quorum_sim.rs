//! A deterministic simulation of the metadata quorum over the real code: three voters run
//! `RaftQuorum` (openraft, the durable log store, the state machine, the message code of
//! `raft/network.rs`) on turmoil's simulated network and clock, each in its own simulated host,
//! while a fault schedule drawn from a seed crashes and restarts nodes (a restart keeps only
//! what was fsynced, through `FaultyIo`'s crash model), isolates them, holds their messages
//! and breaks connections. Every node proposes `Configs` commands through
//! `MetadataQuorum::propose`. Checked after every step and at the end:
//!
//! - at most one leader per term, as every node sees it;
//! - per node, the term never goes back (across restarts too), nor the applied index within
//!   one run of the node;
//! - every image any node applied is a prefix of one common command sequence (each command
//!   adds a distinct config resource, so an image is the set of commands applied);
//! - every proposal that returned `Ok` is in every node's final image;
//! - the persisted vote never names two candidates in one term, and its term never goes back.
//!
//! `GREGOR_SIM_SEEDS=N` runs N seeds from `GREGOR_SIM_FIRST_SEED` (default 0) on (default
//! 200, about 1 s each in a debug build); `GREGOR_SIM_SEED=S` replays seed S alone, and
//! `GREGOR_SIM_TRACE=1` prints every vote with its step.
//! The fault schedule, turmoil's network randomness and openraft's election timeouts (through
//! `cluster::raft::runtime::seed_thread_rng`) all follow the seed; file writes run on tokio's
//! blocking pool (real threads), which can still reorder wake-ups, so a replay is very likely
//! but not guaranteed to take the same path.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use gregor::cluster::quorum::BoxFuture;
use gregor::cluster::raft::network::{Acceptor, BoxConn, Transport};
use gregor::cluster::raft::{QuorumOptions, RaftQuorum};
use gregor::cluster::MetadataQuorum;
use gregor::common::NodeId;
use gregor::log::io::FaultyIo;
use gregor::metadata::image::ConfigScope;
use gregor::metadata::{MetadataCommand, MetadataRecord};

const VOTERS: i32 = 3;
const PORT: u16 = 9093;
/// Simulated time under faults, then at most this long to converge once they stop.
const FAULT_STEPS: u64 = 1_200;
const HEAL_STEPS: u64 = 6_000;
const TICK: Duration = Duration::from_millis(5);
/// Proposals per seed, over all nodes.
const PROPOSALS: u64 = 120;

/// turmoil's TCP as the quorum's transport.
#[derive(Debug)]
struct SimNet;

impl Transport for SimNet {
    fn connect<'a>(&'a self, addr: &'a str) -> BoxFuture<'a, std::io::Result<BoxConn>> {
        Box::pin(async move {
            let stream = turmoil::net::TcpStream::connect(addr).await?;
            Ok(Box::new(stream) as BoxConn)
        })
    }
}

struct SimListener(turmoil::net::TcpListener);

impl Acceptor for SimListener {
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<(BoxConn, SocketAddr)>> {
        Box::pin(async move {
            let (stream, peer) = self.0.accept().await?;
            Ok((Box::new(stream) as BoxConn, peer))
        })
    }
}

/// splitmix64: the fault schedule's randomness, from the seed alone.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// One voter: where its current run keeps its data, and its quorum while it runs.
struct Node {
    dir: PathBuf,
    io: Arc<FaultyIo>,
    generation: u32,
    quorum: Option<Arc<RaftQuorum>>,
    /// Step at which a crashed node comes back.
    restart_at: Option<u64>,
}

/// What the hosts and the checker share (hosts run on the test thread, one at a time).
struct Shared {
    nodes: Vec<Node>,
    next_value: u64,
    /// (committed index, value) of every proposal that returned `Ok`.
    acked: Vec<(u64, u64)>,
}

fn name(i: usize) -> String {
    format!("n{}", i + 1)
}

fn command(value: u64) -> MetadataCommand {
    MetadataCommand::unconditional(vec![MetadataRecord::Configs {
        scope: ConfigScope::Group,
        name: format!("p{value}"),
        configs: BTreeMap::from([("v".to_string(), value.to_string())]),
    }])
}

/// The values of the commands `quorum`'s image holds.
fn applied_values(quorum: &RaftQuorum) -> BTreeSet<u64> {
    quorum
        .image()
        .config_names(ConfigScope::Group)
        .iter()
        .filter_map(|n| n.strip_prefix('p')?.parse().ok())
        .collect()
}

/// The host software of voter `i`: start the quorum on the node's current data directory,
/// then propose until the budget is spent.
async fn run_node(shared: Rc<RefCell<Shared>>, i: usize) -> turmoil::Result {
    let (dir, io) = {
        let s = shared.borrow();
        (s.nodes[i].dir.clone(), Arc::clone(&s.nodes[i].io))
    };
    let voters = (0..VOTERS as usize)
        .map(|v| (NodeId(v as i32 + 1), format!("{}:{PORT}", name(v))))
        .collect();
    let listener = turmoil::net::TcpListener::bind(("0.0.0.0", PORT)).await?;
    let options = QuorumOptions {
        node_id: NodeId(i as i32 + 1),
        voters,
        dir,
        election_timeout_ms: 150,
        listener: None,
    };
    let quorum = RaftQuorum::start_on(
        options,
        io,
        Arc::new(SimNet),
        Some(Box::new(SimListener(listener))),
    )
    .await
    .map_err(|e| e.to_string())?;
    shared.borrow_mut().nodes[i].quorum = Some(Arc::clone(&quorum));
    let mut pause = 7 + i as u64 * 13;
    loop {
        let value = {
            let mut s = shared.borrow_mut();
            s.next_value += 1;
            s.next_value
        };
        if value > PROPOSALS {
            std::future::pending::<()>().await;
        }
        if let Ok(committed) = quorum.propose(command(value)).await {
            shared.borrow_mut().acked.push((committed.index, value));
        }
        pause = (pause * 31 + 17) % 97;
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
}

/// Everything observed so far, and the first violation found.
#[derive(Default)]
struct Checker {
    /// term -> the leader some node saw in it (and which node saw it).
    leaders: BTreeMap<u64, (u64, usize)>,
    /// Per node: the last term seen (across restarts), the last applied index in this run.
    terms: Vec<u64>,
    applied: Vec<Option<u64>>,
    /// Applied index -> the image's command set there, from whichever node got there.
    images: BTreeMap<u64, BTreeSet<u64>>,
    /// Per node: term -> the candidate its persisted vote named.
    votes: Vec<BTreeMap<u64, u64>>,
    vote_terms: Vec<u64>,
    /// The simulation step being observed (for traces).
    step: u64,
}

impl Checker {
    fn new() -> Checker {
        let n = VOTERS as usize;
        Checker {
            terms: vec![0; n],
            applied: vec![None; n],
            votes: vec![BTreeMap::new(); n],
            vote_terms: vec![0; n],
            ..Checker::default()
        }
    }

    fn observe(&mut self, shared: &Shared) -> Result<(), String> {
        for (i, node) in shared.nodes.iter().enumerate() {
            self.observe_vote(i, &node.dir)?;
            let Some(quorum) = &node.quorum else {
                continue;
            };
            let status = quorum.status();
            if status.term < self.terms[i] {
                return Err(format!(
                    "{}: term went back from {} to {}",
                    name(i),
                    self.terms[i],
                    status.term
                ));
            }
            self.terms[i] = status.term;
            if let Some(leader) = status.leader {
                self.observe_leader(i, status.term, leader.get() as u64)?;
            }
            let index = *quorum.applied().borrow();
            if self.applied[i].is_some_and(|last| index < last) {
                return Err(format!(
                    "{}: applied index went back from {:?} to {index}",
                    name(i),
                    self.applied[i]
                ));
            }
            if self.applied[i] != Some(index) {
                self.applied[i] = Some(index);
                self.observe_image(i, index, applied_values(quorum))?;
            }
        }
        Ok(())
    }

    /// Node `i` takes `leader` as the leader of `term`: no other node may see another.
    fn observe_leader(&mut self, i: usize, term: u64, leader: u64) -> Result<(), String> {
        match self.leaders.get(&term) {
            Some(&(other, by)) if other != leader => Err(format!(
                "two leaders in term {term}: {} saw n{other}, {} sees n{leader}",
                name(by),
                name(i)
            )),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(term, (leader, i));
                Ok(())
            }
        }
    }

    /// The image at `index` must equal any other seen at `index`, contain every image seen
    /// at a lower index and be contained in every one seen at a higher index.
    fn observe_image(&mut self, i: usize, index: u64, set: BTreeSet<u64>) -> Result<(), String> {
        if let Some(seen) = self.images.get(&index) {
            if *seen != set {
                return Err(format!(
                    "{}: image at index {index} differs from one seen before: {:?} vs {:?}",
                    name(i),
                    set.symmetric_difference(seen).collect::<Vec<_>>(),
                    index
                ));
            }
            return Ok(());
        }
        if let Some((lower, seen)) = self.images.range(..index).next_back() {
            if !seen.is_subset(&set) {
                return Err(format!(
                    "{}: image at index {index} lacks commands applied at index {lower}: {:?}",
                    name(i),
                    seen.difference(&set).collect::<Vec<_>>()
                ));
            }
        }
        if let Some((higher, seen)) = self.images.range(index + 1..).next() {
            if !set.is_subset(seen) {
                return Err(format!(
                    "{}: image at index {index} has commands missing at index {higher}: {:?}",
                    name(i),
                    set.difference(seen).collect::<Vec<_>>()
                ));
            }
        }
        self.images.insert(index, set);
        Ok(())
    }

    /// The vote in `dir/quorum-state`, as the log store persisted it.
    fn observe_vote(&mut self, i: usize, dir: &Path) -> Result<(), String> {
        let Ok(bytes) = std::fs::read(dir.join("quorum-state")) else {
            return Ok(());
        };
        let state: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: unreadable quorum-state: {e}", name(i)))?;
        let leader_id = &state["vote"]["leader_id"];
        let (Some(term), Some(candidate)) =
            (leader_id["term"].as_u64(), leader_id["voted_for"].as_u64())
        else {
            return Ok(());
        };
        if term < self.vote_terms[i] {
            return Err(format!(
                "{}: persisted vote's term went back from {} to {term}",
                name(i),
                self.vote_terms[i]
            ));
        }
        self.vote_terms[i] = term;
        if std::env::var_os("GREGOR_SIM_TRACE").is_some()
            && self.votes[i].get(&term) != Some(&candidate)
        {
            println!(
                "step {}: {}: vote {}",
                self.step,
                name(i),
                String::from_utf8_lossy(&bytes)
            );
        }
        if state["vote"]["committed"].as_bool() == Some(true) {
            // Not a grant: the node follows the leader the term elected (which may not be
            // the candidate it voted for).
            return self.observe_leader(i, term, candidate);
        }
        match self.votes[i].insert(term, candidate) {
            Some(before) if before != candidate => Err(format!(
                "{}: voted for n{before} and n{candidate} in term {term}",
                name(i)
            )),
            _ => Ok(()),
        }
    }
}

/// The power goes on node `i`: only what it fsynced is kept, in a new directory its next run
/// starts from.
fn crash(sim: &mut turmoil::Sim<'_>, shared: &Rc<RefCell<Shared>>, base: &Path, i: usize) {
    let old = {
        let mut s = shared.borrow_mut();
        let node = &mut s.nodes[i];
        node.io.crash_now();
        node.quorum.take()
    };
    sim.crash(name(i));
    drop(old);
    let mut s = shared.borrow_mut();
    let node = &mut s.nodes[i];
    node.generation += 1;
    let dir = base.join(format!("{}-{}", name(i), node.generation));
    node.io.materialise(&node.dir, &dir).unwrap();
    let io = Arc::new(FaultyIo::new());
    io.assume_durable(&dir).unwrap();
    node.dir = dir;
    node.io = io;
}

/// Runs one seed; `Err` names the first violation.
fn run_seed(seed: u64) -> Result<String, String> {
    let mut rng = Rng(seed);
    gregor::cluster::raft::runtime::seed_thread_rng(Some(seed ^ 0x5eed));
    let base = tempfile::tempdir().map_err(|e| e.to_string())?;
    let latency = 1 + rng.below(25);
    let fail_rate = [0.0, 0.0, 0.0005, 0.002][rng.below(4) as usize];
    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(Duration::from_secs(3600))
        .tick_duration(TICK)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(latency))
        .fail_rate(fail_rate)
        .repair_rate(0.05)
        .build();
    let nodes = (0..VOTERS as usize)
        .map(|i| {
            let dir = base.path().join(format!("{}-0", name(i)));
            std::fs::create_dir_all(&dir).unwrap();
            let io = Arc::new(FaultyIo::new());
            io.assume_durable(&dir).unwrap();
            Node {
                dir,
                io,
                generation: 0,
                quorum: None,
                restart_at: None,
            }
        })
        .collect();
    let shared = Rc::new(RefCell::new(Shared {
        nodes,
        next_value: 0,
        acked: Vec::new(),
    }));
    for i in 0..VOTERS as usize {
        let shared = Rc::clone(&shared);
        sim.host(name(i), move || run_node(Rc::clone(&shared), i));
    }
    let mut checker = Checker::new();
    let mut crashes = 0;
    let mut isolations = 0;
    let mut holds = 0;
    // Network faults in force: (node, step they end, held rather than cut).
    let mut cut: Vec<(usize, u64, bool)> = Vec::new();
    let all: Vec<String> = (0..VOTERS as usize).map(name).collect();
    let others = |i: usize| -> Vec<String> {
        all.iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| n.clone())
            .collect()
    };
    for step in 0..FAULT_STEPS + HEAL_STEPS {
        let faulting = step < FAULT_STEPS;
        if faulting {
            if rng.chance(300) {
                let i = rng.below(VOTERS as u64) as usize;
                if shared.borrow().nodes[i].restart_at.is_none() {
                    crash(&mut sim, &shared, base.path(), i);
                    if std::env::var_os("GREGOR_SIM_TRACE").is_some() {
                        println!("step {step}: crash {}", name(i));
                    }
                    // The image is rebuilt on restart: the applied index starts again.
                    checker.applied[i] = None;
                    shared.borrow_mut().nodes[i].restart_at = Some(step + 10 + rng.below(300));
                    crashes += 1;
                }
            }
            if rng.chance(240) {
                let i = rng.below(VOTERS as u64) as usize;
                let held = rng.chance(2);
                for o in others(i) {
                    if held {
                        sim.hold(name(i), o);
                    } else {
                        sim.partition(name(i), o);
                    }
                }
                cut.push((i, step + 10 + rng.below(300), held));
                if held {
                    holds += 1;
                } else {
                    isolations += 1;
                }
            }
        } else if step == FAULT_STEPS {
            for c in &mut cut {
                c.1 = step;
            }
            for node in shared.borrow_mut().nodes.iter_mut() {
                if node.restart_at.is_some() {
                    node.restart_at = Some(step);
                }
            }
            sim.set_fail_rate(0.0);
        }
        cut.retain(|&(i, until, held)| {
            if until > step {
                return true;
            }
            for o in others(i) {
                if held {
                    sim.release(name(i), o);
                } else {
                    sim.repair(name(i), o);
                }
            }
            false
        });
        for i in 0..VOTERS as usize {
            let due = shared.borrow().nodes[i]
                .restart_at
                .is_some_and(|at| at <= step);
            if due {
                shared.borrow_mut().nodes[i].restart_at = None;
                sim.bounce(name(i));
            }
        }
        sim.step().map_err(|e| format!("simulation failed: {e}"))?;
        checker.step = step;
        checker.observe(&shared.borrow())?;
        if !faulting && step % 20 == 0 && converged(&shared.borrow()) {
            break;
        }
    }
    let s = shared.borrow();
    if !converged(&s) {
        let applied: Vec<_> = s
            .nodes
            .iter()
            .map(|n| n.quorum.as_ref().map(|q| *q.applied().borrow()))
            .collect();
        return Err(format!(
            "the healed cluster did not converge: applied {applied:?}, {} proposals done",
            s.next_value.min(PROPOSALS)
        ));
    }
    for (i, node) in s.nodes.iter().enumerate() {
        let values = applied_values(node.quorum.as_ref().unwrap());
        for (index, value) in &s.acked {
            if !values.contains(value) {
                return Err(format!(
                    "{}: proposal {value}, acknowledged at index {index}, is not in the final image",
                    name(i)
                ));
            }
        }
    }
    Ok(format!(
        "{} acked, {crashes} crashes, {isolations} isolations, {holds} holds, latency <= {latency} ms, fail rate {fail_rate}, {} terms",
        s.acked.len(),
        checker.leaders.len()
    ))
}

/// Every node runs, all proposals are done, and every node applied the same last index.
fn converged(s: &Shared) -> bool {
    if s.next_value <= PROPOSALS {
        return false;
    }
    let applied: Vec<Option<u64>> = s
        .nodes
        .iter()
        .map(|n| n.quorum.as_ref().map(|q| *q.applied().borrow()))
        .collect();
    let max_acked = s.acked.iter().map(|(i, _)| *i).max().unwrap_or(0);
    applied
        .iter()
        .all(|a| a.is_some() && *a == applied[0] && a.unwrap_or(0) >= max_acked)
}

#[test]
fn quorum_simulation() {
    let seeds: Vec<u64> = match std::env::var("GREGOR_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("GREGOR_SIM_SEED is a number")],
        Err(_) => {
            let var = |name: &str, default: u64| {
                std::env::var(name)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(default)
            };
            let first = var("GREGOR_SIM_FIRST_SEED", 0);
            (first..first + var("GREGOR_SIM_SEEDS", 200)).collect()
        }
    };
    let started = std::time::Instant::now();
    for &seed in &seeds {
        match run_seed(seed) {
            Ok(summary) => {
                if seeds.len() == 1 {
                    println!("seed {seed}: {summary}");
                }
            }
            Err(violation) => panic!(
                "quorum simulation failed on seed {seed}: {violation}\n\
                 replay: GREGOR_SIM_SEED={seed} cargo test --test it quorum_sim -- --nocapture"
            ),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "quorum simulation: {} seeds in {secs:.1} s ({:.1} seeds/s)",
        seeds.len(),
        seeds.len() as f64 / secs
    );
}
