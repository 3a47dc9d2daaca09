"""A tiny raw Kafka protocol client, only for what no real client here exposes:
topic IDs straight from a Metadata v12 response (flexible encoding), and one broker's own
answer (Metadata, FindCoordinator) rather than whichever broker a client library picks.

Used by the durability suite to cross-check the topic IDs that
AdminClient.describe_topics() reports, and by the cluster suite to compare what each node of a
cluster says.
"""

from __future__ import annotations

import socket
import struct
import uuid


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Reader:
    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.buf):
            raise ValueError("truncated response")
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def i8(self):
        return struct.unpack(">b", self.take(1))[0]

    def i16(self):
        return struct.unpack(">h", self.take(2))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def uvarint(self) -> int:
        shift = n = 0
        while True:
            b = self.take(1)[0]
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7

    def compact_string(self):
        n = self.uvarint()
        return None if n == 0 else self.take(n - 1).decode()

    def compact_array_len(self) -> int:
        n = self.uvarint()
        return -1 if n == 0 else n - 1

    def tagged(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def metadata_v12(host: str, port: int, timeout: float = 10.0) -> dict:
    """All topics: {name: {"topic_id": str, "partitions": {p: leader}, "error": code}}."""
    md = cluster_metadata(host, port, timeout)
    return {name: {"topic_id": t["topic_id"],
                   "partitions": {p: v["leader"] for p, v in t["partitions"].items()},
                   "error": t["error"]}
            for name, t in md["topics"].items()}


def cluster_metadata(host: str, port: int, timeout: float = 10.0) -> dict:
    """One broker's whole Metadata v12 answer (all topics, no auto-creation):
    {"brokers": {id: (host, port, rack)}, "cluster_id": str, "controller_id": int,
     "topics": {name: {"topic_id": str, "error": code, "internal": bool,
                       "partitions": {p: {"error", "leader", "leader_epoch", "replicas", "isr",
                                          "offline"}}}}}."""
    # topics: null compact array (= all topics); allow_auto_topic_creation=false;
    # include_topic_authorized_operations=false; no tagged fields.
    r = _Reader(_request(host, port, 3, 12, b"\x00" + b"\x00" + b"\x00" + b"\x00",
                         flexible=True, timeout=timeout))
    r.i32()  # throttle
    brokers = {}
    for _ in range(r.compact_array_len()):
        node_id = r.i32()
        bhost = r.compact_string()
        bport = r.i32()
        rack = r.compact_string()
        r.tagged()
        brokers[node_id] = (bhost, bport, rack)
    cluster_id = r.compact_string()
    controller_id = r.i32()
    topics = {}
    for _ in range(r.compact_array_len()):
        err = r.i16()
        name = r.compact_string()
        tid = str(uuid.UUID(bytes=r.take(16)))
        internal = bool(r.i8())
        parts = {}
        for _ in range(r.compact_array_len()):
            perr = r.i16()
            p = r.i32()
            leader = r.i32()
            epoch = r.i32()
            replicas, isr, offline = ([r.i32() for _ in range(r.compact_array_len())]
                                      for _arr in range(3))
            r.tagged()
            parts[p] = {"error": perr, "leader": leader, "leader_epoch": epoch,
                        "replicas": replicas, "isr": isr, "offline": offline}
        r.i32()  # authorized ops
        r.tagged()
        topics[name] = {"topic_id": tid, "error": err, "internal": internal, "partitions": parts}
    return {"brokers": brokers, "cluster_id": cluster_id, "controller_id": controller_id,
            "topics": topics}


def find_coordinator(host: str, port: int, key: str, key_type: int = 0,
                     timeout: float = 10.0) -> dict:
    """FindCoordinator v2 asked of this broker: {"error", "node_id", "host", "port"}.
    key_type 0 = consumer group, 1 = transactional id."""
    k = key.encode()
    r = _Reader(_request(host, port, 10, 2, struct.pack(">h", len(k)) + k + struct.pack(">b", key_type),
                         flexible=False, timeout=timeout))
    r.i32()  # throttle
    err = r.i16()
    msg_len = r.i16()
    if msg_len > 0:
        r.take(msg_len)
    node_id = r.i32()
    hlen = r.i16()
    chost = r.take(hlen).decode() if hlen > 0 else ""
    cport = r.i32()
    return {"error": err, "node_id": node_id, "host": chost, "port": cport}


def _request(host: str, port: int, api_key: int, version: int, body: bytes, flexible: bool,
             timeout: float) -> bytes:
    """Send one request (header v2 if flexible, else v1) and return the response body after
    its header."""
    corr = 7
    client_id = b"gregor-compat"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    req = header + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    if struct.unpack(">i", resp[:4])[0] != corr:
        raise ValueError("correlation id mismatch")
    if flexible:
        r = _Reader(resp[4:])
        r.tagged()  # response header v1
        return resp[4 + r.pos:]
    return resp[4:]


def _recv(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)
