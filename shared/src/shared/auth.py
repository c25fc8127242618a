"""Who is calling: venues-signed JWTs for staff and hosts, signed single-purpose links for everyone else."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from shared.errors import Forbidden, Gone, Unauthorized

JWT_ALGORITHM = "EdDSA"
Role = Literal["staff", "host"]


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    territory_id: str | None = None
    region: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("staff role required")

    def require_territory(self, territory_id: str | None) -> None:
        """Staff may act on any territory; a host only on its own."""
        if not self.is_staff and (territory_id is None or territory_id != self.territory_id):
            raise Forbidden("this territory belongs to another host")


def ensure_keypair(directory: Path) -> tuple[Path, Path]:
    """Local mode: make the signing key pair once and keep it (private key readable by the owner only)."""
    directory.mkdir(parents=True, exist_ok=True)
    private, public = directory / "jwt_private.pem", directory / "jwt_public.pem"
    if not private.exists() or not public.exists():
        key = Ed25519PrivateKey.generate()
        private.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        private.chmod(0o600)
        public.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private, public


def issue_token(private_pem: bytes, *, subject: str, role: Role, territory_id: str | None, region: str | None,
                issuer: str, audience: str, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": subject, "role": role, "territory_id": territory_id, "region": region,
              "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, private_pem, algorithm=JWT_ALGORITHM)


class JwtVerifier:
    """Verifies venues' tokens with its public key; only EdDSA is accepted (so never alg=none or HS*)."""

    def __init__(self, public_key_file: Path, *, audience: str, issuer: str):
        self._file = public_key_file
        self._key: bytes | None = None
        self.audience = audience
        self.issuer = issuer

    def _public_key(self) -> bytes:
        # Read lazily: in the local stack venues may create the key after this service started.
        if self._key is None:
            try:
                self._key = self._file.read_bytes()
            except FileNotFoundError as exc:
                raise Unauthorized("token verification key is not available yet") from exc
        return self._key

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(token, self._public_key(), algorithms=[JWT_ALGORITHM], audience=self.audience,
                                issuer=self.issuer, options={"require": ["exp", "sub", "aud", "iss"]})
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from exc
        role = claims.get("role")
        if role not in ("staff", "host") or (role == "host" and not claims.get("territory_id")):
            raise Unauthorized("invalid token: bad role claims")
        return Principal(claims["sub"], role, claims.get("territory_id"), claims.get("region"))

    def from_request(self, request: Request) -> Principal | None:
        header = request.headers.get("authorization", "")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("expected 'Authorization: Bearer <token>'")
        return self.verify(token.strip())

    def require(self, request: Request) -> Principal:
        principal = self.from_request(request)
        if principal is None:
            raise Unauthorized("authentication required")
        return principal


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Signed single-purpose links: ``base64(payload).base64(hmac)``.

    The purpose is inside the MAC, so a cancel link cannot be replayed as a
    transfer link; expiry is checked after the signature (410 only for genuine links).
    """

    def __init__(self, secret: str, *, namespace: str):
        self._key = hashlib.sha256(f"{namespace}:{secret}".encode()).digest()

    def sign(self, purpose: str, subject: str, ttl_seconds: int, **extra: Any) -> str:
        payload = {"p": purpose, "s": subject, "e": int(time.time()) + ttl_seconds, **extra}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        return f"{body}.{self._mac(body)}"

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def verify(self, token: str | None, purpose: str | set[str]) -> dict[str, Any]:
        """Payload of a valid token for one of ``purpose``; 403 if forged/altered/wrong purpose, 410 if expired."""
        # Genuine tokens are base64url: anything else (non-ASCII, surrogates) is refused before hmac sees it.
        if not token or not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
            raise Forbidden("invalid link token")
        body, mac = token.split(".")
        if not hmac.compare_digest(mac, self._mac(body)):
            raise Forbidden("invalid link token")
        try:
            payload = json.loads(_unb64(body))
        except ValueError as exc:
            raise Forbidden("invalid link token") from exc
        purposes = {purpose} if isinstance(purpose, str) else purpose
        if not isinstance(payload, dict) or not isinstance(payload.get("p"), str) or payload["p"] not in purposes:
            raise Forbidden("this link is not valid for this action")
        if not isinstance(payload.get("e"), int) or payload["e"] < time.time():
            raise Gone("this link has expired")
        return payload
