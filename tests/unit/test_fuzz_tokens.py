"""Fuzzing the two token parsers every request may reach (no I/O).

- ``LinkSigner.verify`` (self-service, follow, preferences, unsubscribe links) and the
  registration ``Links.check`` around it only ever raise Forbidden or Gone;
- ``JwtVerifier.verify`` only ever raises Unauthorized;
- a mutated genuine token (one character changed, inserted or deleted, truncated, extended,
  segments swapped) never verifies — except a JWT signature re-encoded with the same bytes
  (base64url's unused trailing bits), which is the same signature, not a forgery.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from shared.auth import JwtVerifier, LinkSigner, ensure_keypair, issue_token
from shared.errors import Forbidden, Gone, Unauthorized

from registration.links import MANAGE, OFFER, Links

FUZZ = settings(max_examples=300, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# Everything a query string or header can carry, plus what base64/JSON parsers find interesting.
any_text = st.one_of(
    st.text(),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet=B64URL + ".=+/ \t%", max_size=400),
    st.builds(lambda a, b: f"{a}.{b}", st.text(alphabet=B64URL, max_size=120), st.text(max_size=60)),
    st.builds(lambda a, b, c: f"{a}.{b}.{c}", *(st.text(alphabet=B64URL + "=", max_size=150),) * 3),
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> tuple[bytes, Path]:
    private, public = ensure_keypair(tmp_path_factory.mktemp("fuzz-keys"))
    return private.read_bytes(), public


@pytest.fixture(scope="module")
def verifier(keys) -> JwtVerifier:
    return JwtVerifier(keys[1], audience="intercotour", issuer="intercotour-venues")


def staff_token(private_pem: bytes, **overrides) -> str:
    kwargs = dict(subject="admin@test", role="staff", territory_id=None, region=None, issuer="intercotour-venues",
                  audience="intercotour")
    return issue_token(private_pem, **{**kwargs, **overrides})


SIGNER = LinkSigner("fuzz-secret-0123456789", namespace="registration")
LINKS = Links(SIGNER, "http://portal.test", 30)
GENUINE_LINK = SIGNER.sign(MANAGE, "reg-1", 3600)


def mutations(token: str) -> st.SearchStrategy[str]:
    """Small edits of a genuine token, always giving a different string."""
    n = len(token)
    replace = st.builds(lambda i, c: token[:i] + c + token[i + 1:], st.integers(0, n - 1),
                        st.sampled_from(B64URL + ".=é\x00 "))
    insert = st.builds(lambda i, c: token[:i] + c + token[i:], st.integers(0, n), st.sampled_from(B64URL + ".=é "))
    delete = st.builds(lambda i: token[:i] + token[i + 1:], st.integers(0, n - 1))
    truncate = st.builds(lambda i: token[:i], st.integers(0, n - 1))
    extend = st.builds(lambda tail: token + tail, st.text(min_size=1, max_size=20))
    swap = st.just(".".join(reversed(token.split("."))))
    return st.one_of(replace, insert, delete, truncate, extend, swap).filter(lambda t: t != token)


# --- signed links ------------------------------------------------------------------------------

@FUZZ
@given(token=st.one_of(st.none(), any_text), purpose=st.sampled_from([MANAGE, OFFER, "preferences", "unsubscribe"]))
def test_link_verify_only_refuses_arbitrary_strings(token, purpose):
    with pytest.raises((Forbidden, Gone)):
        SIGNER.verify(token, purpose)
    with pytest.raises((Forbidden, Gone)):
        LINKS.check(token, "reg-1", {MANAGE, OFFER})


@FUZZ
@given(token=mutations(GENUINE_LINK))
def test_mutated_genuine_link_never_verifies(token):
    assert SIGNER.verify(GENUINE_LINK, MANAGE)["s"] == "reg-1"  # the original does
    with pytest.raises(Forbidden):
        SIGNER.verify(token, MANAGE)
    with pytest.raises(Forbidden):
        LINKS.check(token, "reg-1", {MANAGE})


@FUZZ
@given(payload=st.dictionaries(st.sampled_from(["p", "s", "e", "x"]),
                               st.one_of(st.none(), st.integers(), st.text(max_size=10), st.floats(allow_nan=True),
                                         st.lists(st.integers(), max_size=2), st.booleans())))
def test_validly_signed_but_odd_payloads_are_refused_not_crashing(payload):
    """A payload signed with the right key but of the wrong shape (e.g. e is a float/str/bool) is a 403/410."""
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    token = f"{body}.{SIGNER._mac(body)}"
    try:
        result = SIGNER.verify(token, MANAGE)
    except (Forbidden, Gone):
        return
    assert result.get("p") == MANAGE and isinstance(result.get("e"), int) and result["e"] >= time.time()


def test_link_edge_cases():
    assert SIGNER.verify(GENUINE_LINK, {MANAGE, OFFER})["s"] == "reg-1"
    with pytest.raises(Forbidden):
        SIGNER.verify(GENUINE_LINK, OFFER)  # wrong purpose
    with pytest.raises(Forbidden):
        LinkSigner("another-secret-0123456789", namespace="registration").verify(GENUINE_LINK, MANAGE)
    with pytest.raises(Forbidden):
        LinkSigner("fuzz-secret-0123456789", namespace="notifications").verify(GENUINE_LINK, MANAGE)
    with pytest.raises(Forbidden):
        LINKS.check(GENUINE_LINK, "reg-2", {MANAGE})  # another registration
    with pytest.raises(Gone):
        SIGNER.verify(SIGNER.sign(MANAGE, "reg-1", -5), MANAGE)
    for hostile in ("a.é", "é.a", "a.\ud800", "\ud800.a", "\x00.\x00", ".", "..", "a" * 10_000 + ".b"):
        with pytest.raises(Forbidden):
            SIGNER.verify(hostile, MANAGE)


# --- JWTs ------------------------------------------------------------------------------------------

@FUZZ
@given(token=any_text)
def test_jwt_verify_only_refuses_arbitrary_strings(verifier, token):
    with pytest.raises(Unauthorized):
        verifier.verify(token)


def _segments(token: str) -> list[bytes] | None:
    try:
        return [base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)) for part in token.split(".")]
    except (binascii.Error, ValueError):
        return None


@FUZZ
@given(data=st.data())
def test_mutated_genuine_jwt_never_verifies(keys, verifier, data):
    genuine = staff_token(keys[0])
    assert verifier.verify(genuine).is_staff
    token = data.draw(mutations(genuine))
    try:
        verifier.verify(token)
    except Unauthorized:
        return
    # Accepted: only if it is the very same signed content (a non-canonical base64url spelling of it).
    assert token.split(".")[:2] == genuine.split(".")[:2], token
    assert _segments(token) == _segments(genuine), token


def _forge(claims: dict, *, key: bytes | str = b"", algorithm: str | None = "none", header: dict | None = None) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    if algorithm == "none":
        return f"{b64(json.dumps(header or {'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}."
    # HS256 by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret.
    signing_input = f"{b64(json.dumps({'alg': algorithm, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    mac = hmac.new(key if isinstance(key, bytes) else key.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


def test_refused_tokens(keys, verifier, tmp_path):
    private_pem, public = keys
    now = int(time.time())
    good = {"sub": "admin@test", "role": "staff", "territory_id": None, "region": None, "iss": "intercotour-venues",
            "aud": "intercotour", "iat": now, "nbf": now, "exp": now + 600}
    other_private, _ = ensure_keypair(tmp_path / "other")
    refused = {
        "alg=none": _forge(good),
        "alg=None header, signature kept": _forge(good, header={"alg": "None"}) + staff_token(private_pem).split(".")[2],
        "HS256 keyed with the public key": _forge(good, key=public.read_bytes().decode(), algorithm="HS256"),
        "wrong signing key": staff_token(other_private.read_bytes()),
        "wrong audience": staff_token(private_pem, audience="someone-else"),
        "wrong issuer": staff_token(private_pem, issuer="not-venues"),
        "expired": jwt.encode({**good, "iat": now - 7200, "nbf": now - 7200, "exp": now - 3600}, private_pem,
                              algorithm="EdDSA"),
        "not yet valid": jwt.encode({**good, "nbf": now + 3600}, private_pem, algorithm="EdDSA"),
        "no exp": jwt.encode({k: v for k, v in good.items() if k != "exp"}, private_pem, algorithm="EdDSA"),
        "unknown role": jwt.encode({**good, "role": "root"}, private_pem, algorithm="EdDSA"),
        "host without territory": jwt.encode({**good, "role": "host"}, private_pem, algorithm="EdDSA"),
        "signature of another token": ".".join(staff_token(private_pem, subject="x").split(".")[:2]
                                               + [staff_token(private_pem).split(".")[2]]),
    }
    for name, token in refused.items():
        with pytest.raises(Unauthorized):
            verifier.verify(token)
            pytest.fail(f"{name} was accepted")
    assert verifier.verify(jwt.encode(good, private_pem, algorithm="EdDSA")).subject == "admin@test"
    # Expiry is reported as such.
    with pytest.raises(Unauthorized, match="expired"):
        verifier.verify(refused["expired"])
