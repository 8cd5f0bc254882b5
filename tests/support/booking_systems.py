"""Shared pieces for the booking-system tests: fake servers, a push/webhook receiver, times."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ringback.fakes.twilio import BackgroundServer
from ringback.ports import ExternalBooking

SPA_ZONE = ZoneInfo("America/Los_Angeles")


def spa_time(hour: int, minute: int = 0, *, days_ahead: int = 2) -> datetime:
    """A time ``days_ahead`` days from now at ``hour:minute`` in the spa's zone, as UTC."""
    day = datetime.now(SPA_ZONE).date() + timedelta(days=days_ahead)
    return datetime.combine(day, time(hour, minute), SPA_ZONE).astimezone(UTC)


def booking(
    ringback_id: str,
    start: datetime,
    *,
    minutes: int = 30,
    provider_ref: str | None = None,
    service_ref: str | None = None,
    phone: str | None = "+13105550100",
) -> ExternalBooking:
    return ExternalBooking(
        ringback_id=ringback_id,
        start=start,
        end=start + timedelta(minutes=minutes),
        summary="Maria - Botox consult",
        note="Booked by text with Ringback",
        provider_ref=provider_ref,
        service_ref=service_ref,
        customer_phone=phone,
        customer_given_name="Maria",
        customer_family_name=None,
    )


@dataclass(frozen=True, slots=True)
class Received:
    """One POST the receiver got: path, headers (lower-cased names) and raw body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Collects POSTs (Google pushes, Square webhooks) over real HTTP."""

    received: list[Received] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.received) >= count, timeout):
                raise TimeoutError(f"got {len(self.received)} of {count} posts")
            return list(self.received)


@contextmanager
def running_receiver() -> Iterator[tuple[Receiver, str]]:
    """A receiver on 127.0.0.1; yields it and its base URL."""
    receiver = Receiver()

    async def collect(request: Request) -> Response:
        body = await request.body()
        with receiver.changed:
            receiver.received.append(
                Received(
                    request.url.path,
                    {name.lower(): value for name, value in request.headers.items()},
                    body,
                )
            )
            receiver.changed.notify_all()
        return Response(status_code=200)

    app = Starlette(routes=[Route("/{path:path}", collect, methods=["POST"])])
    with BackgroundServer(app) as server:
        yield receiver, server.url


def hmac_signer(
    secret: bytes,
) -> tuple[Callable[[bytes], bytes], Callable[[bytes, bytes], bool]]:
    """A stand-in (signer, verifier) pair for the service-account JWT flow.

    RS256 needs an RSA library the environment does not have; the flow under test (JWT
    assembly, the grant, the token's use) does not depend on the algorithm.
    """

    def sign(data: bytes) -> bytes:
        return hmac.new(secret, data, hashlib.sha256).digest()

    def verify(data: bytes, signature: bytes) -> bool:
        return hmac.compare_digest(sign(data), signature)

    return sign, verify
