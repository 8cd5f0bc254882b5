"""A location's sign-in to its booking system, sealed at rest with the install's secret key.

The key is derived from ``RINGBACK_SECRET_KEY`` (or the data directory's ``secret.key``)
with HKDF-SHA256 for this one purpose, and the credential is sealed with Fernet
(AES-128-CBC with HMAC-SHA256, from the ``cryptography`` package). A database copied
without the secret key gives nothing away; a changed key makes stored credentials
unreadable (reconnect), never silently wrong.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.orm import Session

from ringback.models import BookingSystemCredential

_INFO = b"ringback booking-system credentials v1"


class CredentialsUnreadable(Exception):
    """The stored credential cannot be opened with this install's secret key."""


def _fernet(secret: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
    return Fernet(base64.urlsafe_b64encode(key))


def seal(secret: bytes, data: dict[str, Any]) -> str:
    return _fernet(secret).encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def unseal(secret: bytes, sealed: str) -> dict[str, Any]:
    try:
        opened = json.loads(_fernet(secret).decrypt(sealed.encode()))
    except (InvalidToken, ValueError) as exc:
        raise CredentialsUnreadable(
            "the stored credential does not open with this install's secret key (reconnect)"
        ) from exc
    if not isinstance(opened, dict):
        raise CredentialsUnreadable("the stored credential is not a mapping (reconnect)")
    return opened


def save(
    session: Session,
    secret: bytes,
    location_id: str,
    system: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Store (or replace) the location's credential, sealed. Joins the caller's transaction."""
    row = session.get(BookingSystemCredential, location_id)
    if row is None:
        row = BookingSystemCredential(location_id=location_id)
        session.add(row)
    row.system, row.sealed, row.connected_at = system, seal(secret, data), now
    session.flush()


def load(session: Session, secret: bytes, location_id: str, system: str) -> dict[str, Any] | None:
    """The location's credential for ``system``, opened; None when none is stored."""
    row = session.get(BookingSystemCredential, location_id)
    if row is None or row.system != system:
        return None
    return unseal(secret, row.sealed)
