"""The fault suite's nemesis: a seeded random schedule of faults against a `cluster.Cluster`,
each healed before the next one starts, with a timeline of what it did and when.

Faults (one at a time; the target is drawn with the same seeded generator when the fault
starts, since "the leader of partition 2" is only known then):

  kill_random      SIGKILL one node, restart it after the hold
  kill_leader      SIGKILL the leader of a random partition of the data topic
  kill_controller  SIGKILL the active controller (the Raft leader, Metadata's controller_id)
  kill_all         SIGKILL every node at once (power loss), restart them together
  pause            SIGSTOP one node for longer than broker.session.timeout.ms, then SIGCONT

With a `netlab.NetLab` (each node in its own network namespace), three more:

  partition_leader  cut the leader of a random data partition off from both other nodes
  partition_random  cut a random node off from the other two (minority / majority)
  partition_oneway  a random node can no longer send to the other two (it still receives)

The clients stay connected to every node throughout (they are on the bridge), as in a real
partition between brokers.

After each heal the nemesis polls Metadata until every partition of the watched topics has a
leader and its whole replica set in the ISR, and records how long that took (a liveness
figure; None when the bound passed first).
"""

from __future__ import annotations

import random
import time

from broker import BrokerError
from cluster import Cluster

FAULTS = ("kill_random", "kill_leader", "kill_controller", "kill_all", "pause")
NET_FAULTS = ("partition_leader", "partition_random", "partition_oneway")

# Hold times (seconds) per fault, drawn uniformly. A leader kill is held long enough for a
# failover to show (fencing after the 2 s session timeout, election, client metadata refresh),
# a pause longer than the session timeout so the paused node is fenced.
HOLD_S = {"kill_random": (3.0, 8.0), "kill_leader": (6.0, 12.0), "kill_controller": (3.0, 8.0),
          "kill_all": (1.0, 4.0), "pause": (3.0, 6.0), "partition_leader": (4.0, 10.0),
          "partition_random": (4.0, 10.0), "partition_oneway": (4.0, 10.0)}
GAP_S = (1.0, 4.0)
FULL_ISR_BOUND_S = 15.0
RESTART_TIMEOUT_S = 60.0


def full_isr(md: dict, topics: "list[str]") -> bool:
    """Every partition of `topics` in this Metadata view has a leader and ISR == replicas."""
    for t in topics:
        ti = md["topics"].get(t)
        if ti is None or ti["error"] != 0 or not ti["partitions"]:
            return False
        for p in ti["partitions"].values():
            if p["leader"] < 0 or sorted(p["isr"]) != sorted(p["replicas"]):
                return False
    return True


class Nemesis:
    def __init__(self, cluster: Cluster, rng: random.Random, topics: "list[str]",
                 data_topic: str, faults: "tuple[str, ...]" = FAULTS, lab=None):
        self.cluster = cluster
        self.lab = lab
        self.rng = rng
        self.topics = topics
        self.data_topic = data_topic
        self.faults = faults
        self.timeline: "list[dict]" = []
        self.heal_failures: "list[str]" = []

    # ------------------------------------------------------------------ cluster views
    def responsive(self) -> "list[int]":
        return [i for i in self.cluster.live_ids() if i not in self.cluster.paused]

    def metadata(self) -> "dict | None":
        """Metadata from the first responsive node that answers."""
        for i in self.responsive():
            try:
                return self.cluster.metadata(i, timeout=3)
            except (OSError, ValueError):
                continue
        return None

    def wait_full_isr(self, bound: float = FULL_ISR_BOUND_S) -> "float | None":
        """Seconds until every responsive node reports a full ISR everywhere; None past bound."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < bound:
            ok = True
            for i in self.responsive():
                try:
                    if not full_isr(self.cluster.metadata(i, timeout=3), self.topics):
                        ok = False
                        break
                except (OSError, ValueError):
                    ok = False
                    break
            if ok and self.responsive():
                return time.monotonic() - t0
            time.sleep(0.2)
        return None

    # ------------------------------------------------------------------ faults
    def _pick_target(self, fault: str) -> "tuple[list[int], dict]":
        """(nodes to hit, details for the timeline)."""
        ids = self.cluster.ids
        if fault == "kill_all":
            return list(ids), {}
        md = self.metadata()
        if fault in ("kill_leader", "partition_leader") and md is not None:
            parts = md["topics"].get(self.data_topic, {}).get("partitions", {})
            if parts:
                p = self.rng.choice(sorted(parts))
                leader = parts[p]["leader"]
                if leader in ids:
                    return [leader], {"partition": p}
        if fault == "kill_controller" and md is not None and md["controller_id"] in ids:
            return [md["controller_id"]], {}
        # kill_random and pause pick any node; a leader or controller kill that found no view
        # or no such node named falls back to that and says so.
        detail = ({} if fault in ("kill_random", "pause", "partition_random", "partition_oneway")
                  else {"fallback": True})
        return [self.rng.choice(ids)], detail

    def run(self, until: float) -> None:
        """Faults until monotonic time `until`; every fault healed before returning. With no
        faults it only waits (a baseline run: the workloads alone must pass the checker)."""
        if not self.faults:
            time.sleep(max(0.0, until - time.monotonic()))
            return
        while True:
            fault = self.rng.choice(self.faults)
            hold = self.rng.uniform(*HOLD_S[fault])
            gap = self.rng.uniform(*GAP_S)
            if time.monotonic() + hold > until:
                break
            self.one(fault, hold)
            time.sleep(max(0.0, min(gap, until - time.monotonic())))

    def one(self, fault: str, hold: float) -> None:
        nodes, detail = self._pick_target(fault)
        ev = {"fault": fault, "nodes": nodes, "hold_s": round(hold, 3), **detail,
              "t": time.monotonic()}
        self.timeline.append(ev)
        if fault.startswith("partition_"):
            if self.lab is None:
                raise ValueError(f"{fault} needs a NetLab (nodes in network namespaces)")
            for n in nodes:
                others = [o for o in self.cluster.ids if o != n]
                self.lab.isolate(n, others, one_way=fault == "partition_oneway")
        elif fault == "pause":
            for n in nodes:
                self.cluster.pause(n)
        elif fault == "kill_all":
            self.cluster.kill_all()
        else:
            for n in nodes:
                self.cluster.kill(n)
        time.sleep(hold)
        self.heal()
        ev["healed_t"] = time.monotonic()
        ev["heal_to_full_isr_s"] = self.wait_full_isr()

    def heal(self) -> None:
        """Reconnect the network, resume every paused node and restart every dead one
        (together, so a quorum can form after a power loss)."""
        if self.lab is not None:
            self.lab.heal()
        for n in sorted(self.cluster.paused):
            self.cluster.resume(n)
        dead = [i for i in self.cluster.ids if not self.cluster.node(i).running()]
        if dead:
            try:
                self.cluster.restart(*dead, timeout=RESTART_TIMEOUT_S)
            except BrokerError as e:
                self.heal_failures.append(f"restart {dead}: {str(e)[:2000]}")
