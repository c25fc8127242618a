"""A small client of the whole stack for end-to-end tests: logins, services, captured mail."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date

import httpx

from shared.testing.eventually import eventually
from shared.testing.mail import MailCaptureClient

TOKEN_RE = re.compile(r"token=([A-Za-z0-9_\-\.%]+)")


@dataclass
class Circuit:
    urls: dict[str, str]

    def client(self, service: str, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=f"{self.urls[service]}/api/v1", headers=headers, timeout=30)

    def mail(self) -> MailCaptureClient:
        return MailCaptureClient(self.urls["mail"])

    async def login(self, email: str, password: str) -> str:
        async with self.client("venues") as venues:
            response = await venues.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def staff(self) -> str:
        return await self.login("admin@intercotour.local", "intercotour-admin")

    async def new_host(self, staff: str, region: str) -> tuple[str, str]:
        """A territory in ``region`` with its host; returns (territory_id, host token)."""
        suffix = uuid.uuid4().hex[:6]
        async with self.client("venues", staff) as venues:
            territory = await venues.post("/territories", json={
                "name": f"Territoire test {suffix}", "kind": "department", "region": region,
                "contact": {"name": "Contact", "email": f"contact-{suffix}@example.org"}})
            assert territory.status_code == 201, territory.text
            territory_id = territory.json()["id"]
            email = f"host-{suffix}@example.org"
            host = await venues.post(f"/territories/{territory_id}/hosts",
                                     json={"email": email, "password": "a-long-host-password", "name": "Hôte"})
            assert host.status_code == 201, host.text
        return territory_id, await self.login(email, "a-long-host-password")

    async def open_stop(self, staff: str, host: str, territory_id: str, region: str, *, capacity: int,
                        season: int | None = None) -> dict:
        """Propose (as the host), accept (staff), open registration (host); wait until registration knows it."""
        season = season or date.today().year + 2
        day = date(season, 6, 16)
        async with self.client("venues", host) as venues:
            proposed = await venues.post("/stops", json={
                "season": season, "region": region, "territory_id": territory_id, "city": "Bourges",
                "venue": {"name": "Palais des congrès", "address": "1 rue du Test", "lat": 47.08, "lon": 2.39,
                          "accessibility": "Accès de plain-pied"},
                "date": day.isoformat(), "starts_at": f"{day}T09:00:00+02:00", "ends_at": f"{day}T13:00:00+02:00",
                "theme": "Le numérique au service des territoires", "capacity": capacity})
            assert proposed.status_code == 201, proposed.text
            stop = proposed.json()
            assert stop["status"] == "proposed"
        async with self.client("venues", staff) as venues:
            accepted = await venues.post(f"/stops/{stop['id']}/accept")
            assert accepted.status_code == 200, accepted.text
        async with self.client("venues", host) as venues:
            opened = await venues.post(f"/stops/{stop['id']}/open-registration")
            assert opened.status_code == 200, opened.text
        await self.wait_open(stop["id"])
        return opened.json()

    async def wait_open(self, stop_id: str) -> None:
        async with self.client("registration") as registration:
            async def known():
                response = await registration.get(f"/stops/{stop_id}/availability")
                return response.status_code == 200 and response.json()["status"] == "registration_open"

            await eventually(known, timeout=60, interval=0.3)

    async def sign_up(self, stop_id: str, email: str, **extra) -> httpx.Response:
        body = {"email": email, "first_name": "Camille", "last_name": "Durand", "organisation": "Ville de Test",
                "profile": "public_sector_staff", "consents": {"contact": True, "photo": False, "recording": False}}
        body.update(extra)
        async with self.client("registration") as registration:
            return await registration.post(f"/stops/{stop_id}/registrations", json=body)

    async def mails_to(self, address: str, count: int = 1, timeout: float = 60) -> list[dict]:
        async with self.mail() as mail:
            async def arrived():
                found = await mail.messages_to(address)
                return found if len(found) >= count else None

            return await eventually(arrived, timeout=timeout, interval=0.3)

    async def message(self, message_id: str) -> dict:
        async with self.mail() as mail:
            return await mail.message(message_id)


def token_from(url_or_text: str) -> str:
    match = TOKEN_RE.search(url_or_text)
    assert match, f"no token in {url_or_text[:200]!r}"
    return httpx.URL("http://x/?token=" + match.group(1)).params["token"]
