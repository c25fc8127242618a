"""Watching the broker: is it reachable, and is it still the same log?

A broker that comes back with another cluster id has a new log: the local Tansu is memory-only, so
each start is empty (shared.localstack starts it with a fresh id); a rebuilt Kafka cluster too. The
offsets consumers had reached, and the ones they committed, mean nothing there: a consumer resuming
at offset 500 of the old log skips offsets 0..499 of the new one (issue #8). So on a new cluster id
the watcher recreates the topics and runs the runtime's reset steps (rewind the consumers, let the
relay republish) while its gate is closed; consumers pass the gate before each message and drop a
message fetched from the old log (it is read again after the rewind).

``available`` also drives HTTP: writes answer 503 while the broker is away (shared.http).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from aiokafka.admin import AIOKafkaAdminClient

from shared.logging import get_logger
from shared.messaging.broker import create_missing_topics

log = get_logger(__name__)

ResetStep = Callable[[], Awaitable[None]]


class BrokerWatch:
    def __init__(self, bootstrap: str, topics: Iterable[str], partitions: int, *,
                 interval: float = 1.0, timeout_ms: int = 5000):
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._partitions = partitions
        self._interval = interval
        self._timeout_ms = timeout_ms
        self._reset_steps: list[ResetStep] = []
        self._open = asyncio.Event()
        self.available = False
        self.cluster_id: str | None = None
        self.epoch = 0  # how many new logs were seen since start

    def on_new_log(self, step: ResetStep) -> None:
        """Run ``step`` (in registration order) when the broker comes back with a new log."""
        self._reset_steps.append(step)

    async def admit(self) -> bool:
        """Wait while the broker is away or being reset. False: a new log was taken up meanwhile, so
        what the caller fetched before waiting came from the old log and must not be processed."""
        epoch = self.epoch
        await self._open.wait()
        return epoch == self.epoch

    async def run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval)

    async def check(self) -> None:
        """One look at the broker; the gate opens only once a new log has been fully taken up."""
        try:
            cluster_id = await self._probe()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # down, or not answering in time
            if self.available:
                log.warning("broker.unavailable", error=repr(exc))
            self.available = False
            self._open.clear()
            return
        if self.cluster_id is not None and cluster_id != self.cluster_id:
            self._open.clear()
            log.warning("broker.new_log", previous=self.cluster_id, cluster_id=cluster_id)
            try:
                for step in self._reset_steps:
                    await step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep the gate closed and the old id: the next check retries
                log.warning("broker.reset_failed", error=repr(exc))
                self.available = False
                return
            self.epoch += 1
        if not self.available:
            log.info("broker.available", cluster_id=cluster_id, epoch=self.epoch)
        self.cluster_id = cluster_id
        self.available = True
        self._open.set()

    async def _probe(self) -> str:
        """The cluster id, with every topic present (a new log has none; Tansu does not recreate them)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, request_timeout_ms=self._timeout_ms)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            await create_missing_topics(admin, self._topics, self._partitions)
            return cluster["cluster_id"]
        finally:
            await admin.close()
