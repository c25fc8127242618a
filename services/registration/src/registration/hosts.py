"""Host and staff use cases: attendee list and CSV export, availability, check-in at the door."""

from __future__ import annotations

import csv
import io
from typing import Any

from shared.auth import Principal
from shared.contracts.registration import CheckedInV1
from shared.errors import NotFound
from shared.uow import Tx, UnitOfWork

from registration.domain import HOLDS_PLACE, StopView, check_in_refusal
from registration.handlers import Clock, utcnow
from registration.places import Places
from registration.repository import Repo

CSV_COLUMNS = (
    "id", "status", "waitlist_position", "email", "first_name", "last_name", "organisation", "profile", "locale",
    "consent_contact", "consent_photo", "consent_recording", "date_changed", "cancelled_by", "checked_in_at",
    "created_at",
)
# Spreadsheet apps run cells starting with these as formulas (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class HostDesk:
    def __init__(self, uow: UnitOfWork, places: Places, clock: Clock = utcnow):
        self.uow = uow
        self.places = places
        self.clock = clock

    async def availability(self, stop_id: str) -> dict[str, Any]:
        stop = StopView.from_doc(await _stop(Repo(self.uow.db), stop_id))
        occ = stop.occupancy
        return {"capacity": occ.capacity, "confirmed": occ.confirmed, "offered": occ.offered,
                "waitlisted": occ.waitlisted, "available": occ.available, "status": stop.status}

    async def roster(self, principal: Principal, stop_id: str) -> list[dict[str, Any]]:
        """Every registration of the stop (any status), oldest first, waitlist positions computed."""
        repo = Repo(self.uow.db)
        principal.require_territory((await _stop(repo, stop_id)).get("territory_id"))
        regs = await repo.for_stop(stop_id)
        waiting = sorted((r for r in regs if r["status"] == "waitlisted"), key=lambda r: r["waitlist_seq"])
        positions = {r["_id"]: i for i, r in enumerate(waiting, start=1)}
        return [_row(reg, positions.get(reg["_id"])) for reg in regs]

    @staticmethod
    def to_csv(rows: list[dict[str, Any]]) -> bytes:
        """UTF-8 with BOM and ``;`` separators: what French spreadsheet apps open without a wizard."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in CSV_COLUMNS])
        return ("\ufeff" + out.getvalue()).encode("utf-8")

    async def check_in(self, principal: Principal, code: str, stop_id: str, nonce: str) -> dict[str, Any]:
        """Idempotent per (stop, nonce): a repeated scan replays the first answer."""
        principal.require_territory((await _stop(Repo(self.uow.db), stop_id)).get("territory_id"))
        scan_id = f"{stop_id}:{nonce}"

        async def work(tx: Tx) -> dict[str, Any]:
            repo = Repo.of(tx)
            if previous := await repo.scan(scan_id):
                return previous["answer"]
            now = self.clock()
            reg = await repo.by_code(code.strip().upper())
            reason = check_in_refusal(reg, stop_id)
            if reason is None:
                reg = await repo.transition(reg["_id"], set(HOLDS_PLACE) - {"checked_in"},
                                            {"status": "checked_in", "checked_in_at": now, "updated_at": now})
                tx.emit(self.places.event(CheckedInV1, reg, await repo.stop(stop_id), checked_in_at=now))
            # A code from another stop says nothing about that person to this stop's host.
            visible = reg is not None and reg["stop_id"] == stop_id
            answer = {"status": "ok" if reason is None else "error", "reason": reason,
                      "registration": _summary(reg) if visible else None,
                      "checked_in_at": reg.get("checked_in_at") if visible else None}
            await repo.save_scan(scan_id, answer, now)
            return answer

        return await self.uow.run(work)


async def _stop(repo: Repo, stop_id: str) -> dict[str, Any]:
    doc = await repo.stop(stop_id)
    if doc is None:
        raise NotFound(f"unknown stop {stop_id!r}", code="stop_not_found")
    return doc


def _summary(reg: dict[str, Any]) -> dict[str, Any]:
    return {"id": reg["_id"], "status": reg["status"], "first_name": reg["first_name"],
            "last_name": reg["last_name"], "organisation": reg["organisation"], "profile": reg["profile"]}


def _row(reg: dict[str, Any], position: int | None) -> dict[str, Any]:
    consents = reg.get("consents", {})
    return {
        **_summary(reg), "waitlist_position": position, "email": reg["email"], "locale": reg.get("locale", "fr"),
        "consent_contact": consents.get("contact"), "consent_photo": consents.get("photo"),
        "consent_recording": consents.get("recording"), "date_changed": reg.get("date_changed", False),
        "cancelled_by": reg.get("cancelled_by"), "checked_in_at": reg.get("checked_in_at"),
        "created_at": reg["created_at"],
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text
