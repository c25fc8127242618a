"""The shared privacy helpers: pseudonyms are stable, keyed and never the address; raw
event bodies get the address replaced whatever its case."""

from __future__ import annotations

from shared.privacy import ERASED_DOMAIN, _replace_ci, email_digest, normalise, pseudonym


def test_pseudonym_is_stable_per_person_keyed_and_hides_the_address():
    alias = pseudonym(" Anne@Example.org ", "s1")
    assert alias == pseudonym("anne@example.org", "s1") and alias.endswith("@" + ERASED_DOMAIN)
    assert "anne" not in alias and alias != pseudonym("anne@example.org", "s2")
    assert alias != pseudonym("bob@example.org", "s1")
    assert len(email_digest("x@y.z")) == 24 and normalise(" X@Y.Z ") == "x@y.z"


def test_raw_bodies_have_every_occurrence_replaced_case_insensitively():
    body = b'{"email":"Anne@Example.org","cc":"anne@example.org","other":"bob@example.org"}'
    cleaned = _replace_ci(body, b"anne@example.org", b"erased-1@erased.invalid")
    assert b"anne" not in cleaned.lower() and cleaned.count(b"erased-1@erased.invalid") == 2
    assert b"bob@example.org" in cleaned
