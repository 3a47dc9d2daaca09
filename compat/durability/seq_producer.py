"""Producer process for the SIGKILL-under-load test.

    python seq_producer.py BOOTSTRAP TOPIC START_SEQ ACK_FILE [MAX_SECONDS [CODEC]]

Sends records with value = decimal sequence number (START_SEQ, START_SEQ+1, ...)
to partition 0 with acks=all and enable.idempotence=True, at a bounded rate,
and appends one line "SEQ OFFSET" to ACK_FILE for every record whose delivery
report carried no error.  SIGTERM (or MAX_SECONDS) stops it: it stops
producing, waits briefly for outstanding reports, and exits.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from confluent_kafka import Producer

RATE_PER_S = 5000
CHUNK = 30


def main() -> int:
    bootstrap, topic, start_seq, ack_path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    max_s = float(sys.argv[5]) if len(sys.argv) > 5 else 120.0
    codec = sys.argv[6] if len(sys.argv) > 6 else "none"
    stop = {"flag": False}

    def on_term(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    acks = open(ack_path, "a", buffering=1)
    failures = {"n": 0}

    def dr(err, msg):
        if err is None:
            acks.write(f"{msg.value().decode()} {msg.offset()}\n")
        else:
            failures["n"] += 1

    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 2,
        "compression.type": codec,
        "message.timeout.ms": 60000,
        "socket.timeout.ms": 5000,
        "reconnect.backoff.max.ms": 500,
        "log_level": 3,
    })
    seq = start_seq
    t0 = next_t = time.monotonic()
    while not stop["flag"] and time.monotonic() - t0 < max_s:
        for _ in range(CHUNK):
            try:
                p.produce(topic, value=str(seq).encode(), partition=0, on_delivery=dr)
                seq += 1
            except BufferError:
                break
        p.poll(0)
        # pace to RATE_PER_S (poll() returns early whenever it serves a report)
        next_t += CHUNK / RATE_PER_S
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    # Bounded wait for the reports that can still arrive, then leave.
    p.flush(3.0)
    p.poll(0)
    acks.flush()
    os.fsync(acks.fileno())
    acks.close()
    sys.stderr.write(f"seq_producer: sent {seq - start_seq} failed_reports {failures['n']}\n")
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
