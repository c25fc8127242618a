"""Staff and host accounts: argon2 password hashes and the Ed25519 key that signs their tokens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import serialization

from shared.auth import Role, ensure_keypair

from venues.config import Settings


@dataclass
class Account:
    id: str
    email: str
    name: str
    role: Role
    password_hash: str
    territory_id: str | None = None
    region: str | None = None


def normalise_email(email: str) -> str:
    return email.strip().lower()


class Passwords:
    """argon2id hashing; a verify against a dummy hash for unknown emails keeps timing uniform."""

    def __init__(self, hasher: PasswordHasher | None = None):
        self._hasher = hasher or PasswordHasher()
        self._dummy = self._hasher.hash("not-a-real-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash or self._dummy, password) and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def load_signing_key(settings: Settings) -> bytes:
    """The private key tokens are signed with; checks that jwt_public_key_file is its public half.

    Local mode creates the pair once under keys_dir; elsewhere the key must be provisioned.
    """
    private_file = settings.jwt_private_key_file
    assert private_file is not None  # defaulted by Settings
    if settings.mode == "local" and not private_file.exists():
        ensure_keypair(settings.keys_dir)
    if not private_file.exists():
        raise RuntimeError(f"JWT signing key {private_file} is missing (set VENUES_JWT_PRIVATE_KEY_FILE)")
    private_pem = private_file.read_bytes()
    key = serialization.load_pem_private_key(private_pem, password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _check_public_half(settings.jwt_public_key_file, public_pem, write=settings.mode == "local")
    return private_pem


def _check_public_half(public_file: Path, public_pem: bytes, *, write: bool) -> None:
    if not public_file.exists() and write:
        public_file.parent.mkdir(parents=True, exist_ok=True)
        public_file.write_bytes(public_pem)
    if not public_file.exists() or public_file.read_bytes().strip() != public_pem.strip():
        raise RuntimeError(
            f"{public_file} is not the public half of the signing key; the other services could not verify tokens"
        )
