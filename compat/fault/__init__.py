"""Fault-injection suite (issue 12): a 3-node gregor cluster under a seeded random nemesis
(kill -9 of a node, a leader, the controller, all nodes; SIGSTOP pauses), real-client workloads
recording every operation, and a checker over those histories and each replica's on-disk log.
See test_fault.py for how to run it (bounded in CI, long behind environment variables)."""
