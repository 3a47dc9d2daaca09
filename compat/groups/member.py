"""One consumer-group member, run as a subprocess by test_groups.py.

usage: member.py BOOTSTRAP GROUP TOPIC OUTFILE CONFIG_JSON

Consumes TOPIC in GROUP (subscribe) with confluent-kafka, committing every message
synchronously after logging it.  OUTFILE gets one line per event, flushed at once:

    P <partition> <offset> <value>   processed (logged before its commit)
    C <partition> <offset> ok|err    result of that message's synchronous commit
    A <p,p,...> <eager|incremental>  partitions assigned (the whole set for eager)
    R <p,p,...>                      partitions revoked
    L <p,p,...>                      partitions lost
    READY                            first assignment received
    S <unix time>                    about to subscribe
    F <unix time>                    first record received
    CLOSED                           close() returned

SIGTERM makes it close() (LeaveGroup for dynamic members); SIGKILL is a crash.
"""

from __future__ import annotations

import json
import signal
import sys
import time

from confluent_kafka import Consumer, KafkaException


def main() -> int:
    bootstrap, group, topic, outfile, conf_json = sys.argv[1:6]
    extra = json.loads(conf_json)
    out = open(outfile, "a", buffering=1)

    def log(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    stop = {"flag": False}

    def on_term(_sig, _frm):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, on_term)
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }
    conf.update(extra)
    c = Consumer(conf)
    # KIP-848 (group.protocol=consumer) rebalances are always incremental.
    cooperative = (conf.get("partition.assignment.strategy") == "cooperative-sticky"
                   or conf.get("group.protocol") == "consumer")
    ready = {"done": False}

    def parts(ps) -> str:
        return ",".join(str(p.partition) for p in sorted(ps, key=lambda p: p.partition)) or "-"

    def on_assign(consumer, ps):
        proto = consumer.rebalance_protocol() if hasattr(consumer, "rebalance_protocol") else ""
        kind = "incremental" if (cooperative or proto == "COOPERATIVE") else "eager"
        log(f"A {parts(ps)} {kind}")
        if not ready["done"]:
            ready["done"] = True
            log("READY")

    def on_revoke(_consumer, ps):
        log(f"R {parts(ps)}")

    def on_lost(_consumer, ps):
        log(f"L {parts(ps)}")

    log(f"S {time.time():.3f}")
    first = {"seen": False}
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not stop["flag"]:
        msg = c.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            log(f"E {msg.error()}")
            continue
        p, o = msg.partition(), msg.offset()
        if not first["seen"]:
            first["seen"] = True
            log(f"F {time.time():.3f}")
        log(f"P {p} {o} {msg.value().decode()}")
        try:
            c.commit(message=msg, asynchronous=False)
            log(f"C {p} {o} ok")
        except KafkaException as e:
            log(f"C {p} {o} err {e.args[0].code()}")
    t0 = time.monotonic()
    c.close()
    log(f"CLOSED {time.monotonic() - t0:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
