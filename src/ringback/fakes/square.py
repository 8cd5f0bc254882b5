"""A fake Square (Bookings, Customers, Locations, Team, Catalog) for tests.

In memory: one seller's locations, team members with working hours, bookable services
(catalog items with service variations, versions and durations), customers, and bookings
with versions and statuses. Availability is computed from the working hours and the
bookings; idempotency keys are honoured (the same key and request answer the first
result again; the same key with another request is ``IDEMPOTENCY_KEY_REUSED``); webhook
subscribers get ``booking.created`` / ``booking.updated`` events signed the way Square
signs them (``x-square-hmacsha256-signature``: base64 HMAC-SHA256 of the notification
URL followed by the raw body, keyed by the subscription's signature key).

Every request is checked against Square's OpenAPI description
(:mod:`ringback.fakes.openapi`), the bearer token and its permissions, and the
``Square-Version`` header; violations are recorded and answered in Square's error shape,
``{"errors": [{"category", "code", "detail", "field"}]}``.

Permissions decide double-booking, as in Square: a token with seller-level
``APPOINTMENTS_ALL_WRITE`` may book over an existing booking (Square lets the seller
double-book), a buyer-level token (``APPOINTMENTS_WRITE`` only) is refused a slot that is
not available. The refusal's exact code is not documented; the fake answers 400
``INVALID_REQUEST_ERROR`` / ``BAD_REQUEST`` on ``booking.start_at`` (see
:data:`SLOT_TAKEN_DETAIL`).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from typing import Any, Self
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ringback.fakes.contract import ApiContract, Operation, bearer_token, parse_rfc3339
from ringback.fakes.openapi import square_contract
from ringback.fakes.scripting import (
    BackgroundTasks,
    RecordedRequest,
    ScriptedError,
    TrafficLog,
)
from ringback.fakes.twilio import BackgroundServer

logger = logging.getLogger(__name__)

SQUARE_VERSION = "2025-08-20"
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
SLOT_TAKEN_DETAIL = "The requested booking time is not available."
BUYER_SCOPES = (
    "APPOINTMENTS_READ",
    "APPOINTMENTS_WRITE",
    "CUSTOMERS_READ",
    "CUSTOMERS_WRITE",
    "ITEMS_READ",
    "MERCHANT_PROFILE_READ",
    "EMPLOYEES_READ",
)
SELLER_SCOPES = (*BUYER_SCOPES, "APPOINTMENTS_ALL_READ", "APPOINTMENTS_ALL_WRITE")
_SQUARE_VERSION_FORMAT = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_CANCELLED = ("CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SELLER", "DECLINED", "NO_SHOW")
_CATEGORY_BY_STATUS: Mapping[int, str] = {
    401: "AUTHENTICATION_ERROR",
    403: "AUTHENTICATION_ERROR",
    429: "RATE_LIMIT_ERROR",
    500: "API_ERROR",
    502: "API_ERROR",
    503: "API_ERROR",
}
_CODE_BY_STATUS: Mapping[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    429: "RATE_LIMITED",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}


def square_error(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    category: str | None = None,
    field_name: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ScriptedError:
    """An error in Square's shape: ``{"errors": [{"category", "code", "detail", "field"}]}``."""
    error: dict[str, str] = {
        "category": category or _CATEGORY_BY_STATUS.get(status, "INVALID_REQUEST_ERROR"),
        "code": code or _CODE_BY_STATUS.get(status, "BAD_REQUEST"),
        "detail": detail,
    }
    if field_name is not None:
        error["field"] = field_name
    return ScriptedError(status, {"errors": [error]}, dict(headers or {}))


def _respond(error: ScriptedError) -> JSONResponse:
    return JSONResponse(dict(error.body), status_code=error.status, headers=dict(error.headers))


def sign_square_notification(signature_key: str, notification_url: str, body: bytes) -> str:
    """Square's webhook signature: base64(HMAC-SHA256(key, notification URL + raw body))."""
    digest = hmac.new(
        signature_key.encode(), notification_url.encode() + body, hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


@dataclass(frozen=True, slots=True)
class SquareService:
    """A bookable service: a catalog item and its one service variation."""

    item_id: str
    variation_id: str
    name: str
    duration_minutes: int
    version: int
    team_member_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One webhook event the fake POSTed, and what the receiver answered."""

    url: str
    event_type: str
    body: bytes
    signature: str
    response_status: int | None
    error: str | None


@dataclass(slots=True)
class _Subscription:
    url: str
    signature_key: str


@dataclass(slots=True)
class _Idempotent:
    fingerprint: str
    status: int
    answer: dict[str, Any]


@dataclass(slots=True)
class _Seller:
    location_id: str = field(default_factory=lambda: "L" + secrets.token_hex(6).upper())
    location_name: str = "Glow Med Spa"
    timezone: str = "America/Los_Angeles"
    merchant_id: str = field(default_factory=lambda: "M" + secrets.token_hex(6).upper())
    team: dict[str, dict[str, Any]] = field(default_factory=dict)
    hours: dict[str, tuple[clock_time, clock_time]] = field(default_factory=dict)
    services: dict[str, SquareService] = field(default_factory=dict)


class FakeSquare:
    """One Square seller: its data, tokens, scripted failures and recorded traffic."""

    def __init__(
        self,
        *,
        access_token: str | None = None,
        scopes: tuple[str, ...] = BUYER_SCOPES,
        contract: ApiContract | None = None,
        slot_minutes: int = 30,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.access_token = access_token or "EAAA" + secrets.token_urlsafe(32)
        self.scopes = frozenset(scopes)
        self.contract = contract if contract is not None else square_contract()
        self.slot_minutes = slot_minutes
        self.clock = clock or (lambda: datetime.now(UTC))
        self.traffic = TrafficLog()
        self.seller = _Seller()
        self._bookings: dict[str, dict[str, Any]] = {}
        self._customers: dict[str, dict[str, Any]] = {}
        self._idempotency: dict[tuple[str, str], _Idempotent] = {}
        self._subscriptions: list[_Subscription] = []
        self._webhooks: list[WebhookAttempt] = []
        self._token_expired = False
        self._last_stamp = datetime.min.replace(tzinfo=UTC)

    # --- the seller's setup -----------------------------------------------------------

    @property
    def location_id(self) -> str:
        return self.seller.location_id

    def add_team_member(
        self,
        given_name: str,
        family_name: str = "",
        *,
        opens: clock_time = clock_time(9),
        closes: clock_time = clock_time(17),
    ) -> str:
        """A bookable team member working ``opens``-``closes`` every day (location time)."""
        member_id = "TM" + secrets.token_hex(8)
        with self.traffic.lock:
            self.seller.team[member_id] = {
                "id": member_id,
                "is_owner": False,
                "status": "ACTIVE",
                "given_name": given_name,
                "family_name": family_name,
                "created_at": _square_time(self.clock()),
                "updated_at": _square_time(self.clock()),
                "assigned_locations": {
                    "assignment_type": "EXPLICIT_LOCATIONS",
                    "location_ids": [self.seller.location_id],
                },
            }
            self.seller.hours[member_id] = (opens, closes)
        return member_id

    def add_service(
        self, name: str, duration_minutes: int, team_member_ids: tuple[str, ...]
    ) -> SquareService:
        service = SquareService(
            item_id=secrets.token_hex(12).upper(),
            variation_id=secrets.token_hex(12).upper(),
            name=name,
            duration_minutes=duration_minutes,
            version=int(self.clock().timestamp() * 1000),
            team_member_ids=team_member_ids,
        )
        with self.traffic.lock:
            self.seller.services[service.variation_id] = service
        return service

    def subscribe(self, url: str, signature_key: str | None = None) -> str:
        """Send booking events to ``url``; returns the subscription's signature key."""
        key = signature_key or secrets.token_urlsafe(22)
        with self.traffic.lock:
            self._subscriptions.append(_Subscription(url, key))
        return key

    # --- what happened ----------------------------------------------------------------

    def bookings(self) -> list[dict[str, Any]]:
        with self.traffic.lock:
            return [copy.deepcopy(booking) for booking in self._bookings.values()]

    def customers(self) -> list[dict[str, Any]]:
        with self.traffic.lock:
            return [copy.deepcopy(customer) for customer in self._customers.values()]

    @property
    def webhooks(self) -> list[WebhookAttempt]:
        with self.traffic.lock:
            return list(self._webhooks)

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> list[WebhookAttempt]:
        with self.traffic.changed:
            if not self.traffic.changed.wait_for(lambda: len(self._webhooks) >= count, timeout):
                raise TimeoutError(f"the fake sent {len(self._webhooks)} of {count} webhooks")
            return list(self._webhooks)

    @property
    def violations(self) -> list[str]:
        return self.traffic.violations

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.traffic.requests

    # --- scripting --------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        code: str | None = None,
        detail: str = "An internal error occurred.",
        operation: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests (for ``operation``, e.g. ``CreateBooking``;
        ``None``: any) with a Square error."""
        headers = {"Retry-After": str(retry_after_seconds)} if retry_after_seconds else {}
        self.traffic.script(
            square_error(status, detail, code=code, headers=headers), count, operation
        )

    def rate_limit_next(self, count: int = 1, *, operation: str | None = None) -> None:
        self.fail_next(count, status=429, detail="Rate limit exceeded.", operation=operation)

    def expire_access_token(self) -> None:
        """The token stops working (Square answers 401 ``ACCESS_TOKEN_EXPIRED``)."""
        with self.traffic.lock:
            self._token_expired = True

    def hold_next(
        self, count: int = 1, *, seconds: float | None = None, operation: str | None = None
    ) -> None:
        """Do the next ``count`` requests' work, then hold the answer (a client timeout)."""
        self.traffic.hold(count, seconds, operation)

    def book_directly(self, team_member_id: str, service: SquareService, start: datetime) -> str:
        """A booking the front desk made in Square's own app (seller-level)."""
        with self.traffic.lock:
            booking = self._new_booking(
                {
                    "start_at": _square_time(start),
                    "location_id": self.location_id,
                    "appointment_segments": [
                        {
                            "team_member_id": team_member_id,
                            "service_variation_id": service.variation_id,
                            "service_variation_version": service.version,
                            "duration_minutes": service.duration_minutes,
                        }
                    ],
                },
                creator_type="TEAM_MEMBER",
            )
        return str(booking["id"])

    # --- the model (lock held) --------------------------------------------------------

    def _stamp(self) -> datetime:
        now = self.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_stamp:
            now = self._last_stamp + timedelta(milliseconds=1)
        self._last_stamp = now
        return now

    def _new_booking(self, requested: Mapping[str, Any], *, creator_type: str) -> dict[str, Any]:
        booking_id = secrets.token_hex(7)
        stamp = _square_time(self._stamp())
        segments = []
        for segment in requested.get("appointment_segments", []):
            service = self.seller.services.get(segment.get("service_variation_id", ""))
            duration = segment.get("duration_minutes") or (
                service.duration_minutes if service else 60
            )
            segments.append(
                {
                    **segment,
                    "duration_minutes": duration,
                    "intermission_minutes": 0,
                    "any_team_member": False,
                }
            )
        booking: dict[str, Any] = {
            "id": booking_id,
            "version": 0,
            "status": "ACCEPTED",
            "created_at": stamp,
            "updated_at": stamp,
            "location_id": requested.get("location_id"),
            "customer_id": requested.get("customer_id"),
            "customer_note": requested.get("customer_note", ""),
            "seller_note": requested.get("seller_note", ""),
            "start_at": _square_time(_parse(str(requested["start_at"]))),
            "all_day": False,
            "appointment_segments": segments,
            "transition_time_minutes": 0,
            "location_type": "BUSINESS_LOCATION",
            "creator_details": {"creator_type": creator_type},
            "source": "API" if creator_type != "TEAM_MEMBER" else "FIRST_PARTY_MERCHANT",
        }
        self._bookings[booking_id] = booking
        return booking

    def _overlapping(
        self, team_member_id: str, start: datetime, end: datetime, ignore: str | None = None
    ) -> list[dict[str, Any]]:
        found = []
        for booking in self._bookings.values():
            if booking["id"] == ignore or booking["status"] in _CANCELLED:
                continue
            if team_member_id not in _team_members(booking):
                continue
            other_start, other_end = booking_span(booking)
            if other_start < end and other_end > start:
                found.append(booking)
        return found

    def _within_hours(self, team_member_id: str, start: datetime, end: datetime) -> bool:
        hours = self.seller.hours.get(team_member_id)
        if hours is None:
            return False
        zone = ZoneInfo(self.seller.timezone)
        local_start = start.astimezone(zone)
        opens = datetime.combine(local_start.date(), hours[0], zone)
        closes = datetime.combine(local_start.date(), hours[1], zone)
        return opens <= start and end <= closes


def _team_members(booking: Mapping[str, Any]) -> list[str]:
    return [str(segment.get("team_member_id")) for segment in booking["appointment_segments"]]


def booking_span(booking: Mapping[str, Any]) -> tuple[datetime, datetime]:
    """A Square booking's start and end: ``start_at`` plus its segments' durations."""
    start = _parse(str(booking["start_at"]))
    minutes = sum(
        int(segment.get("duration_minutes") or 0) + int(segment.get("intermission_minutes") or 0)
        for segment in booking.get("appointment_segments") or []
    )
    return start, start + timedelta(minutes=minutes)


def _parse(value: str) -> datetime:
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise ValueError(f"{value!r} is not RFC 3339")
    return parsed


def _square_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class _Call:
    operation: str
    path_values: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: Any
    scopes: frozenset[str]


_Events = list[tuple[str, dict[str, Any]]]
_Handler = Callable[[FakeSquare, _Call], tuple[Response, _Events]]


def create_fake_square_app(state: FakeSquare) -> Starlette:
    """The fake as an ASGI app serving Square's paths (``/v2/...``)."""
    background = BackgroundTasks()
    clients: dict[str, httpx.AsyncClient] = {}

    def publish(event_type: str, booking: dict[str, Any]) -> None:
        event = {
            "merchant_id": state.seller.merchant_id,
            "type": event_type,
            "event_id": secrets.token_hex(16),
            "created_at": _square_time(state.clock()),
            "data": {"type": "booking", "id": booking["id"], "object": {"booking": booking}},
        }
        body = json.dumps(event).encode()
        with state.traffic.lock:
            subscriptions = list(state._subscriptions)
        for subscription in subscriptions:
            signature = sign_square_notification(subscription.signature_key, subscription.url, body)
            background.spawn(post_webhook(subscription.url, event_type, body, signature))

    async def post_webhook(url: str, event_type: str, body: bytes, signature: str) -> None:
        status: int | None = None
        error: str | None = None
        try:
            response = await clients["client"].post(
                url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature,
                    "square-version": SQUARE_VERSION,
                },
            )
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = WebhookAttempt(url, event_type, body, signature, status, error)
        with state.traffic.changed:
            state._webhooks.append(attempt)
            state.traffic.changed.notify_all()

    async def front_door(request: Request) -> Response:
        received = time.monotonic()
        raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
        raw_path = raw_path or request.url.path
        query = parse_qs(request.url.query, keep_blank_values=True)
        body = await request.body()

        def record(operation: str | None, status: int | None, parsed: Any = None) -> None:
            state.traffic.record(
                RecordedRequest(
                    request.method,
                    raw_path,
                    {name: tuple(values) for name, values in query.items()},
                    parsed,
                    operation,
                    status,
                    received,
                )
            )

        checked = state.contract.check(
            request.method, raw_path, query, request.headers.get("content-type"), body
        )
        operation = checked.operation.operation_id if checked.operation else None
        messages = [violation.message for violation in checked.violations]
        version = request.headers.get("square-version")
        if version is None or not _SQUARE_VERSION_FORMAT.match(version):
            messages.append(
                f"{operation or raw_path}: Square-Version header is {version!r}; "
                "send the API version the adapter was written for (YYYY-MM-DD)"
            )
        auth = _auth_error(state, request.headers.get("authorization"), checked.operation)
        if auth is not None:
            state.traffic.record_violations(messages)
            record(operation, auth.status, checked.body)
            return _respond(auth)
        if messages:
            state.traffic.record_violations(messages)
            for message in messages:
                logger.warning("fake_square.contract_violation %s", message)
            first = checked.violations[0] if checked.violations else None
            status = first.http_status if first is not None else 400
            detail = "; ".join(messages)
            error = square_error(
                status,
                detail,
                code="INVALID_SQUARE_VERSION_FORMAT" if first is None else None,
                field_name=first.field if first is not None else None,
            )
            record(operation, error.status, checked.body)
            return _respond(error)
        assert checked.operation is not None
        assert operation is not None
        scripted = state.traffic.take_error(operation)
        if scripted is not None:
            record(operation, scripted.status, checked.body)
            return _respond(scripted)
        handler = _HANDLERS.get(operation)
        if handler is None:
            message = f"{operation}: the fake Square does not implement this endpoint"
            state.traffic.record_violations([message])
            record(operation, 501, checked.body)
            return _respond(square_error(501, message, code="NOT_IMPLEMENTED"))
        call = _Call(operation, checked.path_values, query, checked.body, state.scopes)
        response, events = handler(state, call)
        for event_type, booking in events:
            publish(event_type, booking)
        hold, seconds = state.traffic.take_hold(operation)
        if hold:
            await state.traffic.hold_answer(seconds)
            if await request.is_disconnected():
                record(operation, None, checked.body)
                return response
        record(operation, response.status_code, checked.body)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            clients["client"] = client
            yield
            await background.cancel_all()

    return Starlette(
        routes=[
            Route("/{path:path}", front_door, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        ],
        lifespan=lifespan,
    )


def _auth_error(
    state: FakeSquare, authorization: str | None, operation: Operation | None
) -> ScriptedError | None:
    token, problem = bearer_token(authorization)
    if token is None:
        label = operation.operation_id if operation is not None else "request"
        state.traffic.record_violations([f"{label}: {problem}"])
        return square_error(401, f"This request could not be authorized: {problem}")
    with state.traffic.lock:
        expired = state._token_expired
    if not hmac.compare_digest(token.encode(), state.access_token.encode()):
        return square_error(401, "This request could not be authorized.")
    if expired:
        return square_error(401, "The OAuth access token is expired.", code="ACCESS_TOKEN_EXPIRED")
    missing = set(operation.scopes) - state.scopes if operation is not None else set()
    if operation is not None and missing:
        detail = (
            f"The merchant has not given your application permission: {', '.join(sorted(missing))}"
        )
        state.traffic.record_violations([f"{operation.operation_id}: {detail}"])
        return square_error(403, detail, code="INSUFFICIENT_SCOPES")
    return None


# --- handlers ------------------------------------------------------------------------------


def _ok(body: Mapping[str, Any]) -> tuple[Response, _Events]:
    return JSONResponse(dict(body)), []


def _error(status: int, detail: str, **kwargs: Any) -> tuple[Response, _Events]:
    return _respond(square_error(status, detail, **kwargs)), []


def _idempotent(
    state: FakeSquare,
    call: _Call,
    work: Callable[[], tuple[Response, _Events]],
) -> tuple[Response, _Events]:
    """Run ``work`` once per idempotency key; replay its answer for the same request."""
    key = call.body.get("idempotency_key") if isinstance(call.body, dict) else None
    if not key:
        return work()
    fingerprint = hashlib.sha256(
        json.dumps(
            {k: v for k, v in call.body.items() if k != "idempotency_key"}, sort_keys=True
        ).encode()
        + call.operation.encode()
        + json.dumps(dict(call.path_values), sort_keys=True).encode()
    ).hexdigest()
    with state.traffic.lock:
        seen = state._idempotency.get((call.operation, key))
        if seen is not None:
            if seen.fingerprint != fingerprint:
                return _error(
                    400,
                    "The idempotency key was used before with a different request.",
                    code="IDEMPOTENCY_KEY_REUSED",
                    field_name="idempotency_key",
                )
            return JSONResponse(seen.answer, status_code=seen.status), []
        response, events = work()
        if isinstance(response, JSONResponse) and response.status_code < 500:
            answer = json.loads(bytes(response.body))
            state._idempotency[(call.operation, key)] = _Idempotent(
                fingerprint, response.status_code, answer
            )
        return response, events


def _create_booking(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    def work() -> tuple[Response, _Events]:
        requested = call.body["booking"]
        if requested["location_id"] != state.location_id:
            return _error(400, "Location not found.", field_name="booking.location_id")
        customer_id = requested.get("customer_id")
        if customer_id is not None and customer_id not in state._customers:
            return _error(400, "Customer not found.", field_name="booking.customer_id")
        for index, segment in enumerate(requested["appointment_segments"]):
            where = f"booking.appointment_segments[{index}]"
            if segment["team_member_id"] not in state.seller.team:
                return _error(400, "Team member not found.", field_name=f"{where}.team_member_id")
            service = state.seller.services.get(segment["service_variation_id"])
            if service is None:
                return _error(
                    400,
                    "Service variation not found.",
                    field_name=f"{where}.service_variation_id",
                )
            if segment["service_variation_version"] != service.version:
                return _error(
                    400,
                    "Service variation version mismatch.",
                    field_name=f"{where}.service_variation_version",
                )
        start = _parse(requested["start_at"])
        if start < state.clock():
            return _error(400, "Booking start time is in the past.", field_name="booking.start_at")
        booking = state._new_booking(requested, creator_type="CUSTOMER")
        booking_start, booking_end = booking_span(booking)
        if "APPOINTMENTS_ALL_WRITE" not in call.scopes:
            for member in _team_members(booking):
                taken = state._overlapping(member, booking_start, booking_end, booking["id"])
                if taken or not state._within_hours(member, booking_start, booking_end):
                    del state._bookings[booking["id"]]
                    return _error(400, SLOT_TAKEN_DETAIL, field_name="booking.start_at")
        return JSONResponse({"booking": copy.deepcopy(booking), "errors": []}), [
            ("booking.created", copy.deepcopy(booking))
        ]

    with state.traffic.lock:
        return _idempotent(state, call, work)


def _retrieve_booking(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    with state.traffic.lock:
        booking = state._bookings.get(call.path_values["booking_id"])
        if booking is None:
            return _error(404, "Booking not found.", code="NOT_FOUND")
        return _ok({"booking": copy.deepcopy(booking), "errors": []})


def _update_booking(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    def work() -> tuple[Response, _Events]:
        booking = state._bookings.get(call.path_values["booking_id"])
        if booking is None:
            return _error(404, "Booking not found.", code="NOT_FOUND")
        if booking["status"] in _CANCELLED:
            return _error(400, "Cannot update a cancelled booking.", field_name="booking")
        requested = call.body["booking"]
        if "version" in requested and requested["version"] != booking["version"]:
            return _error(
                409, "Booking version mismatch.", code="CONFLICT", field_name="booking.version"
            )
        if "location_id" in requested and requested["location_id"] != booking["location_id"]:
            return _error(400, "The location cannot be changed.", field_name="booking.location_id")
        updated = copy.deepcopy(booking)
        for name in ("start_at", "customer_note", "seller_note", "customer_id"):
            if name in requested:
                updated[name] = requested[name]
        if "start_at" in requested:
            updated["start_at"] = _square_time(_parse(requested["start_at"]))
        if "appointment_segments" in requested:
            updated["appointment_segments"] = [
                {"intermission_minutes": 0, "any_team_member": False, **segment}
                for segment in requested["appointment_segments"]
            ]
        start, end = booking_span(updated)
        if "APPOINTMENTS_ALL_WRITE" not in call.scopes:
            for member in _team_members(updated):
                taken = state._overlapping(member, start, end, ignore=booking["id"])
                if taken or not state._within_hours(member, start, end):
                    return _error(400, SLOT_TAKEN_DETAIL, field_name="booking.start_at")
        updated["version"] = booking["version"] + 1
        updated["updated_at"] = _square_time(state._stamp())
        state._bookings[booking["id"]] = updated
        return JSONResponse({"booking": copy.deepcopy(updated), "errors": []}), [
            ("booking.updated", copy.deepcopy(updated))
        ]

    with state.traffic.lock:
        return _idempotent(state, call, work)


def _cancel_booking(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    def work() -> tuple[Response, _Events]:
        booking = state._bookings.get(call.path_values["booking_id"])
        if booking is None:
            return _error(404, "Booking not found.", code="NOT_FOUND")
        if booking["status"] in _CANCELLED:
            return _error(400, "Booking is already cancelled.", field_name="booking_id")
        requested_version = call.body.get("booking_version") if call.body else None
        if requested_version is not None and requested_version != booking["version"]:
            return _error(
                409, "Booking version mismatch.", code="CONFLICT", field_name="booking_version"
            )
        booking["status"] = "CANCELLED_BY_SELLER"
        booking["version"] += 1
        booking["updated_at"] = _square_time(state._stamp())
        return JSONResponse({"booking": copy.deepcopy(booking), "errors": []}), [
            ("booking.updated", copy.deepcopy(booking))
        ]

    with state.traffic.lock:
        return _idempotent(state, call, work)


def _list_bookings(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    query = {name: values[0] for name, values in call.query.items()}
    low = _parse(query["start_at_min"]) if "start_at_min" in query else state.clock()
    high = _parse(query["start_at_max"]) if "start_at_max" in query else low + timedelta(days=31)
    limit = int(query.get("limit", "100"))
    offset = int(query.get("cursor", "0") or 0)
    with state.traffic.lock:
        matching = [
            copy.deepcopy(booking)
            for booking in sorted(state._bookings.values(), key=lambda b: b["start_at"])
            if low <= _parse(booking["start_at"]) <= high
            and ("team_member_id" not in query or query["team_member_id"] in _team_members(booking))
            and ("location_id" not in query or booking["location_id"] == query["location_id"])
            and ("customer_id" not in query or booking["customer_id"] == query["customer_id"])
        ]
    page = matching[offset : offset + limit]
    answer: dict[str, Any] = {"bookings": page, "errors": []}
    if offset + limit < len(matching):
        answer["cursor"] = str(offset + limit)
    return _ok(answer)


def _search_availability(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    flt = call.body["query"]["filter"]
    low = _parse(flt["start_at_range"]["start_at"])
    high = _parse(flt["start_at_range"]["end_at"])
    if flt.get("location_id") != state.location_id:
        return _error(400, "Location not found.", field_name="query.filter.location_id")
    segment_filters = flt.get("segment_filters") or []
    if len(segment_filters) != 1:
        return _error(
            400,
            "The fake Square searches one service at a time.",
            field_name="query.filter.segment_filters",
        )
    segment_filter = segment_filters[0]
    service = state.seller.services.get(segment_filter["service_variation_id"])
    if service is None:
        return _error(
            400,
            "Service variation not found.",
            field_name="query.filter.segment_filters[0].service_variation_id",
        )
    wanted = segment_filter.get("team_member_id_filter") or {}
    members = [m for m in service.team_member_ids if m in state.seller.team]
    if wanted.get("any"):
        members = [m for m in members if m in wanted["any"]]
    duration = timedelta(minutes=service.duration_minutes)
    step = timedelta(minutes=state.slot_minutes)
    earliest = max(low, state.clock())
    availabilities = []
    with state.traffic.lock:
        zone = ZoneInfo(state.seller.timezone)
        for member in members:
            opens, _ = state.seller.hours[member]
            day = earliest.astimezone(zone).date() - timedelta(days=1)
            while datetime.combine(day, clock_time(0), zone) <= high:
                start = datetime.combine(day, opens, zone)
                day += timedelta(days=1)
                while start < datetime.combine(day, clock_time(0), zone):
                    end = start + duration
                    if (
                        earliest <= start < high
                        and state._within_hours(member, start, end)
                        and not state._overlapping(member, start, end)
                    ):
                        availabilities.append(
                            {
                                "start_at": _square_time(start),
                                "location_id": state.location_id,
                                "appointment_segments": [
                                    {
                                        "duration_minutes": service.duration_minutes,
                                        "service_variation_id": service.variation_id,
                                        "team_member_id": member,
                                        "service_variation_version": service.version,
                                    }
                                ],
                            }
                        )
                    start += step
    availabilities.sort(key=lambda slot: str(slot["start_at"]))
    return _ok({"availabilities": availabilities, "errors": []})


def _search_customers(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    phone = (
        (call.body or {}).get("query", {}).get("filter", {}).get("phone_number", {}).get("exact")
    )
    with state.traffic.lock:
        found = [
            copy.deepcopy(customer)
            for customer in state._customers.values()
            if phone is None or customer.get("phone_number") == phone
        ]
    return _ok({"customers": found, "errors": []} if found else {"errors": []})


def _create_customer(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    body = call.body or {}
    if not any(
        body.get(name)
        for name in ("given_name", "family_name", "company_name", "email_address", "phone_number")
    ):
        # Square: at least one of these is required to create a customer.
        return _error(
            400,
            "At least one of given_name, family_name, company_name, email_address, or "
            "phone_number is required.",
            code="MISSING_REQUIRED_PARAMETER",
        )

    def work() -> tuple[Response, _Events]:
        customer_id = secrets.token_hex(13).upper()
        stamp = _square_time(state.clock())
        customer = {
            "id": customer_id,
            "created_at": stamp,
            "updated_at": stamp,
            "creation_source": "THIRD_PARTY",
            "version": 0,
            **{k: v for k, v in body.items() if k != "idempotency_key"},
        }
        state._customers[customer_id] = customer
        return _ok({"customer": copy.deepcopy(customer), "errors": []})

    with state.traffic.lock:
        return _idempotent(state, call, work)


def _list_locations(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    location = {
        "id": state.location_id,
        "name": state.seller.location_name,
        "timezone": state.seller.timezone,
        "status": "ACTIVE",
        "merchant_id": state.seller.merchant_id,
        "country": "US",
        "currency": "USD",
        "business_name": state.seller.location_name,
        "type": "PHYSICAL",
        "capabilities": [],
        "created_at": "2024-01-01T00:00:00Z",
    }
    return _ok({"locations": [location], "errors": []})


def _search_team_members(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    flt = (call.body or {}).get("query", {}).get("filter", {})
    with state.traffic.lock:
        members = [
            copy.deepcopy(member)
            for member in state.seller.team.values()
            if ("status" not in flt or member["status"] == flt["status"])
            and (not flt.get("location_ids") or state.location_id in flt["location_ids"])
        ]
    return _ok({"team_members": members, "errors": []})


def _catalog_objects(state: FakeSquare) -> list[dict[str, Any]]:
    objects = []
    for service in state.seller.services.values():
        variation = {
            "type": "ITEM_VARIATION",
            "id": service.variation_id,
            "version": service.version,
            "is_deleted": False,
            "present_at_all_locations": True,
            "item_variation_data": {
                "item_id": service.item_id,
                "name": "Regular",
                "pricing_type": "VARIABLE_PRICING",
                "service_duration": service.duration_minutes * 60_000,
                "available_for_booking": True,
                "team_member_ids": list(service.team_member_ids),
                "sellable": True,
                "stockable": False,
            },
        }
        objects.append(
            {
                "type": "ITEM",
                "id": service.item_id,
                "version": service.version,
                "is_deleted": False,
                "present_at_all_locations": True,
                "item_data": {
                    "name": service.name,
                    "product_type": "APPOINTMENTS_SERVICE",
                    "variations": [variation],
                },
            }
        )
    return objects


def _search_catalog(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    types = set((call.body or {}).get("object_types") or ["ITEM"])
    with state.traffic.lock:
        objects = [obj for obj in _catalog_objects(state) if obj["type"] in types]
    return _ok({"objects": objects, "errors": []})


def _list_catalog(state: FakeSquare, call: _Call) -> tuple[Response, _Events]:
    types = {t for value in call.query.get("types", ["ITEM"]) for t in value.split(",")}
    with state.traffic.lock:
        objects = [obj for obj in _catalog_objects(state) if obj["type"] in types]
    return _ok({"objects": objects, "errors": []})


_HANDLERS: Mapping[str, _Handler] = {
    "CreateBooking": _create_booking,
    "RetrieveBooking": _retrieve_booking,
    "UpdateBooking": _update_booking,
    "CancelBooking": _cancel_booking,
    "ListBookings": _list_bookings,
    "SearchAvailability": _search_availability,
    "SearchCustomers": _search_customers,
    "CreateCustomer": _create_customer,
    "ListLocations": _list_locations,
    "SearchTeamMembers": _search_team_members,
    "SearchCatalogObjects": _search_catalog,
    "ListCatalog": _list_catalog,
}


class FakeSquareServer(BackgroundServer):
    """A :class:`FakeSquare` over real HTTP; point the adapter's base URL at ``url``."""

    def __init__(self, state: FakeSquare | None = None, *, startup_timeout: float = 10.0):
        self.state = state if state is not None else FakeSquare()
        super().__init__(create_fake_square_app(self.state), startup_timeout=startup_timeout)

    def start(self) -> Self:
        self.state.traffic.rearm()
        return super().start()

    def stop(self) -> None:
        self.state.traffic.release_held_answers()
        super().stop()
