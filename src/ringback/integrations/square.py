"""Square Appointments (the Bookings API) as a :class:`~ringback.ports.BookingSystem`.

Square knows the clinic's services (catalog item variations), staff (team members) and
computes bookable slots itself, so:

* ``availability``: ``POST /v2/bookings/availability/search`` for one service and the
  given team members. Square wants a range of 24 hours to 32 days; a shorter window is
  widened for the search and the answer filtered back to it.
* ``busy``: ``GET /v2/bookings`` per team member (``start_at_min``/``start_at_max``, at
  most 31 days per call), cancelled ones left out.
* ``create``: ``POST /v2/bookings`` with an ``idempotency_key`` derived from the
  ``ringback_id`` (a retry answers the first booking), the customer found by phone
  (``/v2/customers/search``) or created, and ``seller_note`` carrying a ``ringback:<id>``
  marker so our bookings are recognised in lists and webhooks. With buyer-level
  permissions Square refuses a slot that is not available; with seller-level ones
  (``APPOINTMENTS_ALL_WRITE``) it lets the seller double-book. So the adapter checks the
  team member's bookings first, and reads them back after booking: the earliest created
  booking keeps the slot (:mod:`ringback.integrations.slot_claims`), a later one of ours
  is cancelled again and reported as :class:`~ringback.ports.BookingConflict`.
* ``reschedule``: ``PUT /v2/bookings/{id}`` with the booking's ``version`` (re-read and
  tried once more if Square says the version moved on); ``cancel``:
  ``POST /v2/bookings/{id}/cancel`` with ``booking_version`` (gone or already cancelled
  is fine).
* ``changes``: bookings in a rolling window (yesterday to 31 days ahead) updated after the
  cursor; Square has no change feed, so the webhooks (:func:`verify_square_signature`,
  :func:`parse_booking_webhook`) are the prompt path and this the safety net.
* ``locations``, ``team_members``, ``services``: plain lists for a ``square map`` command.

Errors come as ``{"errors": [{"category", "code", "detail", "field"}]}``: 401 and 403
raise :class:`~ringback.ports.BookingSystemUnavailable` with ``retry=False``; 429, 5xx
and timeouts with ``retry=True``. Square does not document the code for "slot taken";
an answer naming ``booking.start_at`` as unavailable, or a 409 that is not about a
version, is read as :class:`~ringback.ports.BookingConflict`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ringback.integrations.slot_claims import Claim, first_claim_wins
from ringback.logs import log_event
from ringback.ports import (
    BookingConflict,
    BookingSystemCapabilities,
    BookingSystemUnavailable,
    BusyTime,
    ExternalBooking,
    ExternalBookingRef,
    ExternalChange,
    ExternalChangeKind,
    ExternalSlot,
)

logger = logging.getLogger(__name__)

SQUARE_API_BASE = "https://connect.squareup.com"
SQUARE_SANDBOX_BASE = "https://connect.squareupsandbox.com"
SQUARE_VERSION = "2025-08-20"
SIGNATURE_HEADER = "x-square-hmacsha256-signature"
RINGBACK_MARKER = "ringback:"
USER_AGENT = "Ringback-Square/1"
CANCELLED_STATUSES = frozenset(
    {"CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SELLER", "DECLINED", "NO_SHOW"}
)
# Square's limits: availability ranges of 24 h to 32 days, booking lists of 31 days.
_AVAILABILITY_MIN = timedelta(hours=24)
_AVAILABILITY_MAX = timedelta(days=32)
_LIST_MAX = timedelta(days=31)
# How far before a window a booking may start and still reach into it.
_LONGEST_BOOKING = timedelta(hours=12)
_CHANGES_LOOKBACK = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SquareLocation:
    """A seller location, for mapping a Ringback location to it."""

    id: str
    name: str
    timezone: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class SquareTeamMember:
    """A team member, for mapping a Ringback provider to it."""

    id: str
    name: str
    status: str | None
    location_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SquareService:
    """A bookable service variation, for mapping a Ringback service to it."""

    variation_id: str
    item_id: str
    name: str
    duration_minutes: int | None
    version: int | None
    team_member_ids: tuple[str, ...]


def verify_square_signature(
    signature_key: str, notification_url: str, body: bytes, header: str | None
) -> bool:
    """True when ``header`` (``x-square-hmacsha256-signature``) signs this notification.

    Square signs the notification URL exactly as subscribed, followed by the raw body,
    with HMAC-SHA256 keyed by the subscription's signature key, base64-encoded. Verify
    the raw bytes before parsing them.
    """
    if not header or not signature_key:
        return False
    digest = hmac.new(
        signature_key.encode(), notification_url.encode() + body, hashlib.sha256
    ).digest()
    expected = base64.b64encode(digest)
    return hmac.compare_digest(expected, header.strip().encode())


def parse_booking_webhook(body: bytes) -> ExternalChange | None:
    """A verified ``booking.created`` / ``booking.updated`` event as a change, else ``None``."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or event.get("type") not in (
        "booking.created",
        "booking.updated",
    ):
        return None
    booking = event.get("data", {}).get("object", {}).get("booking")
    if not isinstance(booking, dict) or "id" not in booking:
        return None
    kind: ExternalChangeKind = "created" if event["type"] == "booking.created" else "updated"
    return _change(booking, kind)


class SquareBookingSystem:
    """One Square seller location as a booking system.

    ``access_token`` is the seller's OAuth access token (or a callable giving the current
    one). ``provider_ref`` is a team member id, ``service_ref`` a service variation id.
    """

    def __init__(
        self,
        access_token: str | Callable[[], str],
        location_id: str,
        *,
        base_url: str = SQUARE_API_BASE,
        square_version: str = SQUARE_VERSION,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
        page_size: int = 100,
    ) -> None:
        self.page_size = page_size
        self._token = access_token if callable(access_token) else (lambda: access_token)
        self.location_id = location_id
        self.base_url = base_url.rstrip("/")
        self.square_version = square_version
        self._timeout = httpx.Timeout(timeout)
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._services: dict[str, SquareService] = {}

    @property
    def capabilities(self) -> BookingSystemCapabilities:
        return BookingSystemCapabilities(
            knows_services=True,
            knows_staff=True,
            offers_availability=True,
            push_notifications=True,
            incremental_sync=False,
        )

    # --- mapping --------------------------------------------------------------------------

    def locations(self) -> list[SquareLocation]:
        answer = self._json("GET", "/v2/locations")
        return [
            SquareLocation(
                str(item["id"]), str(item.get("name", "")), item.get("timezone"), item.get("status")
            )
            for item in answer.get("locations", [])
        ]

    def team_members(self) -> list[SquareTeamMember]:
        members: list[SquareTeamMember] = []
        cursor: str | None = None
        while True:
            body: dict[str, Any] = {
                "query": {"filter": {"location_ids": [self.location_id], "status": "ACTIVE"}},
                "limit": self.page_size,
            }
            if cursor is not None:
                body["cursor"] = cursor
            answer = self._json("POST", "/v2/team-members/search", body=body)
            for item in answer.get("team_members", []):
                name = " ".join(
                    part for part in (item.get("given_name"), item.get("family_name")) if part
                )
                locations = item.get("assigned_locations", {}).get("location_ids") or []
                members.append(
                    SquareTeamMember(str(item["id"]), name, item.get("status"), tuple(locations))
                )
            cursor = answer.get("cursor")
            if not cursor:
                return members

    def services(self) -> list[SquareService]:
        """Bookable service variations (``ListCatalog`` of items, variations inside)."""
        found: list[SquareService] = []
        cursor: str | None = None
        while True:
            params = {"types": "ITEM"}
            if cursor is not None:
                params["cursor"] = cursor
            answer = self._json("GET", "/v2/catalog/list", params=params)
            for item in answer.get("objects", []):
                data = item.get("item_data", {})
                if data.get("product_type") != "APPOINTMENTS_SERVICE":
                    continue
                for variation in data.get("variations", []):
                    vdata = variation.get("item_variation_data", {})
                    if vdata.get("available_for_booking") is False:
                        continue
                    duration_ms = vdata.get("service_duration")
                    name = data.get("name", "")
                    if vdata.get("name") and vdata.get("name") != "Regular":
                        name = f"{name} ({vdata['name']})"
                    found.append(
                        SquareService(
                            variation_id=str(variation["id"]),
                            item_id=str(item["id"]),
                            name=str(name),
                            duration_minutes=int(duration_ms) // 60_000 if duration_ms else None,
                            version=variation.get("version"),
                            team_member_ids=tuple(vdata.get("team_member_ids") or ()),
                        )
                    )
            cursor = answer.get("cursor")
            if not cursor:
                self._services = {service.variation_id: service for service in found}
                return found

    # --- reading --------------------------------------------------------------------------

    def availability(
        self, start: datetime, end: datetime, service_ref: str, provider_refs: list[str]
    ) -> list[ExternalSlot]:
        slots: list[ExternalSlot] = []
        for low, high in _windows(start, end, _AVAILABILITY_MAX):
            search_high = max(high, low + _AVAILABILITY_MIN)
            segment_filter: dict[str, Any] = {"service_variation_id": service_ref}
            if provider_refs:
                segment_filter["team_member_id_filter"] = {"any": list(provider_refs)}
            answer = self._json(
                "POST",
                "/v2/bookings/availability/search",
                body={
                    "query": {
                        "filter": {
                            "location_id": self.location_id,
                            "start_at_range": {
                                "start_at": _rfc3339(low),
                                "end_at": _rfc3339(search_high),
                            },
                            "segment_filters": [segment_filter],
                        }
                    }
                },
            )
            for item in answer.get("availabilities", []):
                slot_start = _parse_time(str(item["start_at"]))
                if not low <= slot_start < high:
                    continue
                segments = item.get("appointment_segments") or [{}]
                minutes = sum(int(segment.get("duration_minutes") or 0) for segment in segments)
                slots.append(
                    ExternalSlot(
                        start=slot_start,
                        end=slot_start + timedelta(minutes=minutes),
                        provider_ref=segments[0].get("team_member_id"),
                        service_ref=segments[0].get("service_variation_id", service_ref),
                    )
                )
        return sorted(slots, key=lambda slot: (slot.start, slot.provider_ref or ""))

    def busy(self, start: datetime, end: datetime, provider_refs: list[str]) -> list[BusyTime]:
        """Bookings overlapping [start, end) per team member (all of them if none given)."""
        found: list[BusyTime] = []
        members: list[str | None] = list(provider_refs) or [None]
        for member in members:
            for booking in self._bookings(start - _LONGEST_BOOKING, end, member):
                if booking.get("status") in CANCELLED_STATUSES:
                    continue
                booking_start, booking_end = _span(booking)
                if booking_start < end and booking_end > start:
                    found.append(BusyTime(str(booking["id"]), booking_start, booking_end))
        unique = {busy.uid: busy for busy in found}
        return sorted(unique.values(), key=lambda busy: (busy.start, busy.end))

    # --- writing --------------------------------------------------------------------------

    def create(self, booking: ExternalBooking) -> ExternalBookingRef:
        member, service_ref = _require_refs(booking)
        own = self._find_own(booking, member)
        if own is not None:
            self._keep_if_first(own, booking, member)
            return _ref(own)
        if self.busy(booking.start, booking.end, [member]):
            log_event(logger, "square.booking.slot_taken")
            raise BookingConflict("square: the team member is booked at that time")
        service = self._service(service_ref)
        customer_id = self._customer_id(booking)
        requested: dict[str, Any] = {
            "start_at": _rfc3339(booking.start),
            "location_id": self.location_id,
            "seller_note": _seller_note(booking),
            "appointment_segments": [_segment(booking, member, service)],
        }
        if customer_id is not None:
            requested["customer_id"] = customer_id
        response = self._request(
            "POST",
            "/v2/bookings",
            body={"idempotency_key": _key("booking", booking.ringback_id), "booking": requested},
        )
        if _is_slot_taken(response):
            log_event(logger, "square.booking.slot_taken")
            raise BookingConflict("square: the slot is not available")
        created = self._expect_json(response, "create the booking")["booking"]
        if created.get("status") in CANCELLED_STATUSES:
            # The idempotency key replayed a booking this appointment lost earlier.
            raise BookingConflict("square: this appointment's booking was cancelled")
        self._keep_if_first(created, booking, member)
        log_event(logger, "square.booking.created")
        return _ref(created)

    def reschedule(self, ref: ExternalBookingRef, booking: ExternalBooking) -> ExternalBookingRef:
        member, service_ref = _require_refs(booking)
        others = [
            busy
            for busy in self.busy(booking.start, booking.end, [member])
            if busy.uid != ref.external_id
        ]
        if others:
            raise BookingConflict("square: the team member is booked at the new time")
        service = self._service(service_ref)
        version = int(ref.version) if ref.version is not None else None
        for attempt in range(2):
            if version is None:
                version = int(self._retrieve(ref.external_id)["version"])
            body = {
                "idempotency_key": _key(
                    "reschedule", f"{booking.ringback_id}|{_rfc3339(booking.start)}|{version}"
                ),
                "booking": {
                    "version": version,
                    "start_at": _rfc3339(booking.start),
                    "seller_note": _seller_note(booking),
                    "appointment_segments": [_segment(booking, member, service)],
                },
            }
            response = self._request("PUT", f"/v2/bookings/{ref.external_id}", body=body)
            version_moved = response.status_code == 409 and _error_field(response).endswith(
                "version"
            )
            if version_moved and attempt == 0:
                version = None
                continue
            if _is_slot_taken(response):
                raise BookingConflict("square: the new slot is not available")
            return _ref(self._expect_json(response, "move the booking")["booking"])
        raise BookingSystemUnavailable("square: the booking kept changing under us")

    def cancel(self, ref: ExternalBookingRef) -> None:
        try:
            current = self._retrieve(ref.external_id)
        except _NotFound:
            return
        if current.get("status") in CANCELLED_STATUSES:
            return
        response = self._request(
            "POST",
            f"/v2/bookings/{ref.external_id}/cancel",
            body={
                "idempotency_key": _key("cancel", f"{ref.external_id}|{current['version']}"),
                "booking_version": current["version"],
            },
        )
        if response.status_code in (200, 404):
            return
        if response.status_code in (400, 409):
            # Cancelled (or changed) meanwhile: look again rather than guess.
            again = self._retrieve(ref.external_id)
            if again.get("status") in CANCELLED_STATUSES:
                return
        raise _failure(response, "cancel the booking")

    def changes(self, cursor: str | None) -> tuple[list[ExternalChange], str]:
        """Bookings updated after ``cursor`` starting between yesterday and 31 days ahead."""
        since = _parse_time(cursor) if cursor else None
        now = self._clock()
        newest = since
        found: list[ExternalChange] = []
        for booking in self._bookings(
            now - _CHANGES_LOOKBACK, now + _LIST_MAX - _CHANGES_LOOKBACK, None
        ):
            updated = _parse_time(str(booking.get("updated_at") or booking["created_at"]))
            if since is not None and updated <= since:
                continue
            if booking.get("status") in CANCELLED_STATUSES:
                kind: ExternalChangeKind = "cancelled"
            elif booking.get("created_at") == booking.get("updated_at"):
                kind = "created"
            else:
                kind = "updated"
            found.append(_change(booking, kind))
            newest = updated if newest is None or updated > newest else newest
        return found, _rfc3339(newest or now)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # --- internals ------------------------------------------------------------------------

    def _find_own(self, booking: ExternalBooking, member: str) -> dict[str, Any] | None:
        marker = _marker(booking.ringback_id)
        for found in self._bookings(booking.start - _LONGEST_BOOKING, booking.end, member):
            if marker in str(found.get("seller_note", "")) and (
                found.get("status") not in CANCELLED_STATUSES
            ):
                return found
        return None

    def _keep_if_first(
        self, created: Mapping[str, Any], booking: ExternalBooking, member: str
    ) -> None:
        own = Claim(str(created["id"]), _parse_time(str(created["created_at"])))
        others = []
        for found in self._bookings(booking.start - _LONGEST_BOOKING, booking.end, member):
            if found.get("status") in CANCELLED_STATUSES or found["id"] == own.external_id:
                continue
            start, end = _span(found)
            if start < booking.end and end > booking.start:
                others.append(Claim(str(found["id"]), _parse_time(str(found["created_at"]))))
        if first_claim_wins(own, others):
            return
        self.cancel(ExternalBookingRef(own.external_id, str(created.get("version"))))
        log_event(logger, "square.booking.lost_race")
        raise BookingConflict("square: another booking took the slot first")

    def _bookings(
        self, start: datetime, end: datetime, member: str | None
    ) -> Iterator[dict[str, Any]]:
        for low, high in _windows(start, end, _LIST_MAX):
            cursor: str | None = None
            while True:
                params = {
                    "location_id": self.location_id,
                    "start_at_min": _rfc3339(low),
                    "start_at_max": _rfc3339(high),
                    "limit": str(self.page_size),
                }
                if member is not None:
                    params["team_member_id"] = member
                if cursor is not None:
                    params["cursor"] = cursor
                answer = self._json("GET", "/v2/bookings", params=params)
                yield from answer.get("bookings", [])
                cursor = answer.get("cursor")
                if not cursor:
                    break

    def _retrieve(self, booking_id: str) -> dict[str, Any]:
        response = self._request("GET", f"/v2/bookings/{booking_id}")
        if response.status_code == 404:
            raise _NotFound(booking_id)
        booking: dict[str, Any] = self._expect_json(response, "read the booking")["booking"]
        return booking

    def _service(self, variation_id: str) -> SquareService:
        if variation_id not in self._services:
            self.services()
        service = self._services.get(variation_id)
        if service is None or service.version is None:
            raise BookingSystemUnavailable(
                "square: the mapped service is not a bookable service variation", retry=False
            )
        return service

    def _customer_id(self, booking: ExternalBooking) -> str | None:
        if booking.customer_phone:
            answer = self._json(
                "POST",
                "/v2/customers/search",
                body={
                    "query": {"filter": {"phone_number": {"exact": booking.customer_phone}}},
                    "limit": 1,
                },
            )
            customers = answer.get("customers") or []
            if customers:
                return str(customers[0]["id"])
        fields = {
            "given_name": booking.customer_given_name,
            "family_name": booking.customer_family_name,
            "phone_number": booking.customer_phone,
        }
        present = {name: value for name, value in fields.items() if value}
        if not present:
            return None
        identity = booking.customer_phone or booking.ringback_id
        answer = self._json(
            "POST",
            "/v2/customers",
            body={"idempotency_key": _key("customer", identity), **present},
        )
        return str(answer["customer"]["id"])

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = self._request(method, path, params=params, body=body)
        return self._expect_json(response, f"{method} {path}")

    def _expect_json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise _failure(response, what)
        try:
            answer = response.json()
        except ValueError as exc:
            raise BookingSystemUnavailable(f"square: answer to '{what}' was not JSON") from exc
        if not isinstance(answer, dict):
            raise BookingSystemUnavailable(f"square: answer to '{what}' was not an object")
        return answer

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {self._token()}",
            "Square-Version": self.square_version,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }
        try:
            response = self._client.request(
                method,
                self.base_url + path,
                params=dict(params or {}),
                json=dict(body) if body is not None else None,
                headers=headers,
                timeout=self._timeout,
            )
        except httpx.TimeoutException as exc:
            raise BookingSystemUnavailable(f"square: {method} timed out") from exc
        except httpx.HTTPError as exc:
            raise BookingSystemUnavailable(
                f"square: {method} failed ({type(exc).__name__})"
            ) from exc
        if response.status_code in (401, 403, 429) or response.status_code >= 500:
            raise _failure(response, f"{method} {path.split('?')[0]}")
        return response


class _NotFound(Exception):
    """Square has no booking with that id."""


def _require_refs(booking: ExternalBooking) -> tuple[str, str]:
    if not booking.provider_ref or not booking.service_ref:
        raise ValueError("square: a booking needs a team member (provider_ref) and a service")
    return booking.provider_ref, booking.service_ref


def _segment(booking: ExternalBooking, member: str, service: SquareService) -> dict[str, Any]:
    minutes = int((booking.end - booking.start).total_seconds() // 60)
    return {
        "team_member_id": member,
        "service_variation_id": service.variation_id,
        "service_variation_version": service.version,
        "duration_minutes": minutes,
    }


def _marker(ringback_id: str) -> str:
    return f"[{RINGBACK_MARKER}{ringback_id}]"


def _seller_note(booking: ExternalBooking) -> str:
    note = f"{booking.summary}. {booking.note}".strip() if booking.note else booking.summary
    return f"{note} {_marker(booking.ringback_id)}"[:4096]


def _ringback_id(booking: Mapping[str, Any]) -> str | None:
    note = str(booking.get("seller_note") or "")
    start = note.rfind(f"[{RINGBACK_MARKER}")
    if start < 0:
        return None
    end = note.find("]", start)
    return note[start + len(RINGBACK_MARKER) + 1 : end] if end > start else None


def _key(kind: str, value: str) -> str:
    """An idempotency key: stable per request, and no patient details on the wire."""
    return f"ringback-{kind}-" + hashlib.sha256(value.encode()).hexdigest()[:40]


def _ref(booking: Mapping[str, Any]) -> ExternalBookingRef:
    version = booking.get("version")
    return ExternalBookingRef(str(booking["id"]), str(version) if version is not None else None)


def _change(booking: Mapping[str, Any], kind: ExternalChangeKind) -> ExternalChange:
    if booking.get("status") in CANCELLED_STATUSES:
        kind = "cancelled"
    start, end = _span(booking) if booking.get("start_at") else (None, None)
    return ExternalChange(str(booking["id"]), _ringback_id(booking), kind, start, end)


def _span(booking: Mapping[str, Any]) -> tuple[datetime, datetime]:
    start = _parse_time(str(booking["start_at"]))
    minutes = sum(
        int(segment.get("duration_minutes") or 0) + int(segment.get("intermission_minutes") or 0)
        for segment in booking.get("appointment_segments") or []
    )
    return start, start + timedelta(minutes=minutes)


def _windows(
    start: datetime, end: datetime, longest: timedelta
) -> Iterator[tuple[datetime, datetime]]:
    low = start
    while True:
        high = min(end, low + longest)
        yield low, high
        if high >= end:
            return
        low = high


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return []
    return [error for error in errors if isinstance(error, dict)]


def _error_field(response: httpx.Response) -> str:
    errors = _errors(response)
    return str(errors[0].get("field", "")) if errors else ""


def _is_slot_taken(response: httpx.Response) -> bool:
    if response.status_code not in (400, 409):
        return False
    for error in _errors(response):
        field = str(error.get("field", ""))
        detail = str(error.get("detail", "")).lower()
        if field.endswith("version") or error.get("code") == "IDEMPOTENCY_KEY_REUSED":
            continue
        if response.status_code == 409 or error.get("code") == "CONFLICT":
            return True
        if field.endswith("start_at") and ("available" in detail or "booked" in detail):
            return True
    return False


def _failure(response: httpx.Response, what: str) -> BookingSystemUnavailable:
    status = response.status_code
    errors = _errors(response)
    code = str(errors[0].get("code", "unknown")) if errors else "unknown"
    field = str(errors[0].get("field", "")) if errors else ""
    retry = status == 429 or status >= 500
    log_event(
        logger, "square.request.failed", logging.WARNING, status=status, code=code, retry=retry
    )
    where = f" on {field}" if field else ""
    return BookingSystemUnavailable(
        f"square: could not {what}: HTTP {status} {code}{where}",
        retry=retry,
        retry_after=_retry_after(response.headers.get("retry-after")),
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("square: times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


__all__: Sequence[str] = (
    "SIGNATURE_HEADER",
    "SquareBookingSystem",
    "SquareLocation",
    "SquareService",
    "SquareTeamMember",
    "parse_booking_webhook",
    "verify_square_signature",
)
