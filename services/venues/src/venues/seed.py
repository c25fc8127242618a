"""`python -m venues.seed`: the 2022 season (held) and a demo season next year (registration open).

It goes through the service's handlers, so every change is an outbox event the
running service publishes. Idempotent: territories are found by name, hosts by
email, stops by (season, region), sessions by title; a stop part-way through its
lifecycle is moved on to its target state. Needs the database only, not the HTTP server.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from shared.errors import Conflict
from shared.mongo import ensure_indexes, make_client
from shared.uow import UOW_INDEXES, UnitOfWork

from venues.config import Settings
from venues.domain import Stop
from venues.handlers import SYSTEM, VenuesService
from venues.main import build_service
from venues.repository import INDEXES

HOLD_PATH = ("accept", "open_registration", "close_registration", "mark_held")
OPEN_PATH = ("accept", "open_registration")
CAPACITY = 120
SMALL_REGION, SMALL_CAPACITY = "NOR", 3  # the demo waitlist
PATH_STEPS = {"proposed": 0, "accepted": 1, "registration_open": 2, "registration_closed": 3}


@dataclass(frozen=True)
class Host:
    region: str
    territory: str
    kind: str
    city: str
    venue: str
    address: str
    lat: float
    lon: float
    theme: str
    month: int  # the stop falls on the second Thursday of this month
    host_role: str


HOSTS = (
    Host("ARA", "Clermont Auvergne Métropole", "metropolis", "Clermont-Ferrand", "Polydome",
         "Place du 1er Mai, 63100 Clermont-Ferrand", 45.7865, 3.0816,
         "La culture à l'ère numérique : quel rôle pour les territoires ?", 3, "Vice-président au numérique"),
    Host("BRE", "Quimperlé Communauté", "agglomeration", "Quimperlé", "Espace Benoîte Groult",
         "Rue de Quimper, 29300 Quimperlé", 47.8728, -3.5497,
         "Territoire inclusif et responsable : le défi de la ruralité", 4, "Président"),
    Host("IDF", "Ville de Créteil", "city", "Créteil", "Maison des Arts et de la Culture",
         "Place Salvador Allende, 94000 Créteil", 48.7904, 2.4556,
         "Le numérique public au service des usages du quotidien", 5, "Adjointe au maire"),
    Host("PAC", "Métropole Aix-Marseille-Provence", "metropolis", "Marseille", "Palais du Pharo",
         "58 boulevard Charles Livon, 13007 Marseille", 43.2925, 5.3608,
         "La transformation interne, levier indispensable de la transition numérique des territoires ?", 6,
         "Vice-présidente déléguée"),
    Host("HDF", "Communauté d'agglomération de la Région de Château-Thierry", "agglomeration", "Château-Thierry",
         "Palais des Rencontres", "2 avenue Wilson, 02400 Château-Thierry", 49.0464, 3.4030,
         "Numérique et santé : quels rôles pour les territoires dans le développement de la e-santé ?", 9,
         "Président"),
    Host("NAQ", "Communauté de communes Maremne Adour Côte-Sud", "community_of_communes",
         "Saint-Vincent-de-Tyrosse", "Salle du Hall de Tyrosse", "Avenue Nationale, 40230 Saint-Vincent-de-Tyrosse",
         43.6604, -1.3047, "Pour un numérique responsable pour tous les territoires !", 9, "Vice-président"),
    Host("BFC", "Nevers Agglomération", "agglomeration", "Nevers", "Maison de la Culture de Nevers",
         "2 boulevard Pierre de Coubertin, 58000 Nevers", 46.9908, 3.1590,
         "Quel modèle pour concilier ville intelligente et territoire numérique responsable ?", 10, "Président"),
    Host("OCC", "Montpellier Méditerranée Métropole", "metropolis", "Montpellier", "Hôtel de Métropole",
         "50 place Zeus, 34000 Montpellier", 43.6047, 3.8951,
         "Territoire, levier de construction d'une société numérique vertueuse ?", 11,
         "Vice-présidente au numérique"),
    Host("NOR", "Métropole Rouen Normandie", "metropolis", "Rouen", "Hôtel de Métropole",
         "108 allée François Mitterrand, 76000 Rouen", 49.4432, 1.0999,
         "Le numérique responsable : avenir des territoires ?", 12, "Vice-président"),
)


def second_thursday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(3 - first.weekday()) % 7 + 7)


def stop_day(host: Host, year: int) -> date:
    # NAQ and HDF share September: NAQ goes two weeks later.
    return second_thursday(year, host.month) + timedelta(days=14 if host.region == "NAQ" else 0)


def programme(host: Host) -> list[dict[str, object]]:
    """A morning of four sessions in the main hall."""
    room = "Grande salle"
    return [
        {"kind": "opening", "title": "Ouverture", "starts_at": "09:00", "ends_at": "09:30", "room": room,
         "speakers": [{"name": f"{host.host_role} — {host.territory}", "role": host.host_role,
                       "organisation": host.territory}]},
        {"kind": "round_table", "title": "Table ronde : retours d'expérience des territoires", "starts_at": "09:30",
         "ends_at": "10:45", "room": room,
         "speakers": [{"name": "Claire Martin", "role": "Directrice du numérique", "organisation": host.territory},
                      {"name": "Julien Robert", "role": "Chef de projet", "organisation": "Les Interconnectés"}]},
        {"kind": "debate", "title": f"Débat : {host.theme}", "starts_at": "11:00", "ends_at": "12:15", "room": room,
         "speakers": [{"name": "Sophie Bernard", "role": "Chercheuse", "organisation": "Université partenaire"},
                      {"name": "Marc Lefèvre", "role": "Élu", "organisation": host.territory}]},
        {"kind": "plenary", "title": "Conclusions et perspectives", "starts_at": "12:15", "ends_at": "12:45",
         "room": room, "speakers": [{"name": "Anne Dubois", "role": "Déléguée générale",
                                     "organisation": "Les Interconnectés"}]},
    ]


def host_email(region: str) -> str:
    return f"host-{region.lower()}@intercotour.local"


async def seed(service: VenuesService, host_password: str, *, today: date) -> list[str]:
    """Load both seasons; returns what was done, one line per change."""
    done: list[str] = []
    for host in HOSTS:
        territory = await service.find_territory(host.territory)
        if territory is None:
            territory = await service.create_territory(SYSTEM, name=host.territory, kind=host.kind,
                                                       region=host.region)
            done.append(f"territory {host.territory}")
        try:
            await service.add_host(SYSTEM, territory.id, email=host_email(host.region), password=host_password,
                                   name=f"Accueil {host.territory}")
            done.append(f"host {host_email(host.region)}")
        except Conflict:
            pass  # already there
        for season, path, capacity in (
            (2022, HOLD_PATH, CAPACITY),
            (today.year + 1, OPEN_PATH, SMALL_CAPACITY if host.region == SMALL_REGION else CAPACITY),
        ):
            stop = await _ensure_stop(service, host, territory.id, season, capacity, done)
            await _drive(service, stop, path, done)
    return done


async def _ensure_stop(service: VenuesService, host: Host, territory_id: str, season: int, capacity: int,
                       done: list[str]) -> Stop:
    stop = await service.active_stop(season, host.region)
    if stop is None:
        stop = await service.propose_stop(
            SYSTEM, season=season, region=host.region, territory_id=territory_id, city=host.city,
            venue={"name": host.venue, "address": host.address, "lat": host.lat, "lon": host.lon,
                   "accessibility": "Accès de plain-pied, boucle magnétique à l'accueil"},
            date=stop_day(host, season), starts_at="09:00", ends_at="13:00", theme=host.theme, capacity=capacity,
            allow_past=True,
        )
        done.append(f"stop {season} {host.region} {host.city}")
    titles = {s.title for s in stop.sessions}
    if stop.status in PATH_STEPS:
        for session in programme(host):
            if session["title"] not in titles:
                await service.add_session(SYSTEM, stop.id, **session)  # type: ignore[arg-type]
    return stop


async def _drive(service: VenuesService, stop: Stop, path: tuple[str, ...], done: list[str]) -> None:
    """Apply the remaining steps of ``path`` from wherever the stop is."""
    reached = PATH_STEPS.get(stop.status)
    if reached is None:
        return  # held, postponed, cancelled…: somebody took it from here
    for action in path[reached:]:
        stop = await service.act(SYSTEM, stop.id, action)  # type: ignore[arg-type]
        done.append(f"  {stop.season} {stop.region} → {stop.status}")


async def run_seed(settings: Settings) -> list[str]:
    client = make_client(settings.mongo_url, app_name=f"{settings.service_name}-seed")
    try:
        db = client[settings.mongo_db]
        await ensure_indexes(db, [*UOW_INDEXES, *INDEXES])
        uow = UnitOfWork(client, db, source=settings.service_name)
        service = build_service(uow, db, settings, signing_key=b"")  # the seed never issues tokens
        assert settings.seed_host_password is not None, "set VENUES_SEED_HOST_PASSWORD outside local mode"
        return await seed(service, settings.seed_host_password.get_secret_value(),
                          today=datetime.now(UTC).date())
    finally:
        await client.close()


def main() -> None:
    settings = Settings()
    done = asyncio.run(run_seed(settings))
    print(f"venues seed: {len([d for d in done if not d.startswith(' ')])} record(s) created, "
          f"{len([d for d in done if d.startswith(' ')])} transition(s)")
    for line in done:
        print(f"  {line}")
    print("Accounts:")
    print(f"  staff  {settings.admin_email}" + (" / intercotour-admin" if settings.mode == "local" else ""))
    password = " / intercotour-host" if settings.mode == "local" else ""
    for host in HOSTS:
        print(f"  host   {host_email(host.region)}{password}  ({host.territory})")


if __name__ == "__main__":
    main()
