"""Registration rules without I/O: email and form validation, offers, check-in outcomes,
link binding and the CSV export."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.auth import LinkSigner
from shared.errors import Forbidden, Gone

from registration.api import SignUpRequest
from registration.domain import StopView, check_in_refusal, new_check_in_code, normalise_email, offer_expiry
from registration.hosts import HostDesk
from registration.links import MANAGE, OFFER, Links

NOW = datetime(2022, 9, 1, 8, 0, tzinfo=UTC)
FORM = {"email": " Anne.Le-Goff@Quimperle.BZH ", "first_name": "Anne", "last_name": "Le Goff",
        "organisation": "Mairie de Quimperlé", "profile": "elected_official",
        "consents": {"contact": True, "photo": False, "recording": False}}


def refused_fields(**changes: object) -> set[str]:
    with pytest.raises(ValidationError) as err:
        SignUpRequest.model_validate({**FORM, **changes})
    return {".".join(map(str, e["loc"])) for e in err.value.errors()}


def test_email_is_trimmed_lower_cased_and_validated_without_dns():
    assert SignUpRequest.model_validate(FORM).email == "anne.le-goff@quimperle.bzh"
    assert normalise_email("X@Example.ORG") == "x@example.org"
    for bad in ("anne", "anne@", "a b@example.org", "x" * 250 + "@example.org"):
        with pytest.raises(ValueError):
            normalise_email(bad)


def test_consents_must_all_be_given_explicitly_as_booleans():
    form = {k: v for k, v in FORM.items() if k != "consents"}
    with pytest.raises(ValidationError):
        SignUpRequest.model_validate(form)
    assert refused_fields(consents={"contact": True, "photo": True}) == {"consents.recording"}
    assert refused_fields(consents={"contact": "yes", "photo": False, "recording": False}) == {"consents.contact"}
    assert SignUpRequest.model_validate(FORM).locale == "fr"


def test_text_limits_unknown_fields_and_choices_are_refused():
    assert refused_fields(first_name="x" * 101) == {"first_name"}
    assert refused_fields(last_name="   ") == {"last_name"}
    assert refused_fields(organisation="a\x00b") == {"organisation"}
    assert refused_fields(status="confirmed") == {"status"}
    assert refused_fields(profile="journalist") == {"profile"}
    assert refused_fields(locale="de") == {"locale"}


def test_offers_last_their_validity_but_never_past_the_start():
    starts = NOW + timedelta(hours=100)
    assert offer_expiry(NOW, 48, starts) == NOW + timedelta(hours=48)
    assert offer_expiry(NOW, 48, NOW + timedelta(hours=5)) == NOW + timedelta(hours=5)


def stop(**changes: object) -> StopView:
    base = dict(stop_id="s", status="registration_open", territory_id="t", region="FR-BRE", city="Quimperlé",
                starts_at=NOW + timedelta(days=1), ends_at=NOW + timedelta(days=1, hours=8), offer_validity_hours=48,
                capacity=10, confirmed=8, offered=3, waitlisted=4, sold_out=True)
    return StopView(**{**base, **changes})


def test_availability_never_goes_negative_and_sign_ups_need_an_open_future_stop():
    assert stop().available == 0  # capacity cut below confirmed + offered: nobody is revoked
    assert stop(confirmed=5, offered=1).available == 4
    assert stop().signup_refusal(NOW) is None
    assert "registration_closed" in stop(status="registration_closed").signup_refusal(NOW)
    assert stop().signup_refusal(NOW + timedelta(days=2)) == "this stop has already started"
    assert stop(status="registration_closed").offers_places(NOW)
    assert not stop(status="cancelled").offers_places(NOW)
    assert not stop().offers_places(NOW + timedelta(days=2))


@pytest.mark.parametrize(("registration", "reason"), [
    (None, "unknown_code"),
    ({"stop_id": "other", "status": "confirmed"}, "wrong_stop"),
    ({"stop_id": "s", "status": "cancelled"}, "cancelled"),
    ({"stop_id": "s", "status": "transferred"}, "cancelled"),
    ({"stop_id": "s", "status": "waitlisted"}, "not_confirmed"),
    ({"stop_id": "s", "status": "offered"}, "not_confirmed"),
    ({"stop_id": "s", "status": "checked_in"}, "already_checked_in"),
    ({"stop_id": "s", "status": "confirmed"}, None),
    ({"stop_id": "s", "status": "no_show"}, None),  # a late arrival still gets in
])
def test_check_in_outcomes(registration, reason):
    assert check_in_refusal(registration, "s") == reason


def test_check_in_codes_are_short_base32_and_unpredictable():
    codes = {new_check_in_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(len(c) == 10 and set(c) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") for c in codes)


def test_links_are_single_purpose_and_bound_to_one_registration():
    signer = LinkSigner("secret", namespace="registration")
    links = Links(signer, "https://portal.example/", 30)
    url = links.manage_url("reg_1", NOW.replace(year=2100))
    assert url.startswith("https://portal.example/r/reg_1?token=")
    token = url.split("token=")[1]
    assert links.check(token, "reg_1", {MANAGE})["s"] == "reg_1"
    with pytest.raises(Forbidden):
        links.check(token, "reg_2", {MANAGE})
    with pytest.raises(Forbidden):
        links.check(token, "reg_1", {OFFER})
    with pytest.raises(Gone):
        links.check(signer.sign(OFFER, "reg_1", -1), "reg_1", {OFFER})
    accept, decline = links.offer_urls("reg_1", datetime.now(UTC) + timedelta(hours=1))
    assert accept.split("?")[0].endswith("/r/reg_1/accept") and decline.split("?")[0].endswith("/r/reg_1/decline")


def test_csv_has_a_bom_semicolons_consents_and_defuses_formulas():
    row = {"id": "reg_1", "status": "confirmed", "first_name": "=HYPERLINK(\"x\")", "last_name": "Le Goff",
           "organisation": "Mairie; Quimperlé", "profile": "other", "email": "a@b.fr", "consent_contact": True,
           "consent_photo": False, "consent_recording": None, "created_at": NOW}
    data = HostDesk.to_csv([row])
    assert data.startswith(b"\xef\xbb\xbf")
    header, line = data.decode("utf-8-sig").splitlines()
    assert header.split(";")[:3] == ["id", "status", "waitlist_position"]
    assert "'=HYPERLINK" in line and '"Mairie; Quimperlé"' in line and ";yes;no;;" in line
    assert "2022-09-01T08:00:00+00:00" in line
