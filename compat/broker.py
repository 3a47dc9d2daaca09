"""Start, stop, kill and restart a real `gregor` broker process for the compat suites.

The broker binary is `target/debug/gregor` in the repository root unless the
environment variable GREGOR_BIN names another one.  Each Broker gets its own
work directory holding the log dir (`data/`) and the broker's stderr
(`broker.stderr.log`, appended across restarts so a failure report shows the
whole story).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIN = REPO_ROOT / "target" / "debug" / "gregor"
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 30.0
NODE_ID = 1

_LIVE: "set[Broker]" = set()


def broker_binary() -> Path:
    return Path(os.environ.get("GREGOR_BIN", str(DEFAULT_BIN)))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the broker if the test runner dies (no orphans)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


class BrokerError(AssertionError):
    pass


class Broker:
    """One gregor process (and its successors after restart()) on a fixed port and data dir."""

    def __init__(self, workdir: Path, extra_args: "list[str] | None" = None,
                 port: "int | None" = None, name: str = "gregor"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = self.workdir / "broker.stderr.log"
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.node_id = NODE_ID
        self.name = name
        self.proc: "subprocess.Popen | None" = None
        self.starts = 0
        self.exit_codes: "list[int]" = []

    # ------------------------------------------------------------------ info
    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def command(self) -> "list[str]":
        return [
            str(broker_binary()),
            "--listeners", f"PLAINTEXT://{self.host}:{self.port}",
            "--log-dirs", str(self.data_dir),
            "--node-id", str(self.node_id),
            *self.extra_args,
        ]

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_tail(self, lines: int = 80) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no stderr captured)"
        return "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------ lifecycle
    def start(self, ready_timeout: float = READY_TIMEOUT_S) -> "Broker":
        self.spawn()
        self._wait_ready(ready_timeout)
        return self

    def spawn(self) -> "Broker":
        """Start the process without waiting for it to serve. A cluster node needs this: it
        serves only once a majority of the quorum is up, so its peers must be spawned first."""
        if self.running():
            raise BrokerError("broker already running")
        binary = broker_binary()
        if not binary.exists():
            raise BrokerError(
                f"gregor binary not found at {binary}: run `cargo build` first or set GREGOR_BIN")
        self.starts += 1
        with open(self.stderr_path, "ab") as f:
            f.write(f"\n===== compat: start #{self.starts}: {' '.join(self.command())}\n".encode())
        err = open(self.stderr_path, "ab")
        env = dict(os.environ)
        # GREGOR_BIN is the harness's own knob; the broker reads every other GREGOR_* variable
        # as a setting and (rightly) refuses to start on an unknown one.
        # So are the fault suite's GREGOR_FAULT_* knobs (compat/fault/test_fault.py).
        env.pop("GREGOR_BIN", None)
        for k in [k for k in env if k.startswith("GREGOR_FAULT_")]:
            env.pop(k)
        env.setdefault("RUST_BACKTRACE", "1")
        try:
            self.proc = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env=env, cwd=str(self.workdir), preexec_fn=_die_with_parent)
        finally:
            err.close()
        _LIVE.add(self)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                raise BrokerError(
                    f"gregor exited with code {rc} before accepting connections on "
                    f"{self.bootstrap}\n--- stderr tail ---\n{self.stderr_tail()}")
            if port_open(self.port):
                return
            time.sleep(0.05)
        self.kill9()
        raise BrokerError(
            f"gregor did not accept connections on {self.bootstrap} within {timeout}s\n"
            f"--- stderr tail ---\n{self.stderr_tail()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Send `sig` and wait (bounded) for exit. Returns the exit code
        (negative = killed by that signal, as subprocess reports it)."""
        if self.proc is None:
            raise BrokerError("broker was never started")
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                self.exit_codes.append(self.proc.returncode)
                raise BrokerError(
                    f"gregor did not exit within {timeout}s after signal {signal.Signals(sig).name}; "
                    f"SIGKILLed it\n--- stderr tail ---\n{self.stderr_tail()}")
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        _LIVE.discard(self)
        return rc

    def kill9(self) -> int:
        """SIGKILL, as a crash would. Returns the exit code (-9)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - kernel weirdness
                pass
        rc = self.proc.returncode
        self.exit_codes.append(rc)
        _LIVE.discard(self)
        return rc

    def restart(self, sig: "int | None" = signal.SIGTERM,
                ready_timeout: float = READY_TIMEOUT_S) -> "Broker":
        """Stop (if running, with `sig`) and start again on the same port and data dir."""
        if self.running():
            if sig is None or sig == signal.SIGKILL:
                self.kill9()
            else:
                rc = self.stop(sig)
                if rc != 0:
                    raise BrokerError(f"gregor exited {rc} on {signal.Signals(sig).name}"
                                      f"\n--- stderr tail ---\n{self.stderr_tail()}")
        return self.start(ready_timeout=ready_timeout)

    def close(self) -> None:
        """Teardown: make sure no process is left behind."""
        if self.proc is not None and self.proc.poll() is None:
            self.kill9()
        _LIVE.discard(self)

    def __repr__(self) -> str:
        return f"<Broker {self.bootstrap} data={self.data_dir} running={self.running()}>"


@atexit.register
def _kill_leftovers() -> None:
    for b in list(_LIVE):
        try:
            b.close()
        except Exception:
            pass
