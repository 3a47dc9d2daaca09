"""Reads a partition's log straight from a node's data directory, for the fault checker's
"final logs of every replica" comparison: no broker is asked, so a replica's bytes are judged as
they lie on its disk.

A partition directory (`<log.dirs>/<topic>-<partition>/`) holds segments named by their 20-digit
base offset; each `.log` file is a sequence of Kafka record batches (magic 2), the format every
Kafka client writes. Only uncompressed batches are decoded record by record (the fault workloads
produce with compression none); a compressed batch is reported with its offsets but no values.

The parse never trusts a length beyond the bytes present: a torn tail (a batch cut short by a
power loss that the broker's recovery has not truncated yet) ends the segment's parse and is
reported, not raised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

try:  # Verify batch CRCs when the codec is there (it is in compat/requirements.txt).
    import crc32c as _crc32c
except ImportError:  # pragma: no cover - the checker still works, only without CRC checks
    _crc32c = None

# Record batch v2 header: baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
# crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
# producerId i64, producerEpoch i16, baseSequence i32, recordCount i32.
_HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_LEN = _HEADER.size  # 61
# batchLength counts from the partitionLeaderEpoch field on, i.e. after these 12 bytes.
_LEN_PREFIX = 12
# The CRC covers everything from the attributes field to the end of the batch.
_CRC_FROM = 21

ATTR_COMPRESSION_MASK = 0x07
ATTR_TRANSACTIONAL = 0x10
ATTR_CONTROL = 0x20

CONTROL_ABORT = 0
CONTROL_COMMIT = 1


class LogFormatError(ValueError):
    """Bytes that are not a well-formed record batch (beyond a torn tail)."""


@dataclass
class Record:
    offset: int
    key: "bytes | None"
    value: "bytes | None"
    headers: "list[tuple[str, bytes | None]]" = field(default_factory=list)


@dataclass
class Batch:
    base_offset: int
    last_offset: int
    leader_epoch: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    attributes: int
    crc_ok: "bool | None"
    records: "list[Record]"
    # For a control batch: CONTROL_ABORT or CONTROL_COMMIT (the marker's type), else None.
    control_type: "int | None" = None

    @property
    def transactional(self) -> bool:
        return bool(self.attributes & ATTR_TRANSACTIONAL)

    @property
    def control(self) -> bool:
        return bool(self.attributes & ATTR_CONTROL)

    @property
    def compressed(self) -> bool:
        return bool(self.attributes & ATTR_COMPRESSION_MASK)


@dataclass
class SegmentParse:
    batches: "list[Batch]"
    # Bytes after the last whole batch: a torn tail, or garbage. 0 for a clean segment.
    trailing_bytes: int = 0
    error: "str | None" = None


class _Cursor:
    """Bounds-checked reader over one batch's record area."""

    def __init__(self, buf: bytes, pos: int = 0, end: "int | None" = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise LogFormatError(f"wants {n} bytes at {self.pos}, batch ends at {self.end}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def i8(self) -> int:
        return struct.unpack(">b", self.take(1))[0]

    def varint(self) -> int:
        """Zig-zag varint (records use it for lengths, deltas and counts)."""
        shift = 0
        raw = 0
        while True:
            if shift > 63:
                raise LogFormatError("varint longer than 10 bytes")
            b = self.take(1)[0]
            raw |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
        return (raw >> 1) ^ -(raw & 1)

    def nbytes(self) -> "bytes | None":
        n = self.varint()
        return None if n < 0 else self.take(n)


def _records(buf: bytes, start: int, end: int, base_offset: int, count: int) -> "list[Record]":
    c = _Cursor(buf, start, end)
    out: "list[Record]" = []
    for _ in range(count):
        length = c.varint()
        if length < 0:
            raise LogFormatError(f"negative record length {length}")
        rec_end = c.pos + length
        if rec_end > end:
            raise LogFormatError("record runs past its batch")
        r = _Cursor(buf, c.pos, rec_end)
        r.i8()  # attributes (unused)
        r.varint()  # timestamp delta
        offset_delta = r.varint()
        key = r.nbytes()
        value = r.nbytes()
        headers = []
        for _h in range(r.varint()):
            hk = r.nbytes()
            headers.append(((hk or b"").decode(errors="replace"), r.nbytes()))
        out.append(Record(base_offset + offset_delta, key, value, headers))
        c.pos = rec_end
    return out


def parse_segment(buf: bytes) -> SegmentParse:
    """Every whole batch in one `.log` file's bytes, in file order."""
    batches: "list[Batch]" = []
    pos = 0
    while pos < len(buf):
        if len(buf) - pos < HEADER_LEN:
            return SegmentParse(batches, len(buf) - pos, "short batch header at end of segment")
        (base, blen, epoch, magic, crc, attrs, last_delta, _ts0, _tsmax, pid, pepoch, bseq,
         count) = _HEADER.unpack_from(buf, pos)
        end = pos + _LEN_PREFIX + blen
        if blen < HEADER_LEN - _LEN_PREFIX or end > len(buf):
            # A batch the file does not hold whole: the torn tail of an interrupted append.
            return SegmentParse(batches, len(buf) - pos,
                                f"batch at byte {pos} claims {blen} bytes, file has "
                                f"{len(buf) - pos - _LEN_PREFIX}")
        if magic != 2:
            return SegmentParse(batches, len(buf) - pos, f"magic {magic} at byte {pos}")
        crc_ok = None
        if _crc32c is not None:
            crc_ok = _crc32c.crc32c(buf[pos + _CRC_FROM:end]) == crc
        records: "list[Record]" = []
        control_type = None
        if not attrs & ATTR_COMPRESSION_MASK:
            try:
                records = _records(buf, pos + HEADER_LEN, end, base, count)
            except LogFormatError as e:
                return SegmentParse(batches, len(buf) - pos, f"batch at byte {pos}: {e}")
            if attrs & ATTR_CONTROL and records and records[0].key and len(records[0].key) >= 4:
                control_type = struct.unpack(">hh", records[0].key[:4])[1]
        batches.append(Batch(base, base + last_delta, epoch, pid, pepoch, bseq, attrs, crc_ok,
                             records, control_type))
        pos = end
    return SegmentParse(batches)


@dataclass
class PartitionLog:
    """One replica's log of one partition, as found on disk."""
    path: Path
    batches: "list[Batch]"
    problems: "list[str]"

    def data_records(self) -> "dict[int, bytes | None]":
        """offset -> value of every non-control record."""
        return {r.offset: r.value for b in self.batches if not b.control for r in b.records}

    @property
    def end_offset(self) -> int:
        return self.batches[-1].last_offset + 1 if self.batches else 0


def read_partition_dir(path: Path) -> PartitionLog:
    """Parse every segment of one partition directory in base-offset order."""
    segs = sorted(p for p in Path(path).glob("*.log") if p.stem.isdigit())
    batches: "list[Batch]" = []
    problems: "list[str]" = []
    for seg in segs:
        parsed = parse_segment(seg.read_bytes())
        batches += parsed.batches
        if parsed.error:
            problems.append(f"{seg.name}: {parsed.error} ({parsed.trailing_bytes} bytes)")
        bad = [b.base_offset for b in parsed.batches if b.crc_ok is False]
        if bad:
            problems.append(f"{seg.name}: CRC mismatch in batches at offsets {bad}")
    return PartitionLog(Path(path), batches, problems)


def partition_dir(data_dir: Path, topic: str, partition: int) -> Path:
    return Path(data_dir) / f"{topic}-{partition}"
