"""In-memory stand-ins for the four services and the mail capture, speaking their HTTP contract.

For tests and for trying the portal alone: ``httpx.MockTransport(FakeBackends())``
answers every backend call without a network. ``down`` simulates an outage.
Behaviour is deliberately small: enough rules (capacity, waitlist, offers,
validation errors, roles) to exercise every page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

URLS = {
    "venues_url": "http://venues.fake", "registration_url": "http://registration.fake",
    "replays_url": "http://replays.fake", "notifications_url": "http://notifications.fake",
    "mail_url": "http://mail.fake",
}
STAFF = ("admin@intercotour.local", "intercotour-admin", "staff-token")
HOST_NOR = ("host-nor@intercotour.local", "intercotour-host", "host-nor-token")
Handler = Callable[..., httpx.Response]


def _error(status: int, code: str, detail: str, fields: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"error": code, "detail": detail, "fields": fields or {}})


def _stop(stop_id: str, region: str, city: str, lat: float, lon: float, status: str, capacity: int,
          territory: str) -> dict[str, Any]:
    return {
        "id": stop_id, "season": "2022", "region": region, "territory_id": territory,
        "territory_name": f"Territoire {city}", "city": city,
        "venue": {"name": f"Centre des congrès de {city}", "address": f"1 place de la Mairie, {city}", "lat": lat,
                  "lon": lon, "accessibility": "Accès de plain-pied, boucle magnétique"},
        "date": "2022-06-14", "starts_at": "2022-06-14T09:00:00+02:00", "ends_at": "2022-06-14T13:00:00+02:00",
        "theme": "Le numérique responsable : avenir des territoires ?", "capacity": capacity, "status": status,
        "sequence": 0,
        "sessions": [{"id": f"{stop_id}-s1", "kind": "opening", "title": "Ouverture", "room": "Amphi A",
                      "starts_at": "2022-06-14T09:00:00+02:00", "ends_at": "2022-06-14T09:30:00+02:00",
                      "speakers": [{"name": "Claire Martin", "role": "Maire", "organisation": city}]}],
    }


@dataclass
class FakeBackends:
    portal_url: str = "http://127.0.0.1:8000"
    down: set[str] = field(default_factory=set)
    stops: dict[str, dict[str, Any]] = field(default_factory=dict)
    registrations: dict[str, dict[str, Any]] = field(default_factory=dict)
    replays: dict[str, dict[str, Any]] = field(default_factory=dict)
    followers: dict[str, dict[str, Any]] = field(default_factory=dict)
    mails: list[dict[str, Any]] = field(default_factory=list)
    checkins: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    idempotency_keys: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for stop in [_stop("rouen", "NOR", "Rouen", 49.4431, 1.0993, "registration_open", 2, "t-nor"),
                     _stop("nevers", "BFC", "Nevers", 46.9896, 3.159, "registration_open", 50, "t-bfc"),
                     _stop("chateau", "HDF", "Château-Thierry", 49.0464, 3.4030, "proposed", 40, "t-hdf")]:
            self.stops[stop["id"]] = stop
        self.replays["rep1"] = {
            "id": "rep1", "stop_id": "nevers", "session_id": "nevers-s1", "session_kind": "opening",
            "title": "Ouverture à Nevers", "description": "Le discours d'ouverture.", "provider": "youtube",
            "url": "https://www.youtube.com/watch?v=abc", "embed_url": "https://www.youtube-nocookie.com/embed/abc",
            "duration_s": 1800, "chapters": [{"at_s": 0, "title": "Accueil"}], "processing": "ready",
            "publication": "published", "city": "Nevers", "region": "BFC", "theme": "Ville intelligente",
            "season": "2022", "speakers": [],
        }
        self.routes: list[tuple[str, str, re.Pattern[str], Handler]] = []
        for host, method, pattern, handler in self._table():
            self.routes.append((host, method, re.compile(f"^/api/v1{pattern}$"), handler))

    # -- transport ---------------------------------------------------------------------------------------------
    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host.split(".")[0]
        self.calls.append((request.method, f"{host}{request.url.path}"))
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        for route_host, method, pattern, handler in self.routes:
            match = pattern.match(request.url.path)
            if route_host == host and method == request.method and match:
                body = json.loads(request.content) if request.content else None
                return handler(request, body, **match.groupdict())
        return _error(404, "not_found", f"no route {request.method} {request.url.path}")

    def _table(self) -> list[tuple[str, str, str, Handler]]:
        return [
            ("venues", "POST", "/auth/login", self.login),
            ("venues", "GET", "/stops", self.list_stops),
            ("venues", "POST", "/stops", self.create_stop),
            ("venues", "GET", r"/stops/(?P<stop_id>[\w-]+)\.ics", self.ics),
            ("venues", "GET", r"/stops/(?P<stop_id>[\w-]+)", self.get_stop),
            ("venues", "PATCH", r"/stops/(?P<stop_id>[\w-]+)", self.patch_stop),
            ("venues", "POST", r"/stops/(?P<stop_id>[\w-]+)/sessions", self.add_session),
            ("venues", "PATCH", r"/stops/(?P<stop_id>[\w-]+)/sessions/(?P<session_id>[\w-]+)", self.patch_session),
            ("venues", "DELETE", r"/stops/(?P<stop_id>[\w-]+)/sessions/(?P<session_id>[\w-]+)", self.delete_session),
            ("venues", "POST", r"/stops/(?P<stop_id>[\w-]+)/(?P<action>[\w-]+)", self.stop_action),
            ("registration", "POST", r"/stops/(?P<stop_id>[\w-]+)/registrations", self.sign_up),
            ("registration", "GET", r"/stops/(?P<stop_id>[\w-]+)/availability", self.availability_of),
            ("registration", "GET", r"/stops/(?P<stop_id>[\w-]+)/registrations", self.attendees),
            ("registration", "GET", r"/stops/(?P<stop_id>[\w-]+)/registrations\.csv", self.attendees_csv),
            ("registration", "GET", r"/registrations/(?P<reg_id>[\w-]+)", self.get_registration),
            ("registration", "GET", r"/registrations/(?P<reg_id>[\w-]+)/qr\.svg", self.qr),
            ("registration", "POST", r"/registrations/(?P<reg_id>[\w-]+)/(?P<action>[\w-]+)", self.reg_action),
            ("registration", "POST", "/checkins", self.check_in),
            ("replays", "GET", "/replays", self.list_replays),
            ("replays", "POST", "/replays", self.create_replay),
            ("replays", "PUT", r"/replays/(?P<replay_id>\w+)/chapters", self.chapters),
            ("replays", "POST", r"/replays/(?P<replay_id>\w+)/(?P<action>\w+)", self.replay_action),
            ("notifications", "POST", "/followers", self.follow),
            ("notifications", "GET", "/followers/confirm", self.confirm),
            ("notifications", "GET", "/preferences", self.get_preferences),
            ("notifications", "POST", "/preferences", self.set_preferences),
            ("notifications", "POST", "/unsubscribe", self.unsubscribe),
            ("notifications", "GET", "/deliveries", self.deliveries),
            ("notifications", "GET", "/dead-letters", self.dead_letters),
            ("notifications", "POST", r"/dead-letters/(?P<dl_id>\w+)/replay", self.replay_dead_letter),
            ("mail", "GET", "/messages", self.mail_list),
            ("mail", "GET", r"/message/(?P<message_id>\w+)", self.mail_get),
        ]

    # -- helpers -----------------------------------------------------------------------------------------------
    @staticmethod
    def _role(request: httpx.Request) -> tuple[str, str | None] | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        return {STAFF[2]: ("staff", None), HOST_NOR[2]: ("host", "t-nor")}.get(token)

    def _may_manage(self, request: httpx.Request, stop_id: str) -> httpx.Response | None:
        role = self._role(request)
        if role is None:
            return _error(401, "unauthorized", "missing or invalid token")
        if role[0] == "host" and self.stops[stop_id]["territory_id"] != role[1]:
            return _error(403, "forbidden", "this territory belongs to another host")
        return None

    def _mail(self, to: str, subject: str, text: str) -> None:
        message_id = f"m{len(self.mails) + 1}"
        self.mails.insert(0, {
            "ID": message_id, "From": {"Name": "IntercoTOUR", "Address": "noreply@intercotour.local"},
            "To": [{"Name": "", "Address": to}], "Subject": subject, "Created": datetime.now(UTC).isoformat(),
            "Snippet": text[:80], "Text": text,
            "HTML": "<p style=\"color:#222\">" + re.sub(r"(https?://\S+)", r'<a href="\1">\1</a>', text) + "</p>",
            "Attachments": [],
        })

    def _manage_link(self, reg_id: str) -> str:
        return f"{self.portal_url}/r/{reg_id}?token=tok-{reg_id}"

    def availability(self, stop_id: str) -> dict[str, int]:
        regs = [r for r in self.registrations.values() if r["stop_id"] == stop_id]
        count = {s: sum(1 for r in regs if r["status"] == s) for s in ("confirmed", "offered", "waitlisted",
                                                                          "checked_in")}
        capacity = self.stops[stop_id]["capacity"]
        taken = count["confirmed"] + count["offered"] + count["checked_in"]
        return {"capacity": capacity, "confirmed": count["confirmed"] + count["checked_in"],
                "offered": count["offered"], "waitlisted": count["waitlisted"], "available": max(capacity - taken, 0)}

    # -- venues ------------------------------------------------------------------------------------------------
    def login(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        for email, password, token in (STAFF, HOST_NOR):
            if body == {"email": email, "password": password}:
                role = self._role(httpx.Request("GET", "/", headers={"authorization": f"Bearer {token}"}))
                assert role is not None
                return httpx.Response(200, json={"access_token": token, "role": role[0], "territory_id": role[1]})
        return _error(401, "unauthorized", "invalid credentials")

    def list_stops(self, request: httpx.Request, body: Any) -> httpx.Response:
        params = request.url.params
        items = [s for s in self.stops.values()
                 if all(not params.get(k) or str(s[k]) == params[k] for k in ("season", "region", "status"))]
        if self._role(request) is None:
            items = [s for s in items if s["status"] not in ("proposed", "rejected")]
        return httpx.Response(200, json={"items": items})

    def get_stop(self, request: httpx.Request, body: Any, stop_id: str) -> httpx.Response:
        if stop_id not in self.stops:
            return _error(404, "not_found", "no such stop")
        return httpx.Response(200, json=self.stops[stop_id])

    def ics(self, request: httpx.Request, body: Any, stop_id: str) -> httpx.Response:
        return httpx.Response(200, content=f"BEGIN:VCALENDAR\r\nUID:{stop_id}\r\nEND:VCALENDAR\r\n".encode(),
                              headers={"content-type": "text/calendar"})

    @staticmethod
    def _stop_errors(body: dict[str, Any]) -> dict[str, str]:
        errors = {}
        for name in ("city", "theme"):
            if not body.get(name):
                errors[name] = "field required"
        if not (body.get("venue") or {}).get("name"):
            errors["venue.name"] = "field required"
        if not isinstance(body.get("capacity"), int) or body["capacity"] < 1:
            errors["capacity"] = "must be at least 1"
        return errors

    def create_stop(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        role = self._role(request)
        if role is None:
            return _error(401, "unauthorized", "missing token")
        if role[0] == "host" and body.get("territory_id") != role[1]:
            return _error(403, "forbidden", "this territory belongs to another host")
        if errors := self._stop_errors(body):
            return _error(422, "validation_error", "invalid request", errors)
        stop_id = f"stop{len(self.stops) + 1}"
        self.stops[stop_id] = {**body, "id": stop_id, "status": "proposed", "sessions": [], "sequence": 0,
                               "territory_name": "Territoire"}
        return httpx.Response(201, json=self.stops[stop_id])

    def patch_stop(self, request: httpx.Request, body: dict[str, Any], stop_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        if unknown := sorted(set(body) - {"city", "venue", "starts_at", "ends_at", "theme", "capacity"}):
            return _error(422, "validation_error", "invalid request", dict.fromkeys(unknown, "unknown field (not allowed)"))
        merged = {**self.stops[stop_id], **body}
        if errors := self._stop_errors(merged):
            return _error(422, "validation_error", "invalid request", errors)
        self.stops[stop_id] = merged
        return httpx.Response(200, json=merged)

    def stop_action(self, request: httpx.Request, body: Any, stop_id: str, action: str) -> httpx.Response:
        role = self._role(request)
        if role is None or role[0] != "staff":
            return _error(403, "forbidden", "staff role required")
        moves = {"accept": ("proposed", "accepted"), "reject": ("proposed", "rejected"),
                 "open-registration": ("accepted", "registration_open"),
                 "close-registration": ("registration_open", "registration_closed"),
                 "mark-held": ("registration_closed", "held")}
        before, after = moves.get(action, (None, None))
        stop = self.stops[stop_id]
        if stop["status"] != before:
            return _error(409, "invalid_transition", f"cannot {action} a stop that is {stop['status']}")
        stop["status"] = after
        return httpx.Response(200, json=stop)

    def add_session(self, request: httpx.Request, body: dict[str, Any], stop_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        if not body.get("title"):
            return _error(422, "validation_error", "invalid request", {"title": "field required"})
        session = {**body, "id": f"{stop_id}-s{len(self.stops[stop_id]['sessions']) + 1}"}
        self.stops[stop_id]["sessions"].append(session)
        return httpx.Response(201, json=session)

    def patch_session(self, request: httpx.Request, body: dict[str, Any], stop_id: str,
                      session_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        for session in self.stops[stop_id]["sessions"]:
            if session["id"] == session_id:
                session.update(body)
                return httpx.Response(200, json=session)
        return _error(404, "not_found", "no such session")

    def delete_session(self, request: httpx.Request, body: Any, stop_id: str, session_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        self.stops[stop_id]["sessions"] = [s for s in self.stops[stop_id]["sessions"] if s["id"] != session_id]
        return httpx.Response(204)

    # -- registration ------------------------------------------------------------------------------------------
    def sign_up(self, request: httpx.Request, body: dict[str, Any], stop_id: str) -> httpx.Response:
        errors = {}
        if "@" not in str(body.get("email", "")):
            errors["email"] = "value is not a valid email address"
        for name in ("first_name", "last_name"):
            if not body.get(name):
                errors[name] = "field required"
        if body.get("profile") not in ("elected_official", "public_sector_staff", "entrepreneur",
                                       "institutional_partner", "other"):
            errors["profile"] = "unknown profile"
        if errors:
            return _error(422, "validation_error", "invalid request", errors)
        if self.stops[stop_id]["status"] != "registration_open":
            return _error(422, "registration_closed", "registration is not open for this stop")
        email = body["email"].lower()
        if any(r["email"] == email and r["stop_id"] == stop_id and r["status"] != "cancelled"
               for r in self.registrations.values()):
            return _error(409, "already_registered", "this email already holds a place", {"email": "already registered"})
        reg_id = f"r{len(self.registrations) + 1}"
        full = self.availability(stop_id)["available"] == 0
        position = self.availability(stop_id)["waitlisted"] + 1 if full else None
        self.idempotency_keys.append(request.headers.get("idempotency-key", ""))
        self.registrations[reg_id] = {
            "id": reg_id, "stop_id": stop_id, "email": email, "first_name": body["first_name"],
            "last_name": body["last_name"], "organisation": body.get("organisation", ""), "profile": body["profile"],
            "status": "waitlisted" if full else "confirmed", "waitlist_position": position,
            "check_in_code": f"CODE{reg_id.upper()}", "checked_in_at": None,
        }
        subject = "Liste d'attente" if full else "Inscription confirmée"
        self._mail(email, f"{subject} — {self.stops[stop_id]['city']}", f"Gérer : {self._manage_link(reg_id)}")
        return httpx.Response(201, json={"id": reg_id, "status": self.registrations[reg_id]["status"],
                                         "waitlist_position": position, "manage_url": self._manage_link(reg_id),
                                         "check_in_code": f"CODE{reg_id.upper()}"})

    def availability_of(self, request: httpx.Request, body: Any, stop_id: str) -> httpx.Response:
        return httpx.Response(200, json=self.availability(stop_id))

    def attendees(self, request: httpx.Request, body: Any, stop_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        return httpx.Response(200, json={"items": [r for r in self.registrations.values() if r["stop_id"] == stop_id]})

    def attendees_csv(self, request: httpx.Request, body: Any, stop_id: str) -> httpx.Response:
        if refused := self._may_manage(request, stop_id):
            return refused
        rows = ["email,first_name,last_name,status"] + [
            f"{r['email']},{r['first_name']},{r['last_name']},{r['status']}"
            for r in self.registrations.values() if r["stop_id"] == stop_id]
        return httpx.Response(200, content=("\r\n".join(rows) + "\r\n").encode(), headers={"content-type": "text/csv"})

    def _registration(self, request: httpx.Request, reg_id: str) -> dict[str, Any] | httpx.Response:
        token = request.url.params.get("token", "")
        if token == "expired":
            return _error(410, "gone", "this link has expired")
        if reg_id not in self.registrations or token != f"tok-{reg_id}":
            return _error(403, "forbidden", "invalid link")
        return self.registrations[reg_id]

    def get_registration(self, request: httpx.Request, body: Any, reg_id: str) -> httpx.Response:
        found = self._registration(request, reg_id)
        return found if isinstance(found, httpx.Response) else httpx.Response(200, json=found)

    def qr(self, request: httpx.Request, body: Any, reg_id: str) -> httpx.Response:
        found = self._registration(request, reg_id)
        if isinstance(found, httpx.Response):
            return found
        svg = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10"/></svg>'
        return httpx.Response(200, content=svg.encode(), headers={"content-type": "image/svg+xml"})

    def reg_action(self, request: httpx.Request, body: Any, reg_id: str, action: str) -> httpx.Response:
        reg = self._registration(request, reg_id)
        if isinstance(reg, httpx.Response):
            return reg
        allowed = {"cancel": ("confirmed", "waitlisted", "offered"), "accept-offer": ("offered",),
                   "decline-offer": ("offered",), "transfer": ("confirmed", "waitlisted")}
        if reg["status"] not in allowed.get(action, ()):
            return _error(409, "invalid_state", f"cannot {action} a registration that is {reg['status']}")
        freed = reg["status"] in ("confirmed", "offered") and action in ("cancel", "decline-offer", "transfer")
        reg["status"] = {"cancel": "cancelled", "accept-offer": "confirmed", "decline-offer": "declined"}.get(
            action, reg["status"])
        stop_id = reg["stop_id"]
        if action == "transfer":
            reg["stop_id"] = body["to_stop_id"]
        if freed:
            self._offer_next(stop_id)
        return httpx.Response(200, json=reg)

    def _offer_next(self, stop_id: str) -> None:
        waiting = sorted((r for r in self.registrations.values()
                          if r["stop_id"] == stop_id and r["status"] == "waitlisted"),
                         key=lambda r: r["waitlist_position"])
        if waiting:
            waiting[0]["status"] = "offered"
            link = self._manage_link(waiting[0]["id"]).replace("?token=", "/accept?token=")
            self._mail(waiting[0]["email"], "Une place s'est libérée", f"Accepter : {link}")

    def check_in(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if refused := self._may_manage(request, body["stop_id"]):
            return refused
        self.checkins.append(body)
        reg = next((r for r in self.registrations.values() if r["check_in_code"] == body["code"].upper()), None)
        if reg is None or reg["stop_id"] != body["stop_id"]:
            return httpx.Response(200, json={"status": "error", "reason": "unknown_code", "checked_in_at": None})
        if reg["checked_in_at"]:
            return httpx.Response(200, json={"status": "error", "reason": "already_checked_in",
                                             "checked_in_at": reg["checked_in_at"]})
        reg["checked_in_at"] = datetime.now(UTC).isoformat()
        return httpx.Response(200, json={"status": "ok", "reason": None, "checked_in_at": reg["checked_in_at"]})

    # -- replays -----------------------------------------------------------------------------------------------
    def list_replays(self, request: httpx.Request, body: Any) -> httpx.Response:
        params = request.url.params
        items = [r for r in self.replays.values()
                 if all(not params.get(k) or str(r[k]) == params[k] for k in ("season", "region", "stop_id",
                                                                              "session_kind"))
                 and r["publication"] == params.get("status", "published")]
        return httpx.Response(200, json={"items": items, "total": len(items)})

    def create_replay(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        if refused := self._may_manage(request, body["stop_id"]):
            return refused
        errors = {}
        if not body.get("title"):
            errors["title"] = "field required"
        if not str(body.get("url", "")).startswith("https://"):
            errors["url"] = "must be an https URL"
        if errors:
            return _error(422, "validation_error", "invalid request", errors)
        replay_id = f"rep{len(self.replays) + 1}"
        stop = self.stops[body["stop_id"]]
        self.replays[replay_id] = {**body, "id": replay_id, "processing": "pending", "publication": "draft",
                                   "chapters": [], "embed_url": body["url"], "session_kind": None,
                                   "city": stop["city"], "region": stop["region"], "season": stop["season"],
                                   "theme": stop["theme"]}
        return httpx.Response(201, json=self.replays[replay_id])

    def chapters(self, request: httpx.Request, body: list[dict[str, Any]], replay_id: str) -> httpx.Response:
        if refused := self._may_manage(request, self.replays[replay_id]["stop_id"]):
            return refused
        self.replays[replay_id]["chapters"] = body
        return httpx.Response(200, json=self.replays[replay_id])

    def replay_action(self, request: httpx.Request, body: Any, replay_id: str, action: str) -> httpx.Response:
        replay = self.replays[replay_id]
        if refused := self._may_manage(request, replay["stop_id"]):
            return refused
        if action == "ready":
            replay["processing"] = "ready"
        elif action == "publish":
            if replay["processing"] != "ready":
                return _error(409, "not_ready", "the replay is not ready yet")
            replay["publication"] = "published"
        elif action in ("unpublish", "schedule"):
            replay["publication"] = {"unpublish": "unpublished", "schedule": "scheduled"}[action]
        return httpx.Response(200, json=replay)

    # -- notifications -----------------------------------------------------------------------------------------
    def follow(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        errors = {}
        if "@" not in str(body.get("email", "")):
            errors["email"] = "value is not a valid email address"
        if not body.get("regions"):
            errors["regions"] = "choose at least one region"
        if errors:
            return _error(422, "validation_error", "invalid request", errors)
        token = f"f{len(self.followers) + 1}"
        self.followers[token] = {**body, "confirmed": False}
        self._mail(body["email"], "Confirmez votre abonnement", f"Confirmer : {self.portal_url}/follow/confirm?token={token}")
        return httpx.Response(202, json={"status": "pending"})

    def _follower(self, request: httpx.Request) -> dict[str, Any] | httpx.Response:
        follower = self.followers.get(request.url.params.get("token", ""))
        return follower if follower is not None else _error(403, "forbidden", "invalid link")

    def confirm(self, request: httpx.Request, body: Any) -> httpx.Response:
        follower = self._follower(request)
        if isinstance(follower, httpx.Response):
            return follower
        follower["confirmed"] = True
        return httpx.Response(200, json={"status": "confirmed"})

    def get_preferences(self, request: httpx.Request, body: Any) -> httpx.Response:
        follower = self._follower(request)
        return follower if isinstance(follower, httpx.Response) else httpx.Response(200, json=follower)

    def set_preferences(self, request: httpx.Request, body: dict[str, Any]) -> httpx.Response:
        follower = self._follower(request)
        if isinstance(follower, httpx.Response):
            return follower
        if unknown := sorted(set(body) - {"regions", "topics", "unsubscribe_all"}):
            return _error(422, "validation_error", "invalid request", dict.fromkeys(unknown, "unknown field (not allowed)"))
        if not body.get("topics"):
            return _error(422, "validation_error", "invalid request", {"topics": "choose at least one topic"})
        follower.update(regions=body["regions"], topics=body["topics"])
        return httpx.Response(200, json=follower)

    def unsubscribe(self, request: httpx.Request, body: Any) -> httpx.Response:
        follower = self._follower(request)
        if isinstance(follower, httpx.Response):
            return follower
        follower["unsubscribed"] = True
        return httpx.Response(200, json={"status": "unsubscribed"})

    def deliveries(self, request: httpx.Request, body: Any) -> httpx.Response:
        if (self._role(request) or ("",))[0] != "staff":
            return _error(403, "forbidden", "staff role required")
        items = [{"recipient": m["To"][0]["Address"], "kind": "email", "status": "sent", "attempts": 1,
                  "created_at": m["Created"]} for m in self.mails]
        recipient = request.url.params.get("recipient")
        return httpx.Response(200, json={"items": [d for d in items if not recipient or d["recipient"] == recipient]})

    def dead_letters(self, request: httpx.Request, body: Any) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"id": "dl1", "event_type": "replays.replay.published.v1",
                                                    "topic": "replays.replays.v1", "error": "boom",
                                                    "failed_at": "2022-06-15T10:00:00Z"}]})

    def replay_dead_letter(self, request: httpx.Request, body: Any, dl_id: str) -> httpx.Response:
        return httpx.Response(202, json={"status": "replayed"})

    # -- mail capture ------------------------------------------------------------------------------------------
    def mail_list(self, request: httpx.Request, body: Any) -> httpx.Response:
        summaries = [{k: m[k] for k in ("ID", "From", "To", "Subject", "Created", "Snippet")} for m in self.mails]
        return httpx.Response(200, json={"total": len(summaries), "count": len(summaries), "messages": summaries})

    def mail_get(self, request: httpx.Request, body: Any, message_id: str) -> httpx.Response:
        found = next((m for m in self.mails if m["ID"] == message_id), None)
        return httpx.Response(200, json=found) if found else _error(404, "not_found", "no such message")
