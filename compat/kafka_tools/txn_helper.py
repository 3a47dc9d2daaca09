"""A transactional producer for the kafka-transactions tests (the tools cannot leave a transaction
open): commits one transaction of COMMITTED records to partition 0, opens a second one with OPEN
records, prints "open <producer-id-unknown>" and waits; on a line "commit" or "abort" on stdin (or
EOF = abort) it ends the transaction, prints "done" and exits.

    python txn_helper.py BOOTSTRAP TOPIC TRANSACTIONAL_ID COMMITTED OPEN
"""

import sys

import confluent_kafka as ck


def main() -> None:
    bootstrap, topic, txid, committed, open_ = sys.argv[1:6]
    p = ck.Producer({"bootstrap.servers": bootstrap, "transactional.id": txid,
                     "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(int(committed)):
        p.produce(topic, key=b"c%d" % i, value=b"committed-%d" % i, partition=0)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(int(open_)):
        p.produce(topic, key=b"o%d" % i, value=b"open-%d" % i, partition=0)
    assert p.flush(30) == 0
    print("open", flush=True)
    line = sys.stdin.readline().strip()
    if line == "commit":
        p.commit_transaction(30)
    else:
        p.abort_transaction(30)
    print("done", flush=True)


if __name__ == "__main__":
    main()
