"""Start, stop and SIGKILL the JVMs of this suite: a Kafka Connect distributed worker
(org.apache.kafka.connect.cli.ConnectDistributed) and a MirrorMaker 2 driver
(org.apache.kafka.connect.mirror.MirrorMaker), with the classpath install.sh resolved from
Maven Central into compat/connect/target/classpath.txt.

Each JVM logs (slf4j-simple) into its own file in its work directory; its stdout/stderr go to
<name>.out beside it.  Every JVM is started with PR_SET_PDEATHSIG (dies with the test runner) and
killed at exit (no orphans).
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from broker import _die_with_parent, free_port, port_open

HERE = Path(__file__).resolve().parent
CLASSPATH_FILE = HERE / "target" / "classpath.txt"
# The Kafka version of the Connect stack (pom.xml): see the note there on why not 4.4.0.
KAFKA_VERSION = "4.3.1"
JAVA = os.environ.get("JAVA", "java")
JVM_OPTS = ["-Xms64m", "-Xmx768m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true"]

_LIVE: "set[JavaProcess]" = set()
# JVMs started during the current test (for the failure report)
_TOUCHED: "list[JavaProcess]" = []


def classpath() -> str:
    if not CLASSPATH_FILE.exists():
        raise AssertionError(f"{CLASSPATH_FILE} missing: run `bash compat/connect/install.sh` first")
    cp = CLASSPATH_FILE.read_text().strip()
    missing = [p for p in cp.split(os.pathsep) if p and not Path(p).exists()]
    if missing:
        raise AssertionError(f"classpath jars missing ({missing[:3]}...): rerun compat/connect/install.sh")
    return cp


def live_jvms(item=None) -> "list[JavaProcess]":
    return list(_TOUCHED)


def write_properties(path: Path, props: "dict[str, object]") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{k}={v}" for k, v in props.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class JavaProcess:
    def __init__(self, workdir: Path, name: str, main_class: str, args: "list[str]",
                 log_levels: "dict[str, str] | None" = None):
        self.log_levels = dict(log_levels or {})
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.main_class = main_class
        self.args = args
        self.log_path = self.workdir / f"{name}.log"
        self.out_path = self.workdir / f"{name}.out"
        self.proc: "subprocess.Popen | None" = None
        self.starts = 0

    def command(self) -> "list[str]":
        return [JAVA, *JVM_OPTS, "-cp", classpath(),
                f"-Dorg.slf4j.simpleLogger.logFile={self.log_path}",
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
                *(f"-Dorg.slf4j.simpleLogger.log.{k}={v}" for k, v in self.log_levels.items()),
                self.main_class, *self.args]

    def start(self) -> "JavaProcess":
        assert not self.running(), f"{self.name} already running"
        self.starts += 1
        with open(self.log_path, "a") as f:
            f.write(f"\n===== compat: start #{self.starts} of {self.name}\n")
        out = open(self.out_path, "ab")
        try:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=str(self.workdir),
                                         preexec_fn=_die_with_parent)
        finally:
            out.close()
        _LIVE.add(self)
        if self not in _TOUCHED:
            _TOUCHED.append(self)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=20)
        _LIVE.discard(self)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes longer than `timeout`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
        _LIVE.discard(self)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_text()
        try:
            text += "\n--- stdout/stderr ---\n" + "\n".join(
                self.out_path.read_text(errors="replace").splitlines()[-20:])
        except FileNotFoundError:
            pass
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with code {self.proc.returncode}\n{self.log_tail(40)}")


class ConnectWorker(JavaProcess):
    """A Connect worker in distributed mode with a REST listener on a free 127.0.0.1 port."""

    def __init__(self, workdir: Path, props: "dict[str, object]", name: str = "connect-worker"):
        self.rest_port = free_port()
        self.props = {**props, "listeners": f"http://127.0.0.1:{self.rest_port}"}
        self.props_path = write_properties(Path(workdir) / "worker.properties", self.props)
        super().__init__(workdir, name, "org.apache.kafka.connect.cli.ConnectDistributed",
                         [str(self.props_path)])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def wait_rest(self, timeout: float = 90.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if port_open(self.rest_port):
                try:
                    return self.rest("GET", "/")
                except (OSError, urllib.error.URLError, RestError):
                    pass  # Jetty answers 404 until the REST resources are registered
            time.sleep(0.3)
        raise AssertionError(f"Connect REST did not answer on {self.url} within {timeout}s\n{self.log_tail()}")

    def rest(self, method: str, path: str, body=None, ok=(200, 201, 202, 204), timeout: float = 30.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status not in ok:
            raise RestError(status, raw.decode(errors="replace"), f"{method} {path}")
        return json.loads(raw) if raw else None


class RestError(AssertionError):
    def __init__(self, status: int, body: str, what: str):
        super().__init__(f"{what} -> HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


class MirrorMaker(JavaProcess):
    """The dedicated MirrorMaker 2 driver (connect-mirror-maker.sh) with an mm2.properties."""

    def __init__(self, workdir: Path, props: "dict[str, object]", name: str = "mirror-maker",
                 clusters: "list[str] | None" = None, log_levels: "dict[str, str] | None" = None):
        self.props_path = write_properties(Path(workdir) / "mm2.properties", props)
        args = [str(self.props_path)]
        if clusters:  # --clusters: only the herders that write to these target clusters
            args += ["--clusters", *clusters]
        super().__init__(workdir, name, "org.apache.kafka.connect.mirror.MirrorMaker", args,
                         log_levels=log_levels)


def forget_touched() -> None:
    _TOUCHED.clear()


@atexit.register
def _kill_leftovers() -> None:
    for p in list(_LIVE):
        try:
            p.kill9()
        except Exception:
            pass
