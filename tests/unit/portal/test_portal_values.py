"""Conversions between what people type and what the services expect; the map projection; the texts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import portal
from portal import geo, i18n
from portal.values import BadValue, paris_datetime, parse_chapters, parse_clock, parse_speakers, token_from_url

PACKAGE = Path(portal.__file__).parent


def test_paris_datetime_uses_the_offset_of_that_day() -> None:
    assert paris_datetime("2022-06-14", "09:30") == "2022-06-14T09:30:00+02:00"
    assert paris_datetime("2022-12-14", "09:30") == "2022-12-14T09:30:00+01:00"
    with pytest.raises(BadValue):
        paris_datetime("2022-06-14", "9h30")


def test_clock_and_chapters() -> None:
    assert parse_clock("1:02:03") == 3723 and parse_clock("12:30") == 750 and parse_clock("45") == 45
    with pytest.raises(BadValue):
        parse_clock("1:xx")
    assert parse_chapters("0:00 Accueil\n\n12:30 Table ronde élus") == [
        {"at_s": 0, "title": "Accueil"}, {"at_s": 750, "title": "Table ronde élus"}]


def test_speakers_lines() -> None:
    assert parse_speakers("Claire Martin ; Maire ; Rouen\nJean Dupont") == [
        {"name": "Claire Martin", "role": "Maire", "organisation": "Rouen"},
        {"name": "Jean Dupont", "role": "", "organisation": ""}]


def test_token_from_manage_url() -> None:
    assert token_from_url("http://portal/r/r1?token=abc.def") == "abc.def"
    assert token_from_url("http://portal/r/r1") is None


def test_map_places_stops_where_they_are() -> None:
    stops = [{"id": "rouen", "city": "Rouen", "region": "NOR", "venue": {"lat": 49.44, "lon": 1.10}},
             {"id": "marseille", "city": "Marseille", "region": "PAC", "venue": {"lat": 43.30, "lon": 5.37}},
             {"id": "nowhere", "city": "?", "venue": {"lat": None, "lon": None}},
             {"id": "reunion", "city": "Saint-Denis", "venue": {"lat": -20.9, "lon": 55.5}}]
    rouen, marseille = geo.markers(stops)
    assert (rouen.stop_id, marseille.stop_id) == ("rouen", "marseille")
    assert rouen.y < marseille.y and rouen.x < marseille.x  # north-west of Marseille
    assert all(0 <= m.x <= geo.WIDTH and 0 <= m.y <= geo.HEIGHT for m in (rouen, marseille))
    assert rouen.label == "Rouen — Normandie"


def test_every_text_used_exists_in_both_languages() -> None:
    sources = [p.read_text() for p in [*PACKAGE.glob("*.py"), *PACKAGE.glob("templates/*.html")]]
    used = set()
    for text in sources:
        used |= set(re.findall(r"""(?:\bt\(|_key=|translate\(|flash\(request,\s*)["']([a-z_]+(?:\.[a-z_-]+)+)["']""",
                               text))
    missing = sorted(key for key in used if key not in i18n.TEXTS)
    assert len(used) > 100 and missing == []
    assert all(fr.strip() and en.strip() for fr, en in i18n.TEXTS.values())


def test_form_labels_and_dynamic_keys_exist() -> None:
    from portal import account, host, host_desk, host_replays, public, selfservice, staff

    labels = [public.SIGNUP_FIELDS, public.FOLLOW_FIELDS, host.STOP_FIELDS, host.SESSION_FIELDS,
              host_desk.CHECKIN_FIELDS, host_replays.REPLAY_FIELDS, host_replays.CHAPTER_FIELDS,
              account.LOGIN_FIELDS, selfservice.PREFERENCE_FIELDS]
    keys = {key for mapping in labels for key in mapping.values()}
    keys |= {f"kind.{k}" for k in public.SESSION_KINDS} | {f"profile.{p}" for p in public.PROFILES}
    keys |= {f"consent.{c}" for c in public.CONSENTS} | {f"topic.{t}" for t in public.TOPICS}
    keys |= {f"status.{s}" for s in staff.STATE_ORDER} | {f"staff.action.{a}" for a in staff.STOP_ACTIONS}
    keys |= {f"staff.done_{a}" for a in staff.STOP_ACTIONS} | {f"replays.done_{a}" for a in host_replays.ACTIONS}
    keys |= set(selfservice.REGISTRATION_ACTIONS.values())
    keys |= {f"service.{s}" for s in ("venues", "registration", "replays", "notifications", "mail")}
    assert sorted(k for k in keys if k not in i18n.TEXTS) == []


def test_translate_falls_back_to_french_and_never_fails() -> None:
    assert i18n.translate("nav.stops", "en") == "Stops"
    assert i18n.translate("nav.stops", "de") == "Étapes"
    assert i18n.translate("reg.some_new_state", "fr") == "some new state"
    assert i18n.translate("home.title", "fr") == "Le tour {season}"  # missing parameter: text as is
    assert i18n.format_date("2022-06-14", "fr") == "mardi 14 juin 2022"
    assert i18n.format_date("2022-06-14", "en") == "Tuesday 14 June 2022"
