"""Viewers following regions: double opt-in, preferences and one-click unsubscribe
through signed links (no account). Nothing but the confirmation email is sent
before confirmation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from notifications import repository as repo
from notifications.domain import locale_of, normalize_email, notification_key
from shared.auth import LinkSigner
from shared.contracts.notifications import FollowerConfirmedV1
from shared.errors import NotFound
from shared.uow import Tx, UnitOfWork

UNSUBSCRIBED = "unsubscribed"


class Followers:
    def __init__(self, uow: UnitOfWork, signer: LinkSigner):
        self.uow = uow
        self.signer = signer

    async def follow(self, email: str, regions: list[str], topics: list[str], locale: str | None) -> None:
        """Always accepted the same way (202) so the answer never tells whether an address follows already."""
        address = normalize_email(email)
        wanted = {"regions": sorted(set(regions)), "topics": sorted(set(topics)), "locale": locale_of(locale)}

        async def work(tx: Tx) -> None:
            follower = await repo.follower_by_email(tx.db, address, tx.session)
            if follower is not None and follower["status"] == "confirmed":
                return  # changes go through the signed preference link, never through this open form
            follower = follower or {"_id": str(uuid.uuid4()), "email": address, "status": "pending",
                                    "regions": [], "topics": [], "locale": wanted["locale"],
                                    "created_at": datetime.now(UTC)}
            follower.update(status="pending", requested=wanted, requested_at=datetime.now(UTC))
            await repo.save_follower(tx.db, follower, tx.session)
            request_id = uuid.uuid4().hex
            await repo.enqueue(tx.db, [repo.new_delivery(
                notification_key(f"follow:{request_id}", address, "follow_confirm"), channel="email",
                kind="follow_confirm", recipient=address, locale=wanted["locale"],
                data={"follower_id": follower["_id"], "regions": wanted["regions"]})], tx.session)

        await self.uow.run(work)

    async def confirm(self, token: str | None) -> dict[str, Any]:
        follower_id = self.signer.verify(token, "follow-confirm")["s"]

        async def work(tx: Tx) -> dict[str, Any]:
            follower = await repo.follower_by_id(tx.db, follower_id, tx.session)
            if follower is None:
                raise NotFound("this subscription no longer exists")
            if follower["status"] == "pending" and follower.get("requested"):
                requested = follower.pop("requested")
                follower.update(status="confirmed", regions=requested["regions"], topics=requested["topics"],
                                locale=requested["locale"], confirmed_at=datetime.now(UTC))
                await repo.save_follower(tx.db, follower, tx.session)
                # Following again after a one-click unsubscribe lifts that opt-out (never a bounce).
                await repo.lift_suppression(tx.db, follower["email"], UNSUBSCRIBED, tx.session)
                tx.emit(FollowerConfirmedV1(follower_id=follower_id, regions=follower["regions"],
                                            topics=follower["topics"]))
            return _public(follower)

        return await self.uow.run(work)

    async def preferences(self, token: str | None) -> dict[str, Any]:
        email = self.signer.verify(token, "preferences")["s"]
        follower = await repo.follower_by_email(self.uow.db, email)
        if follower is None:
            raise NotFound("no subscription for this address")
        return _public(follower)

    async def update_preferences(self, token: str | None, regions: list[str] | None, topics: list[str] | None,
                                 unsubscribe_all: bool) -> dict[str, Any]:
        email = self.signer.verify(token, "preferences")["s"]
        if unsubscribe_all:
            await self._unsubscribe(email)
            follower = await repo.follower_by_email(self.uow.db, email)
            return _public(follower) if follower else {"status": UNSUBSCRIBED, "regions": [], "topics": []}

        async def work(tx: Tx) -> dict[str, Any]:
            follower = await repo.follower_by_email(tx.db, email, tx.session)
            if follower is None or follower["status"] != "confirmed":
                raise NotFound("no confirmed subscription for this address")
            if regions is not None:
                follower["regions"] = sorted(set(regions))
            if topics is not None:
                follower["topics"] = sorted(set(topics))
            await repo.save_follower(tx.db, follower, tx.session)
            return _public(follower)

        return await self.uow.run(work)

    async def unsubscribe(self, token: str | None) -> None:
        await self._unsubscribe(self.signer.verify(token, "unsubscribe")["s"])

    async def _unsubscribe(self, email: str) -> None:
        """Stops every non-transactional email to this address, follower or not (attendees get digests too)."""
        async def work(tx: Tx) -> None:
            follower = await repo.follower_by_email(tx.db, email, tx.session)
            if follower is not None:
                follower.update(status=UNSUBSCRIBED, unsubscribed_at=datetime.now(UTC))
                follower.pop("requested", None)
                await repo.save_follower(tx.db, follower, tx.session)
            await repo.suppress(tx.db, email, UNSUBSCRIBED, "one-click or preference page", session=tx.session)

        await self.uow.run(work)


def _public(follower: dict[str, Any]) -> dict[str, Any]:
    return {"status": follower["status"], "regions": follower.get("regions", []), "topics": follower.get("topics", []),
            "locale": follower.get("locale", "fr")}
