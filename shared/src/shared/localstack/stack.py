"""The whole local stack as child processes: broker, database, mail capture, the four
services and the portal. `make run` uses it with the default ports; tests, faults and
benchmarks use it on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from shared.auth import ensure_keypair
from shared.localstack import processes as p

SERVICES = ("venues", "registration", "replays", "notifications", "portal")
LOCAL_LINK_SECRET = "local-stack-link-secret"


@dataclass
class StackPorts:
    kafka: int = 9092
    mongo: int = 27017
    smtp: int = 1025
    mail: int = 8025
    portal: int = 8000
    venues: int = 8001
    registration: int = 8002
    replays: int = 8003
    notifications: int = 8004

    @classmethod
    def from_env(cls) -> "StackPorts":
        defaults = cls()
        return cls(**{name: int(os.environ.get(f"INTERCOTOUR_{name.upper()}_PORT", getattr(defaults, name)))
                      for name in defaults.__dataclass_fields__})

    @classmethod
    def free(cls) -> "StackPorts":
        return cls(**{name: p.free_port() for name in cls.__dataclass_fields__})


@dataclass
class LocalStack:
    data_dir: Path
    ports: StackPorts = field(default_factory=StackPorts)
    mongo_storage: str | None = None  # default: <data_dir>/mongo, kept across restarts
    extra_env: dict[str, dict[str, str]] = field(default_factory=dict)
    processes: dict[str, p.ManagedProcess] = field(default_factory=dict)
    instance_urls: dict[str, str] = field(default_factory=dict)  # extra instances, by "name#n"

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        self.log_dir = self.data_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir = self.data_dir / "keys"
        _, self.public_key = ensure_keypair(self.keys_dir)

    @property
    def mongo_url(self) -> str:
        return p.mongo_url(self.ports.mongo)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports.kafka}"

    @property
    def urls(self) -> dict[str, str]:
        urls = {name: f"http://127.0.0.1:{getattr(self.ports, name)}" for name in SERVICES}
        urls["mail"] = f"http://127.0.0.1:{self.ports.mail}"
        return urls

    def service_env(self, name: str) -> dict[str, str]:
        """Every setting a service needs, by environment (as docker-compose and k8s pass them)."""
        prefix = f"{name.upper()}_"
        env = {
            "MODE": "local",
            "HTTP_HOST": "127.0.0.1",
            "HTTP_PORT": str(getattr(self.ports, name)),
            "PUBLIC_BASE_URL": self.urls[name],
            "PORTAL_BASE_URL": self.urls["portal"],
            "MONGO_URL": self.mongo_url,
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "JWT_PUBLIC_KEY_FILE": str(self.public_key),
            "LINK_SECRET": f"{LOCAL_LINK_SECRET}-{name}",
            "LOG_FORMAT": os.environ.get("INTERCOTOUR_LOG_FORMAT", "console"),
            # Tansu keeps its log in memory: keep 10 minutes of published events to give it back.
            "RELAY_RETAIN_SECONDS": "600",
        }
        if name == "venues":
            env["KEYS_DIR"] = str(self.keys_dir)
        if name == "notifications":
            env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(self.ports.smtp), WEBHOOK_ALLOW_PRIVATE="true")
        if name == "portal":
            env.update({f"{svc.upper()}_URL": self.urls[svc] for svc in SERVICES if svc != "portal"})
            env.update(MAIL_URL=self.urls["mail"], SESSION_SECRET="local-stack-session-secret")
        env.update(self.extra_env.get(name, {}))
        return {prefix + key: value for key, value in env.items()}

    def _log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start_infra(self) -> None:
        kafka = self.processes["kafka"] = p.tansu(self.ports.kafka, self._log("kafka")).start()
        storage = self.mongo_storage or str(self.data_dir / "mongo")
        mongo = self.processes["mongodb"] = p.secantus(self.ports.mongo, storage, self._log("mongodb")).start()
        mail = self.processes["mail"] = p.mailcapture(self.ports.smtp, self.ports.mail, self._log("mail")).start()
        p.wait_for_port("127.0.0.1", self.ports.kafka, 30, kafka.proc)
        p.wait_for_mongo(self.ports.mongo, 60, mongo)
        p.wait_for_http(f"{self.urls['mail']}/ready", 30, mail.proc)

    def start_service(self, name: str, wait: bool = True) -> p.ManagedProcess:
        proc = self.processes[name] = p.ManagedProcess(
            name, [sys.executable, "-m", f"{name}.main"], env=self.service_env(name), log_path=self._log(name)
        ).start()
        if wait:
            self.wait_ready(name)
        return proc

    def start_instance(self, name: str, instance: int, wait: bool = True) -> tuple[p.ManagedProcess, str]:
        """Another instance of a service on its own port (same database, same consumer group):
        kept as ``processes[f"{name}#{instance}"]``; returns (process, base URL)."""
        key, port = f"{name}#{instance}", p.free_port()
        url = f"http://127.0.0.1:{port}"
        env = self.service_env(name)
        prefix = f"{name.upper()}_"
        env.update({prefix + "HTTP_PORT": str(port), prefix + "PUBLIC_BASE_URL": url})
        proc = self.processes[key] = p.ManagedProcess(
            key, [sys.executable, "-m", f"{name}.main"], env=env, log_path=self._log(key)).start()
        self.instance_urls[key] = url
        if wait:
            try:
                p.wait_for_http(f"{url}/ready", 90, proc.proc)
            except (TimeoutError, RuntimeError) as exc:
                raise RuntimeError(f"{key} did not become ready: {exc}\n{self.log_tail(key)}") from exc
        return proc, url

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        try:
            p.wait_for_http(f"{self.urls[name]}/ready", timeout, self.processes[name].proc)
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{name} did not become ready: {exc}\n--- {name}.log (tail) ---\n{self.log_tail(name)}") from exc

    def start_services(self, names: tuple[str, ...] = SERVICES) -> None:
        for name in names:
            self.start_service(name, wait=False)
        with ThreadPoolExecutor(len(names)) as pool:
            list(pool.map(self.wait_ready, names))

    def seed(self) -> str:
        """Load the 2022 season and the demo season (idempotent)."""
        result = subprocess.run(
            [sys.executable, "-m", "venues.seed"], env={**os.environ, **self.service_env("venues")},
            capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"seed failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def start(self, seed: bool = True) -> "LocalStack":
        try:
            self.start_infra()
            self.start_services()
            if seed:
                self.seed()
        except BaseException:
            self.stop()
            raise
        return self

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str) -> None:
        proc = self.processes[name]
        proc.stop()
        if name in SERVICES:
            self.start_service(name)
        else:
            proc.start()
            if name == "mongodb":
                p.wait_for_mongo(self.ports.mongo, 60, proc)
            elif name == "kafka":
                p.wait_for_port("127.0.0.1", self.ports.kafka, 30, proc.proc)

    def stop(self) -> None:
        # Extra instances and services first (they flush and release leases), infrastructure last.
        instances = [name for name in self.processes if "#" in name]
        for name in [*instances, *reversed(SERVICES), "mail", "kafka", "mongodb"]:
            if name in self.processes:
                self.processes[name].stop()

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self._log(name)
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def wait_all_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        for name in SERVICES:
            self.wait_ready(name, max(1.0, deadline - time.monotonic()))
