"""Regions of metropolitan France and the small inline map of the season's stops.

The map is an equirectangular projection of a coarse outline, scaled by
cos(46.5°) so France keeps its shape; good enough to place one marker per stop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

REGIONS: dict[str, str] = {
    "ARA": "Auvergne-Rhône-Alpes",
    "BFC": "Bourgogne-Franche-Comté",
    "BRE": "Bretagne",
    "CVL": "Centre-Val de Loire",
    "COR": "Corse",
    "GES": "Grand Est",
    "HDF": "Hauts-de-France",
    "IDF": "Île-de-France",
    "NOR": "Normandie",
    "NAQ": "Nouvelle-Aquitaine",
    "OCC": "Occitanie",
    "PDL": "Pays de la Loire",
    "PAC": "Provence-Alpes-Côte d'Azur",
}

_WEST, _NORTH, _SOUTH, _EAST = -5.3, 51.3, 41.2, 9.8
_SCALE = 50.0
_COS = math.cos(math.radians(46.5))

_MAINLAND = [
    (2.55, 51.09), (2.9, 50.7), (3.6, 50.5), (4.2, 49.95), (4.85, 50.15), (5.4, 49.6), (6.35, 49.47),
    (7.6, 49.05), (8.2, 48.97), (7.6, 47.6), (7.0, 47.5), (6.1, 46.6), (6.15, 46.2), (6.8, 46.1),
    (7.0, 45.9), (6.6, 45.1), (7.1, 44.9), (6.9, 44.4), (7.6, 43.8), (7.0, 43.55), (6.2, 43.1),
    (5.0, 43.35), (4.2, 43.45), (3.2, 43.0), (3.05, 42.45), (1.7, 42.5), (0.7, 42.8), (-0.3, 42.8),
    (-1.8, 43.35), (-1.25, 44.6), (-1.1, 45.7), (-1.9, 46.7), (-2.5, 47.3), (-4.3, 47.8), (-4.75, 48.35),
    (-3.5, 48.85), (-2.0, 48.65), (-1.6, 48.65), (-1.9, 49.7), (-1.25, 49.65), (0.2, 49.45), (1.4, 50.1),
    (1.6, 50.9),
]
_CORSICA = [(9.35, 43.0), (9.55, 42.1), (9.2, 41.37), (8.6, 41.8), (8.65, 42.6)]

WIDTH = round((_EAST - _WEST) * _COS * _SCALE)
HEIGHT = round((_NORTH - _SOUTH) * _SCALE)


def project(lon: float, lat: float) -> tuple[float, float]:
    """(lon, lat) in degrees → (x, y) in the map's viewBox."""
    return round((lon - _WEST) * _COS * _SCALE, 1), round((_NORTH - lat) * _SCALE, 1)


def _path(points: list[tuple[float, float]]) -> str:
    projected = [project(lon, lat) for lon, lat in points]
    return "M" + " L".join(f"{x},{y}" for x, y in projected) + " Z"


OUTLINE_PATHS = [_path(_MAINLAND), _path(_CORSICA)]


@dataclass(frozen=True)
class Marker:
    stop_id: str
    x: float
    y: float
    label: str


def markers(stops: list[dict[str, Any]]) -> list[Marker]:
    """One marker per stop that has coordinates inside the map."""
    found = []
    for stop in stops:
        venue = stop.get("venue") or {}
        try:
            lon, lat = float(venue["lon"]), float(venue["lat"])
        except (KeyError, TypeError, ValueError):
            continue
        if not (_WEST <= lon <= _EAST and _SOUTH <= lat <= _NORTH):
            continue
        x, y = project(lon, lat)
        found.append(Marker(str(stop["id"]), x, y, f"{stop.get('city', '')} — {region_name(stop.get('region'))}"))
    return found


def region_name(code: Any) -> str:
    return REGIONS.get(str(code or ""), str(code or ""))
