from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.auth import JwtVerifier, LinkSigner, Principal, ensure_keypair, issue_token
from shared.errors import Forbidden, Gone, Unauthorized


@pytest.fixture
def keys(tmp_path):
    private, public = ensure_keypair(tmp_path / "keys")
    return private.read_bytes(), public


def token(private, **overrides):
    claims = dict(subject="host-1", role="host", territory_id="t1", region="BRE", issuer="intercotour-venues",
                  audience="intercotour")
    claims.update(overrides)
    return issue_token(private, **claims)


def verifier(public):
    return JwtVerifier(public, audience="intercotour", issuer="intercotour-venues")


def test_keypair_is_made_once_and_private_key_is_owner_only(tmp_path):
    private, public = ensure_keypair(tmp_path)
    first = public.read_bytes()
    ensure_keypair(tmp_path)
    assert public.read_bytes() == first
    assert private.stat().st_mode & 0o077 == 0


def test_valid_token_gives_the_principal(keys):
    private, public = keys
    assert verifier(public).verify(token(private)) == Principal("host-1", "host", "t1", "BRE")


@pytest.mark.parametrize("case", ["wrong_signature", "wrong_audience", "wrong_issuer", "expired", "alg_none",
                                  "hs256_with_public_key", "host_without_territory", "garbage"])
def test_bad_tokens_are_refused(keys, case):
    private, public = keys
    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    now = int(time.time())
    bad = {
        "wrong_signature": lambda: token(other),
        "wrong_audience": lambda: token(private, audience="someone-else"),
        "wrong_issuer": lambda: token(private, issuer="mallory"),
        "expired": lambda: token(private, ttl_seconds=-10),
        "alg_none": lambda: jwt.encode({"sub": "x", "role": "staff", "aud": "intercotour", "iss": "intercotour-venues",
                                        "exp": now + 60}, None, algorithm="none"),
        "hs256_with_public_key": lambda: _hs256_forgery(public.read_bytes(), now),
        "host_without_territory": lambda: token(private, territory_id=None),
        "garbage": lambda: "not.a.token",
    }[case]()
    with pytest.raises(Unauthorized):
        verifier(public).verify(bad)


def _hs256_forgery(public_pem: bytes, now: int) -> str:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps({"sub": "x", "role": "staff", "aud": "intercotour",
                                                   "iss": "intercotour-venues", "exp": now + 60}).encode()).rstrip(b"=")
    import hashlib
    import hmac

    sig = base64.urlsafe_b64encode(hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest()).rstrip(b"=")
    return (header + b"." + payload + b"." + sig).decode()


def test_principal_territory_rules():
    host = Principal("h", "host", "t1")
    host.require_territory("t1")
    with pytest.raises(Forbidden):
        host.require_territory("t2")
    with pytest.raises(Forbidden):
        host.require_staff()
    Principal("s", "staff").require_territory("anything")


def test_links_are_single_purpose_and_tamper_proof():
    signer = LinkSigner("secret", namespace="registration")
    link = signer.sign("cancel", "reg-1", 60)
    assert signer.verify(link, "cancel")["s"] == "reg-1"
    assert signer.verify(link, {"cancel", "manage"})["s"] == "reg-1"
    with pytest.raises(Forbidden):
        signer.verify(link, "transfer")
    body, mac = link.split(".")
    tampered = base64.urlsafe_b64encode(json.dumps({"p": "cancel", "s": "reg-2", "e": 2**40}).encode()).rstrip(b"=")
    with pytest.raises(Forbidden):
        signer.verify(f"{tampered.decode()}.{mac}", "cancel")
    with pytest.raises(Forbidden):
        LinkSigner("other-secret", namespace="registration").verify(link, "cancel")
    with pytest.raises(Forbidden):
        LinkSigner("secret", namespace="notifications").verify(link, "cancel")
    for junk in (None, "", "x", "a.b.c", "@@@.@@@"):
        with pytest.raises(Forbidden):
            signer.verify(junk, "cancel")


def test_expired_link_is_gone_but_only_when_genuine():
    signer = LinkSigner("secret", namespace="registration")
    with pytest.raises(Gone):
        signer.verify(signer.sign("cancel", "reg-1", -1), "cancel")
