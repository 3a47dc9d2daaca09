"""A multi-process Gregor cluster for the compat suites: N combined-mode `gregor` processes
(broker and controller in one, `process.roles=broker,controller`) sharing one Raft metadata
quorum on 127.0.0.1.

Owns: choosing the client and controller ports, per-node work dirs (data in `node-N/data`,
stderr in `node-N/broker.stderr.log`, appended across restarts), spawning the nodes together,
waiting until every node serves and sees the whole cluster, SIGKILL / SIGTERM / restart of one
node or all, SIGSTOP / SIGCONT pauses (a node that is alive but silent), and a raw per-node view of the cluster metadata (rawkafka.cluster_metadata) for
comparing what each node says. Each node is a `broker.Broker`, so PDEATHSIG, the stderr log and
the at-exit cleanup are the same as for a single broker.

    c = Cluster(tmp_path, size=3)
    c.start()                      # all spawned at once; returns when all are ready
    c.kill(2); c.restart(2)        # SIGKILL node 2, start it again on the same ports and data
    c.pause(3); c.resume(3)        # SIGSTOP node 3 (it keeps its sockets but answers nothing)
    c.close()                      # SIGKILL whatever is left
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from broker import Broker, BrokerError, broker_binary, free_port, port_open
import rawkafka

READY_TIMEOUT_S = 30.0
# Tests lower the fencing delay so that a SIGKILLed node is seen as gone quickly (default 9000).
SESSION_TIMEOUT_MS = 2000


def free_ports(n: int) -> "list[int]":
    """n distinct ports that were free a moment ago (free_port() alone may repeat one)."""
    ports: "list[int]" = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


class ClusterNode(Broker):
    """One combined-mode node: a client listener and a controller (Raft) listener."""

    def __init__(self, workdir: Path, node_id: int, port: int, controller_port: int,
                 voters: str, extra_args: "list[str]", host: str = "127.0.0.1",
                 netns: "str | None" = None):
        super().__init__(workdir, extra_args=extra_args, port=port, name=f"node{node_id}")
        self.node_id = node_id
        self.controller_port = controller_port
        self.voters = voters
        self.host = host
        # A network namespace to run in (the fault suite's partitions), else the caller's own.
        self.netns = netns

    def command(self) -> "list[str]":
        wrap = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [
            *wrap,
            str(broker_binary()),
            "--set", f"node.id={self.node_id}",
            "--set", f"listeners=PLAINTEXT://{self.host}:{self.port},"
                     f"CONTROLLER://{self.host}:{self.controller_port}",
            "--set", f"controller.quorum.voters={self.voters}",
            "--set", f"log.dirs={self.data_dir}",
            *self.extra_args,
        ]

    def stderr_since_start(self) -> str:
        """stderr of the current process only (the log is appended across restarts)."""
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        marker = f"===== compat: start #{self.starts}:"
        i = text.rfind(marker)
        return text[i:] if i >= 0 else text


class Cluster:
    """N combined nodes, ids 1..N, one quorum. All waits are bounded; a failure to become ready
    raises BrokerError with every node's stderr tail."""

    def __init__(self, workdir: Path, size: int = 3, extra_args: "list[str] | None" = None,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS,
                 hosts: "list[str] | None" = None, netns: "list[str] | None" = None):
        """`hosts` and `netns` (one per node, optional): each node's address and the network
        namespace it runs in, for tests that cut the network between nodes."""
        self.workdir = Path(workdir)
        self.size = size
        ports = free_ports(2 * size)
        client_ports, controller_ports = ports[:size], ports[size:]
        hosts = hosts or ["127.0.0.1"] * size
        self.voters = ",".join(f"{i + 1}@{hosts[i]}:{cp}" for i, cp in enumerate(controller_ports))
        args = ["--set", f"broker.session.timeout.ms={session_timeout_ms}", *(extra_args or [])]
        self.nodes: "dict[int, ClusterNode]" = {
            i + 1: ClusterNode(self.workdir / f"node-{i + 1}", i + 1, client_ports[i],
                               controller_ports[i], self.voters, args, host=hosts[i],
                               netns=netns[i] if netns else None)
            for i in range(size)}
        self.startup_s: "float | None" = None
        # Nodes stopped with pause() and not resumed yet: running, but not answering.
        self.paused: "set[int]" = set()

    # ------------------------------------------------------------------ info
    def node(self, node_id: int) -> ClusterNode:
        return self.nodes[node_id]

    @property
    def ids(self) -> "list[int]":
        return sorted(self.nodes)

    def live_ids(self) -> "list[int]":
        return [i for i in self.ids if self.nodes[i].running()]

    @property
    def bootstrap(self) -> str:
        """Every node's client address, as a client's bootstrap.servers."""
        return ",".join(self.nodes[i].bootstrap for i in self.ids)

    def stderr_tails(self, lines: int = 60) -> "dict[int, str]":
        return {i: self.nodes[i].stderr_tail(lines) for i in self.ids}

    def _tails_text(self, lines: int = 40) -> str:
        return "\n".join(f"--- node {i} ({self.nodes[i].bootstrap}) stderr tail ---\n{t}"
                         for i, t in self.stderr_tails(lines).items())

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = READY_TIMEOUT_S) -> "Cluster":
        """Spawn every node at once (one alone waits for a majority), then wait for all."""
        t0 = time.monotonic()
        for i in self.ids:
            self.nodes[i].spawn()
        self.wait_ready(self.ids, timeout=timeout)
        self.startup_s = time.monotonic() - t0
        return self

    def kill(self, node_id: int) -> int:
        """SIGKILL one node, as a crash would (a paused node dies too)."""
        self.paused.discard(node_id)
        return self.nodes[node_id].kill9()

    def stop(self, node_id: int, timeout: float = 30.0) -> int:
        """SIGTERM one node (a clean shutdown, which fences it at once) and wait for exit."""
        return self.nodes[node_id].stop(signal.SIGTERM, timeout=timeout)

    def pause(self, node_id: int) -> None:
        """SIGSTOP one node: its process and sockets stay, it answers nothing (a GC pause or a
        frozen VM as its peers see it)."""
        n = self.nodes[node_id]
        if not n.running():
            raise BrokerError(f"node {node_id} is not running; cannot pause it")
        n.proc.send_signal(signal.SIGSTOP)
        self.paused.add(node_id)

    def resume(self, node_id: int) -> None:
        """SIGCONT a paused node."""
        n = self.nodes[node_id]
        if n.running():
            n.proc.send_signal(signal.SIGCONT)
        self.paused.discard(node_id)

    def kill_all(self) -> None:
        for i in self.ids:
            self.kill(i)

    def restart(self, *node_ids: int, timeout: float = READY_TIMEOUT_S) -> float:
        """Start the given (stopped) nodes again on the same ports and data; return the seconds
        until all of them serve and see every live node."""
        t0 = time.monotonic()
        for i in node_ids:
            if self.nodes[i].running():
                raise BrokerError(f"node {i} is still running; kill or stop it first")
            self.nodes[i].spawn()
        self.wait_ready(list(node_ids), timeout=timeout)
        return time.monotonic() - t0

    def close(self) -> None:
        """Teardown: no process left behind."""
        for n in self.nodes.values():
            n.close()

    # ------------------------------------------------------------------ readiness
    def wait_ready(self, node_ids: "list[int]", timeout: float = READY_TIMEOUT_S) -> None:
        """Until each of `node_ids` accepts clients and its own Metadata lists every running node
        as a broker. The Metadata is asked of that node alone (raw request), so a node that
        serves but has not caught up with the quorum is not taken as ready."""
        deadline = time.monotonic() + timeout
        pending = set(node_ids)
        last: "dict[int, str]" = {i: "not polled yet" for i in pending}
        while pending:
            want = set(self.live_ids())
            for i in sorted(pending):
                n = self.nodes[i]
                rc = n.proc.poll() if n.proc else None
                if n.proc is None or rc is not None:
                    raise BrokerError(f"node {i} exited with code {rc} before it was ready\n"
                                      f"{self._tails_text()}")
                if not port_open(n.port, n.host):
                    last[i] = "client port not open"
                    continue
                try:
                    md = rawkafka.cluster_metadata(n.host, n.port, timeout=3)
                except (OSError, ValueError) as e:
                    last[i] = f"Metadata failed: {e!r}"
                    continue
                seen = set(md["brokers"])
                if want <= seen:
                    pending.discard(i)
                else:
                    last[i] = f"lists brokers {sorted(seen)}, want {sorted(want)}"
            if not pending:
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"nodes {sorted(pending)} not ready within {timeout}s: "
                    f"{ {i: last[i] for i in sorted(pending)} }\n{self._tails_text()}")
            time.sleep(0.1)

    # ------------------------------------------------------------------ per-node views
    def metadata(self, node_id: int, timeout: float = 5.0) -> dict:
        """This node's own Metadata (v12, all topics), see rawkafka.cluster_metadata."""
        n = self.nodes[node_id]
        return rawkafka.cluster_metadata(n.host, n.port, timeout=timeout)

    def wait_metadata(self, check, node_ids: "list[int] | None" = None, timeout: float = 20.0,
                      what: str = "condition") -> "dict[int, dict]":
        """Poll every node's own Metadata until check({id: metadata}) is true; return the views."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            ids = node_ids or self.live_ids()
            try:
                views = {i: self.metadata(i) for i in ids}
                if check(views):
                    return views
                last = views
            except (OSError, ValueError) as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout}s; last views: {last}\n"
                                     f"{self._tails_text(25)}")
            time.sleep(0.2)

    def fencing_events(self) -> "list[str]":
        """Every "broker liveness changed" line any node has logged (all starts), prefixed with
        the node that logged it: what the active controllers decided about fencing."""
        out = []
        for i in self.ids:
            try:
                text = self.nodes[i].stderr_path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            out += [f"node {i}: {ln}" for ln in text.splitlines() if "broker liveness changed" in ln]
        return out

    def assert_nobody_fenced(self, why: str = "") -> None:
        """No broker has been fenced so far: call it while no node has been killed or stopped,
        since a live broker fenced is a false fencing (its partitions go leaderless)."""
        fenced = [ln for ln in self.fencing_events() if "fenced=true" in ln]
        assert not fenced, (f"live brokers were fenced{' ' + why if why else ''}:\n"
                            + "\n".join(fenced))

    def __repr__(self) -> str:
        return f"<Cluster {self.bootstrap} voters={self.voters}>"
