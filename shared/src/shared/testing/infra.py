"""Session-wide local infrastructure for integration tests: Tansu and SecantusDB on free ports."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shared.localstack import processes as p


@dataclass
class LocalInfra:
    kafka_port: int
    mongo_port: int
    workdir: Path
    kafka: p.ManagedProcess | None = None
    mongo: p.ManagedProcess | None = None
    storage: str = ":memory:"
    extra: dict[str, p.ManagedProcess] = field(default_factory=dict)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def mongo_url(self) -> str:
        return p.mongo_url(self.mongo_port)

    def start_kafka(self) -> None:
        self.kafka = p.tansu(self.kafka_port, self.workdir / "kafka.log").start()
        p.wait_for_port("127.0.0.1", self.kafka_port, 30, self.kafka.proc)

    def start_mongo(self) -> None:
        self.mongo = p.secantus(self.mongo_port, self.storage, self.workdir / "mongo.log").start()
        p.wait_for_mongo(self.mongo_port, 60, self.mongo)

    def stop(self) -> None:
        for proc in [*self.extra.values(), self.kafka, self.mongo]:
            if proc is not None:
                proc.stop()


def start_infra(*, persistent: bool = False) -> LocalInfra:
    """Start both servers; ``persistent`` keeps Mongo data on disk (restart tests need it)."""
    workdir = Path(tempfile.mkdtemp(prefix="intercotour-infra-"))
    infra = LocalInfra(p.free_port(), p.free_port(), workdir)
    if persistent:
        infra.storage = str(workdir / "mongo-data")
    try:
        infra.start_kafka()
        infra.start_mongo()
    except Exception:
        infra.stop()
        raise
    return infra


def unique_db(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def infra_session() -> Iterator[LocalInfra]:
    infra = start_infra()
    try:
        yield infra
    finally:
        infra.stop()
