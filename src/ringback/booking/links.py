"""Signed links: the expiring booking link texted to a patient, and calendar feed URLs.

A booking token is ``<conversation id>.<expiry, unix seconds>.<signature>``; the signature
is HMAC-SHA256 over a purpose label and both numbers with the deployment's secret key, so
a link cannot be altered to open another patient's conversation or outlive its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta


class BadLink(Exception):
    """The link was altered, is not ours, or has expired (``expired`` tells which)."""

    def __init__(self, detail: str, *, expired: bool = False) -> None:
        super().__init__(detail)
        self.expired = expired


def _sign(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode().rstrip("=")


def booking_token(secret: bytes, conversation_id: int, now: datetime, valid: timedelta) -> str:
    expires = int((now + valid).timestamp())
    return f"{conversation_id}.{expires}.{_sign(secret, f'book:{conversation_id}:{expires}')}"


def read_booking_token(secret: bytes, token: str, now: datetime) -> int:
    """The conversation id in ``token``; raises :class:`BadLink`."""
    parts = token.split(".")
    # ASCII only: "²" passes isdigit, and compare_digest refuses non-ASCII text (a TypeError).
    if len(parts) != 3 or not token.isascii() or not parts[0].isdigit() or not parts[1].isdigit():
        raise BadLink("not a booking link")
    conversation_id, expires = int(parts[0]), int(parts[1])
    expected = _sign(secret, f"book:{conversation_id}:{expires}")
    if not hmac.compare_digest(expected, parts[2]):
        raise BadLink("not a booking link")
    if now.timestamp() >= expires:
        raise BadLink("this booking link has expired", expired=True)
    return conversation_id


def feed_token(secret: bytes, location_id: str, key: str) -> str:
    return _sign(secret, f"ics:{location_id}:{key}")


def check_feed_token(secret: bytes, location_id: str, key: str, token: str) -> bool:
    # A token that is not ASCII is not ours (and compare_digest would raise on it).
    return token.isascii() and hmac.compare_digest(feed_token(secret, location_id, key), token)


PARTS_OF_DAY = ("morning", "afternoon", "evening")


def part_of_day(local: datetime) -> str:
    """``morning`` before noon, ``afternoon`` until five, then ``evening`` (local time)."""
    return PARTS_OF_DAY[0 if local.hour < 12 else 1 if local.hour < 17 else 2]
