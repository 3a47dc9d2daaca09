"""Network namespaces for the fault suite's partitions: each cluster node runs in its own
namespace with its own address on a private bridge, so traffic between two nodes can be cut
while the test's clients (in the root namespace, on the bridge's address) still reach all.

Why routes and not packet filters: this machine has no iptables or nft, and its kernel loads no
tc classifier or action modules; a `blackhole` route in a node's namespace does the job: that
node's packets to the other address are dropped (a new connection fails at once, an
established one stalls as if the wire were cut). A cut from a to b is a route in a's namespace;
cutting both ways adds the reverse route in b's.

Needs root and `ip` (iproute2). Everything created is named with a per-lab tag and removed by
close() (also at exit), so a crashed run leaves nothing behind for long.
"""

from __future__ import annotations

import atexit
import os
import subprocess

_LIVE: "set[NetLab]" = set()


def available() -> bool:
    """Root with a working `ip netns` (probed by creating and deleting one namespace)."""
    if os.geteuid() != 0:
        return False
    name = f"gfprobe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", name], check=True, capture_output=True, timeout=10)
        return True
    except (OSError, subprocess.SubprocessError):
        return False


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


class NetLab:
    """A bridge with n namespaces on it: node i (1-based) at 10.<x>.<y>.(10+i), the root side
    (the clients) at 10.<x>.<y>.1."""

    def __init__(self, n: int):
        pid = os.getpid()
        self.tag = f"gf{pid % 100000}"
        # A /24 per process, so two suites at once do not share addresses.
        self.net = f"10.{200 + pid % 50}.{(pid // 50) % 250}"
        self.bridge = f"br{self.tag}"
        self.n = n
        self.cuts: "set[tuple[int, int]]" = set()
        _LIVE.add(self)
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.net}.1/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for i in range(1, n + 1):
                ns, host_end, ns_end = self.ns(i), f"v{self.tag}{i}", f"e{self.tag}{i}"
                _ip("netns", "add", ns)
                _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
                _ip("link", "set", ns_end, "netns", ns)
                _ip("link", "set", host_end, "master", self.bridge)
                _ip("link", "set", host_end, "up")
                _ip("-n", ns, "addr", "add", f"{self.addr(i)}/24", "dev", ns_end)
                _ip("-n", ns, "link", "set", ns_end, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
        except Exception:
            self.close()
            raise

    def ns(self, i: int) -> str:
        return f"{self.tag}n{i}"

    def addr(self, i: int) -> str:
        return f"{self.net}.{10 + i}"

    def cut(self, a: int, b: int) -> None:
        """Drop every packet node a sends to node b (one way)."""
        if (a, b) not in self.cuts:
            _ip("-n", self.ns(a), "route", "add", "blackhole", f"{self.addr(b)}/32")
            self.cuts.add((a, b))

    def isolate(self, a: int, others: "list[int]", one_way: bool = False) -> None:
        """Cut a from each of `others` (both ways unless one_way: then a only cannot send)."""
        for b in others:
            self.cut(a, b)
            if not one_way:
                self.cut(b, a)

    def heal(self) -> None:
        for a, b in sorted(self.cuts):
            try:
                _ip("-n", self.ns(a), "route", "del", "blackhole", f"{self.addr(b)}/32")
            except subprocess.SubprocessError:
                pass  # the namespace is gone already
        self.cuts.clear()

    def close(self) -> None:
        for i in range(1, self.n + 1):
            subprocess.run(["ip", "netns", "del", self.ns(i)], capture_output=True, timeout=10)
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=10)
        _LIVE.discard(self)


@atexit.register
def _cleanup() -> None:
    for lab in list(_LIVE):
        lab.close()
