"""Outbound webhooks: tell the clinic's own systems (a CRM, a sheet, Zapier) what happened.

The outbox pattern, as for texts. :func:`emit` runs inside the transaction that decided
the event happened (a miss detected, a first reply, a handoff) and writes one
:class:`~ringback.models.WebhookDelivery` per endpoint that wants it, keyed by the event's
id so running the same code again writes nothing new; the deliveries are enqueued after
commit. If the transaction rolls back, nothing is sent; if a worker dies, the sweep
re-drives what is due. A receiver that is down therefore loses nothing.

Each attempt is a JSON POST signed with the endpoint's secret (see :func:`sign`); a 2xx
answer delivers it, anything else (an error status, a refused connection, no answer
within :data:`TIMEOUT_SECONDS`) is retried with exponential backoff and jitter until
:data:`RETRY_FOR` after the event, and then the delivery is ``failed`` (a person can
replay it). An owner can pause an endpoint: its deliveries are still written and wait,
unsent and not counted as failures, until it is resumed. Every attempt's status code,
the first kilobyte of the response and the error are kept on the row for the staff page
and ``ringback webhooks deliveries``.

Deliveries never hold up a text-back: the queue job only hands the delivery to a few
sender threads of this process (:class:`_Senders`), so a receiver that hangs occupies one
of those, never a queue worker a text or a reply is waiting for.

Payloads carry ids, the location, times and the patient's phone number (the clinic's CRM
matches patients by it), never what anyone wrote and no health details: a receiver that
needs the conversation asks the JSON API for it with a token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import queue
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ringback.db import after_commit, insert_ignore, transaction
from ringback.deps import Deps
from ringback.integrations.http_post import IpAddress, addresses_of, post_json
from ringback.logs import log_event
from ringback.models import (
    Appointment,
    Call,
    Conversation,
    Patient,
    WebhookDelivery,
    WebhookEndpoint,
)
from ringback.ports import JobScheduler

log = logging.getLogger(__name__)

EVENTS = (
    "missed_call.detected",
    "conversation.replied",
    "conversation.qualified",
    "conversation.handed_off",
    "appointment.booked",
    "appointment.cancelled",
    "patient.opted_out",
)
SIGNATURE_HEADER = "Ringback-Signature"
EVENT_HEADER = "Ringback-Event"
DELIVERY_HEADER = "Ringback-Delivery"
TIMEOUT_SECONDS = 5.0
RETRY_FOR = timedelta(hours=24)
FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
# An attempt in progress pushes ``next_attempt_at`` this far ahead, so the sweep and a
# second job leave it alone; longer than any one attempt can take.
LEASE = timedelta(seconds=60)
# A queued job may fire a moment before its time on the domain clock; still due.
EARLY = timedelta(seconds=2)
MAX_RESPONSE_BYTES = 1024
MAX_URL = 2000
SENDER_THREADS = 8


class WebhookError(Exception):
    """A management request that cannot be done; ``field`` names what was wrong and
    ``status`` is the HTTP status it means (400 bad input, 404 not found, 409 wrong state)."""

    def __init__(self, field: str, problem: str, *, status: int = 400) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        self.status = status


# --- signing -------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Ringback-Signature`` header: ``t=<unix seconds>,v1=<hex HMAC-SHA256>``.

    The HMAC's key is the endpoint's secret (UTF-8) and its message is the timestamp, a
    full stop, and the request body exactly as sent: ``f"{t}.".encode() + body``.
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


# --- emitting (inside the producer's transaction) --------------------------------------------


def emit(
    session: Session,
    deps: Deps,
    event: str,
    location_id: str,
    data: dict[str, Any],
    event_id: str,
) -> int:
    """Write a delivery of ``event`` for every active endpoint that wants it; return how many
    are new. ``event_id`` names this occurrence: emitting it again adds nothing."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    endpoints = session.scalars(
        select(WebhookEndpoint).where(
            WebhookEndpoint.active.is_(True),
            or_(WebhookEndpoint.location_id.is_(None), WebhookEndpoint.location_id == location_id),
        )
    ).all()
    wanted = [e for e in endpoints if event in (e.events or [])]
    if not wanted:
        return 0
    now = deps.clock()
    payload = {
        "id": event_id,
        "type": event,
        "created_at": now.isoformat(),
        "location_id": location_id,
        "data": data,
    }
    new_ids: list[int] = []
    for endpoint in wanted:
        delivery_id = insert_ignore(
            session,
            WebhookDelivery,
            {
                "endpoint_id": endpoint.id,
                "event": event,
                "event_id": event_id,
                "payload": payload,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            },
            ["endpoint_id", "event_id"],
        )
        if delivery_id is not None:
            new_ids.append(delivery_id)
    if new_ids:
        jobs = deps.jobs
        after_commit(session, lambda: _enqueue(jobs, new_ids))
        log_event(log, "outbound_webhook.emitted", event=event, deliveries=len(new_ids))
    return len(new_ids)


def _enqueue(jobs: JobScheduler, delivery_ids: Iterable[int]) -> None:
    for delivery_id in delivery_ids:
        jobs.deliver_webhook(delivery_id)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _patient(patient: Patient | None) -> dict[str, Any] | None:
    # The full E.164 number: it is how the clinic's own systems find the patient.
    return None if patient is None else {"id": patient.id, "phone": patient.phone}


def _conversation(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "status": conversation.status,
        "opened_at": _iso(conversation.opened_at),
    }


def _conversation_event(
    session: Session,
    deps: Deps,
    event: str,
    conversation: Conversation,
    event_id: str,
    **extra: Any,
) -> None:
    patient = session.get(Patient, conversation.patient_id)
    data = {"conversation": _conversation(conversation), "patient": _patient(patient), **extra}
    emit(session, deps, event, conversation.location_id, data, event_id)


def call_missed(session: Session, deps: Deps, call: Call) -> None:
    """``missed_call.detected``, once the miss has been screened (so it says if we texted)."""
    patient = session.get(Patient, call.patient_id) if call.patient_id else None
    data = {
        "call": {
            "id": call.id,
            "provider": call.provider,
            "reason": call.miss_reason,
            "after_hours": call.after_hours,
            "missed_at": _iso(call.missed_at),
            "screening": call.screening,
        },
        "patient": _patient(patient),
        "conversation_id": call.conversation_id,
        "texted_back": call.screening == "texted",
    }
    emit(
        session,
        deps,
        "missed_call.detected",
        call.location_id,
        data,
        f"missed_call.detected:call:{call.id}",
    )


def conversation_replied(
    session: Session, deps: Deps, conversation: Conversation, at: datetime
) -> None:
    """``conversation.replied`` for the patient's first text in a conversation; call it before
    ``first_reply_at`` is set (afterwards it is not the first)."""
    if conversation.first_reply_at is not None:
        return
    _conversation_event(
        session,
        deps,
        "conversation.replied",
        conversation,
        f"conversation.replied:conversation:{conversation.id}",
        replied_at=_iso(at),
    )


def conversation_qualified(
    session: Session, deps: Deps, conversation: Conversation, decision_key: str
) -> None:
    """``conversation.qualified``: the bot has what staff need (what it is, is in the API)."""
    _conversation_event(
        session,
        deps,
        "conversation.qualified",
        conversation,
        f"conversation.qualified:{decision_key}",
        qualified_at=_iso(conversation.qualified_at),
    )


def conversation_handed_off(
    session: Session, deps: Deps, conversation: Conversation, *, urgent: bool, decision_key: str
) -> None:
    """``conversation.handed_off``: staff should take the thread (``urgent``: right now)."""
    _conversation_event(
        session,
        deps,
        "conversation.handed_off",
        conversation,
        f"conversation.handed_off:{decision_key}",
        urgent=urgent,
        handed_off_at=_iso(deps.clock()),
    )


def _appointment(deps: Deps, appointment: Appointment | None) -> dict[str, Any] | None:
    if appointment is None:
        return None
    shown: dict[str, Any] = {
        "id": appointment.id,
        "starts_at": _iso(appointment.starts_at),
        "ends_at": _iso(appointment.ends_at),
        "status": appointment.status,
        "source": appointment.source,
    }
    # The treatment, and the provider who gives it (often it says which), are health
    # details: only where the location allows them in what it sends out.
    location = deps.locations.get(appointment.location_id)
    if location is not None and location.health_details_in_texts:
        shown["service"] = appointment.service
        shown["provider"] = appointment.provider_name
    return shown


def conversation_closed(session: Session, deps: Deps, conversation: Conversation) -> None:
    """``appointment.booked`` when the conversation was closed as booked (by the bot, the
    booking page or staff); other closes send nothing."""
    if conversation.status != "booked":
        return
    appointment = session.scalars(
        select(Appointment)
        .where(Appointment.conversation_id == conversation.id, Appointment.status == "booked")
        .order_by(Appointment.id.desc())
        .limit(1)
    ).first()
    _conversation_event(
        session,
        deps,
        "appointment.booked",
        conversation,
        f"appointment.booked:conversation:{conversation.id}",
        booked_by=conversation.booked_by,
        value_cents=conversation.booked_value_cents,
        appointment=_appointment(deps, appointment),
    )


def appointment_booked(session: Session, deps: Deps, appointment: Appointment) -> None:
    """``appointment.booked`` for a booking that does not close a conversation as booked (a
    reschedule: the new appointment; the old one gets ``appointment.cancelled``)."""
    patient = session.get(Patient, appointment.patient_id)
    data = {
        "appointment": _appointment(deps, appointment),
        "patient": _patient(patient),
        "conversation_id": appointment.conversation_id,
        "rescheduled_from": appointment.rescheduled_from_id,
    }
    emit(
        session,
        deps,
        "appointment.booked",
        appointment.location_id,
        data,
        f"appointment.booked:appointment:{appointment.id}",
    )


def appointment_cancelled(session: Session, deps: Deps, appointment: Appointment) -> None:
    """``appointment.cancelled``: for whatever sets an appointment's status to cancelled."""
    patient = session.get(Patient, appointment.patient_id)
    data = {
        "appointment": _appointment(deps, appointment),
        "patient": _patient(patient),
        "conversation_id": appointment.conversation_id,
    }
    emit(
        session,
        deps,
        "appointment.cancelled",
        appointment.location_id,
        data,
        f"appointment.cancelled:appointment:{appointment.id}",
    )


def patient_opted_out(session: Session, deps: Deps, patient: Patient, source: str) -> None:
    """``patient.opted_out``: the patient asked not to be texted (STOP, in words, or via the
    carrier). Call it when the opt-out was recorded just now."""
    at = patient.opted_out_at or deps.clock()
    data = {"patient": _patient(patient), "source": source, "opted_out_at": _iso(at)}
    emit(
        session,
        deps,
        "patient.opted_out",
        patient.location_id,
        data,
        f"patient.opted_out:patient:{patient.id}:{int(at.timestamp())}",
    )


# --- delivering --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Attempt:
    delivery_id: int
    number: int
    endpoint_id: int
    url: str
    secret: str
    event: str
    body: bytes


def dispatch(deps: Deps, delivery_id: int) -> None:
    """The queue job: hand the delivery to this process's sender threads and return."""
    _SENDERS.submit(deps, delivery_id)


def _claim(deps: Deps, delivery_id: int) -> _Attempt | None:
    now = deps.clock()
    with transaction(deps.sessions) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if (
            delivery is None
            or delivery.status != "pending"
            or delivery.next_attempt_at is None
            or delivery.next_attempt_at > now + EARLY
        ):
            return None  # settled, not due yet, or another attempt holds it
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.active:
            delivery.status = "failed"
            delivery.next_attempt_at = None
            delivery.last_error = "endpoint removed"
            return None
        if endpoint.paused_at is not None:
            # Held, not failed: resume_endpoint makes it due again.
            delivery.next_attempt_at = None
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + LEASE
        body = json.dumps(delivery.payload, separators=(",", ":")).encode()
        return _Attempt(
            delivery.id,
            delivery.attempts,
            endpoint.id,
            endpoint.url,
            endpoint.secret,
            delivery.event,
            body,
        )


def _post(
    attempt: _Attempt, connect_to: IpAddress | None = None
) -> tuple[int | None, str | None, str | None]:
    """POST the attempt (to ``connect_to`` when given); return (status code, first KB of
    the response, error)."""
    # Wall time, not the domain clock: the receiver checks it against its own clock.
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ringback-Webhooks/1",
        SIGNATURE_HEADER: sign(attempt.secret, timestamp, attempt.body),
        EVENT_HEADER: attempt.event,
        DELIVERY_HEADER: str(attempt.delivery_id),
    }
    return post_json(
        attempt.url,
        attempt.body,
        headers,
        TIMEOUT_SECONDS,
        MAX_RESPONSE_BYTES,
        connect_to=connect_to,
    )


def retry_delay(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure: 30 s doubling to at most an hour, ±25 %."""
    base: timedelta = min(FIRST_RETRY * 2 ** min(attempts - 1, 20), LONGEST_RETRY)
    return base * random.uniform(0.75, 1.25)


def deliver(deps: Deps, delivery_id: int) -> str | None:
    """One attempt at a delivery, if it is due: claim, POST, record. Returns the outcome
    (``delivered``, ``retrying``, ``failed``) or None when there was nothing to do."""
    attempt = _claim(deps, delivery_id)
    if attempt is None:
        return None
    # Checked again now: the name may have been pointed at a private address since. The
    # POST then connects to the address checked, not to a second lookup's answer.
    pinned: IpAddress | None = None
    if not deps.allow_private_webhooks:
        where = destination(attempt.url)
        if where.refused is not None:
            return _refuse(deps, attempt, where.refused)
        pinned = where.address
    status_code, response_text, error = _post(attempt, pinned)
    ok = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not ok:
        error = f"HTTP {status_code}"
    now = deps.clock()
    with transaction(deps.sessions) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None or delivery.status != "pending" or delivery.attempts != attempt.number:
            return None  # replayed meanwhile: the newer attempt records its own outcome
        delivery.last_status_code = status_code
        delivery.last_response = response_text
        delivery.last_error = None if ok else error
        fields: dict[str, Any] = {
            "delivery_id": delivery_id,
            "endpoint_id": attempt.endpoint_id,
            "event": attempt.event,
            "attempt": attempt.number,
            "status_code": status_code,
        }
        if ok:
            delivery.status = "delivered"
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            log_event(log, "outbound_webhook.delivered", **fields)
            return "delivered"
        deadline = delivery.created_at + RETRY_FOR
        if now >= deadline:
            delivery.status = "failed"
            delivery.next_attempt_at = None
            log_event(log, "outbound_webhook.failed", logging.WARNING, error=error, **fields)
            return "failed"
        next_at = min(now + retry_delay(attempt.number), deadline)
        delivery.next_attempt_at = next_at
        jobs = deps.jobs
        after_commit(session, lambda: jobs.deliver_webhook(delivery_id, next_at))
        log_event(
            log,
            "outbound_webhook.retrying",
            logging.WARNING,
            error=error,
            next_attempt_at=next_at.isoformat(),
            **fields,
        )
        return "retrying"


def _refuse(deps: Deps, attempt: _Attempt, reason: str) -> str | None:
    """Record a delivery not sent because its URL leads to a private address: ``failed``
    at once (retrying would not change where it points), replayable once that is fixed."""
    with transaction(deps.sessions) as session:
        delivery = session.get(WebhookDelivery, attempt.delivery_id, with_for_update=True)
        if delivery is None or delivery.status != "pending" or delivery.attempts != attempt.number:
            return None
        delivery.status = "failed"
        delivery.next_attempt_at = None
        delivery.last_status_code = None
        delivery.last_response = None
        delivery.last_error = f"not sent: {reason}"[:300]
    log_event(
        log,
        "outbound_webhook.refused",
        logging.WARNING,
        delivery_id=attempt.delivery_id,
        endpoint_id=attempt.endpoint_id,
        event=attempt.event,
    )
    return "failed"


class _Senders:
    """A few daemon threads per process that make the HTTP calls.

    Work waiting here is in memory only, and that is enough: a delivery stays due in the
    database until an attempt claims it, so one lost with the process is re-driven by the
    sweep. The same delivery is queued at most once at a time.
    """

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._queue: queue.SimpleQueue[tuple[Deps, int]] = queue.SimpleQueue()
        self._waiting: set[tuple[int, int]] = set()
        self._lock = threading.Lock()
        self._started = False

    def submit(self, deps: Deps, delivery_id: int) -> None:
        key = (id(deps), delivery_id)
        with self._lock:
            if key in self._waiting:
                return
            self._waiting.add(key)
            if not self._started:
                for n in range(self._threads):
                    threading.Thread(
                        target=self._run, name=f"webhook-sender-{n}", daemon=True
                    ).start()
                self._started = True
        self._queue.put((deps, delivery_id))

    def _run(self) -> None:
        while True:
            deps, delivery_id = self._queue.get()
            with self._lock:
                self._waiting.discard((id(deps), delivery_id))
            try:
                deliver(deps, delivery_id)
            except Exception:
                # A bug or the database away: the delivery stays due and the sweep retries.
                log.exception(
                    "outbound_webhook.crashed", extra={"fields": {"delivery_id": delivery_id}}
                )


_SENDERS = _Senders(SENDER_THREADS)


def due(deps: Deps, limit: int = 500) -> list[int]:
    """Pending deliveries whose attempt is due (including ones whose attempt died)."""
    with transaction(deps.sessions) as session:
        return list(
            session.scalars(
                select(WebhookDelivery.id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= deps.clock(),
                )
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            )
        )


def sweep(deps: Deps) -> dict[str, int]:
    """Re-drive due deliveries, for :func:`ringback.runtime.run_sweep`.

    Reports ``{"webhooks": n}`` only when there were some, so the sweep's usual answer
    stays the same for deployments without webhooks.
    """
    ids = due(deps)
    for delivery_id in ids:
        deps.jobs.deliver_webhook(delivery_id)
    return {"webhooks": len(ids)} if ids else {}


# --- where deliveries may go -------------------------------------------------------------------

ALLOW_PRIVATE = "RINGBACK_ALLOW_PRIVATE_WEBHOOKS"


def _kind_of(address: IpAddress) -> str | None:
    """What makes ``address`` no place for a webhook (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kinds = (
        ("loopback", address.is_loopback),
        ("unspecified", address.is_unspecified),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("non-public", not address.is_global),
    )
    return next((kind for kind, matches in kinds if matches), None)


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a URL's host leads now: ``refused`` says why it must not be posted to, else
    ``address`` is the public address to connect to (None: the host resolves to nothing)."""

    refused: str | None
    address: IpAddress | None


def destination(url: str, resolve: Callable[[str], list[IpAddress]] = addresses_of) -> Destination:
    """Look ``url``'s host up: refused when it is, or resolves to, a loopback, private,
    link-local, unspecified or multicast address (this server, or the network behind it,
    which a webhook must not be a way into). A host that resolves to nothing is not refused
    (the POST then fails and is retried like any other)."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = resolve(host)
    except OSError:
        return Destination(None, None)
    for address in addresses:
        kind = _kind_of(address)
        if kind is not None:
            named = host if host == str(address) else f"{host} resolves to {address}, which"
            article = "an" if kind[0] in "aeiou" else "a"
            return Destination(
                f"{named} is {article} {kind} address; webhooks go to the clinic's systems on "
                f"the internet (an operator can set {ALLOW_PRIVATE}=1 to allow private addresses)",
                None,
            )
    return Destination(None, addresses[0] if addresses else None)


def private_destination(url: str) -> str | None:
    """Why ``url`` must not be posted to (see :func:`destination`), or None."""
    return destination(url).refused


# --- management (CLI and staff page) ---------------------------------------------------------


def _check_url(url: str, *, allow_private: bool) -> str:
    value = url.strip()
    try:
        parsed = urlsplit(value)
        host = parsed.hostname
    except ValueError as exc:
        raise WebhookError("url", f"{value!r} is not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not host or any(c.isspace() for c in value):
        raise WebhookError("url", f"expected an absolute http:// or https:// URL, got {value!r}")
    if len(value) > MAX_URL:
        raise WebhookError("url", f"at most {MAX_URL} characters (got {len(value)})")
    refused = None if allow_private else private_destination(value)
    if refused is not None:
        raise WebhookError("url", refused)
    return value


def _check_events(events: Iterable[str]) -> list[str]:
    asked = [e.strip() for e in events if e.strip()]
    if not asked:
        raise WebhookError("event", f"name at least one of: all, {', '.join(EVENTS)}")
    if "all" in asked:
        return list(EVENTS)
    unknown = [e for e in asked if e not in EVENTS]
    if unknown:
        raise WebhookError(
            "event", f"unknown event {unknown[0]!r}; expected all or one of {', '.join(EVENTS)}"
        )
    return [e for e in EVENTS if e in asked]


def create_endpoint(
    session: Session,
    *,
    url: str,
    events: Iterable[str],
    location_id: str | None,
    known_locations: set[str],
    now: datetime,
    allow_private: bool = False,
) -> WebhookEndpoint:
    """Register an endpoint; its ``secret`` is shown once to whoever created it. A URL at a
    private address is refused unless ``allow_private`` (RINGBACK_ALLOW_PRIVATE_WEBHOOKS)."""
    checked_url = _check_url(url, allow_private=allow_private)
    checked_events = _check_events(events)
    if location_id is not None and location_id not in known_locations:
        known = ", ".join(sorted(known_locations))
        raise WebhookError("location", f"no location {location_id!r} (known: {known})")
    endpoint = WebhookEndpoint(
        location_id=location_id,
        url=checked_url,
        events=checked_events,
        secret=new_secret(),
        active=True,
        created_at=now,
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def endpoints(session: Session, *, include_removed: bool = False) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if not include_removed:
        query = query.where(WebhookEndpoint.active.is_(True))
    return list(session.scalars(query))


def remove_endpoint(session: Session, endpoint_id: int) -> bool:
    """Stop sending to an endpoint. Its delivery log stays; pending deliveries fail."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or not endpoint.active:
        return False
    endpoint.active = False
    return True


def _endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None or not endpoint.active:
        raise WebhookError("endpoint", f"no active endpoint {endpoint_id}", status=404)
    return endpoint


def pause_endpoint(session: Session, endpoint_id: int, now: datetime) -> WebhookEndpoint:
    """Hold deliveries to an endpoint (its receiver is down for maintenance, say). Events
    are still recorded for it and are sent when it is resumed."""
    endpoint = _endpoint(session, endpoint_id)
    if endpoint.paused_at is not None:
        raise WebhookError("endpoint", f"endpoint {endpoint_id} is already paused", status=409)
    endpoint.paused_at = now
    return endpoint


def resume_endpoint(session: Session, deps: Deps, endpoint_id: int) -> int:
    """Send to the endpoint again; what waited while it was paused goes now. Returns how
    many held deliveries were made due."""
    endpoint = _endpoint(session, endpoint_id)
    if endpoint.paused_at is None:
        raise WebhookError("endpoint", f"endpoint {endpoint_id} is not paused", status=409)
    endpoint.paused_at = None
    now = deps.clock()
    held = list(
        session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status == "pending",
                or_(
                    WebhookDelivery.next_attempt_at.is_(None),
                    WebhookDelivery.next_attempt_at <= now,
                ),
            )
        )
    )
    for delivery in held:
        delivery.next_attempt_at = now
    ids = [delivery.id for delivery in held]
    if ids:
        jobs = deps.jobs
        after_commit(session, lambda: _enqueue(jobs, ids))
    log_event(log, "outbound_webhook.resumed", endpoint_id=endpoint_id, held=len(ids))
    return len(ids)


def rotate_secret(session: Session, endpoint_id: int) -> str:
    """A new signing secret for the endpoint, returned to be shown once; every attempt from
    now on is signed with it (the old one stops at once)."""
    endpoint = _endpoint(session, endpoint_id)
    endpoint.secret = new_secret()
    return endpoint.secret


def deliveries(
    session: Session, *, failed_only: bool = False, limit: int = 50
) -> list[WebhookDelivery]:
    """The newest deliveries first (``failed_only``: those that gave up)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if failed_only:
        query = query.where(WebhookDelivery.status == "failed")
    return list(session.scalars(query))


def replay(deps: Deps, delivery_id: int) -> None:
    """Send a delivery again now, with the same id and payload (receivers deduplicate on
    ``id``). Within a day of the event failures are retried as usual; after that, a failed
    replay is ``failed`` again and can be replayed again."""
    with transaction(deps.sessions) as session:
        delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
        if delivery is None:
            raise WebhookError("delivery", f"no delivery {delivery_id}", status=404)
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.active:
            raise WebhookError(
                "delivery", f"delivery {delivery_id}: its endpoint was removed", status=409
            )
        delivery.status = "pending"
        delivery.next_attempt_at = deps.clock()
        jobs = deps.jobs
        after_commit(session, lambda: jobs.deliver_webhook(delivery_id))
    log_event(log, "outbound_webhook.replayed", delivery_id=delivery_id)
