"""A tiny raw Kafka protocol client, only for what no real client here exposes:
topic IDs straight from a Metadata v12 response (flexible encoding).

Used by the durability suite to cross-check the topic IDs that
AdminClient.describe_topics() reports.
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
            raise ValueError("truncated Metadata response")
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
    api_key, version, corr = 3, 12, 7
    client_id = b"gregor-compat"
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id + b"\x00"
    # topics: null compact array (= all topics); allow_auto_topic_creation=false;
    # include_topic_authorized_operations=false; no tagged fields.
    body = b"\x00" + b"\x00" + b"\x00" + b"\x00"
    req = header + body
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        s.sendall(struct.pack(">i", len(req)) + req)
        size = struct.unpack(">i", _recv(s, 4))[0]
        resp = _recv(s, size)
    r = _Reader(resp)
    if r.i32() != corr:
        raise ValueError("correlation id mismatch")
    r.tagged()  # response header v1
    r.i32()  # throttle
    for _ in range(r.compact_array_len()):  # brokers
        r.i32(); r.compact_string(); r.i32(); r.compact_string(); r.tagged()
    r.compact_string()  # cluster id
    r.i32()  # controller id
    topics = {}
    for _ in range(r.compact_array_len()):
        err = r.i16()
        name = r.compact_string()
        tid = str(uuid.UUID(bytes=r.take(16)))
        r.i8()  # is_internal
        parts = {}
        for _ in range(r.compact_array_len()):
            r.i16()
            p = r.i32()
            leader = r.i32()
            r.i32()  # leader epoch
            for _arr in range(3):  # replicas, isr, offline
                for _ in range(r.compact_array_len()):
                    r.i32()
            r.tagged()
            parts[p] = leader
        r.i32()  # authorized ops
        r.tagged()
        topics[name] = {"topic_id": tid, "partitions": parts, "error": err}
    return topics


def _recv(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)
