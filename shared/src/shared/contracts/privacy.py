"""RGPD erasure: a request fans out to every service, each confirms what it erased."""

from __future__ import annotations

from typing import ClassVar

from shared.contracts import topics
from shared.contracts.base import Event


class ErasureRequestedV1(Event):
    TOPIC: ClassVar[str] = topics.PRIVACY_REQUESTS
    TYPE: ClassVar[str] = "privacy.erasure.requested.v1"
    request_id: str
    email: str

    def key(self) -> str:
        return self.request_id


class ErasureCompletedV1(Event):
    TOPIC: ClassVar[str] = topics.PRIVACY_CONFIRMATIONS
    TYPE: ClassVar[str] = "privacy.erasure.completed.v1"
    request_id: str
    service: str
    records: int

    def key(self) -> str:
        return self.request_id


EVENTS = (ErasureRequestedV1, ErasureCompletedV1)
