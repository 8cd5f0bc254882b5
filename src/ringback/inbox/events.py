"""The durable inbox of provider events: record once, handle idempotently, replay.

A webhook is stored keyed by the provider's id (``CallSid``, ``MessageSid``, plus the
status for receipts) with an insert that ignores duplicates; only a newly stored event
is handed to a job. Handling may run any number of times (retries, replays) and changes
nothing the second time.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from ringback.conversation import inbound
from ringback.db import after_commit, insert_ignore, transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.messaging import outbox
from ringback.missed_calls import service as missed_calls
from ringback.models import ProviderEvent
from ringback.ports import EnqueueFailed

log = logging.getLogger(__name__)

KINDS = ("voice", "dial_result", "call_status", "sms", "sms_status", "api_missed_call")
# An event that failed (or was not ready) this often is left for a person (see ``ringback
# replay``) rather than re-driven by every sweep.
MAX_SWEEP_ATTEMPTS = 20
# An event not handled this long after it was stored has no job: the queue was down when
# it was stored, or the job was lost. The sweep hands it to a job again, then leaves it
# to that job for REDRIVE_LEASE.
REDRIVE_AFTER = timedelta(seconds=5)
REDRIVE_LEASE = timedelta(seconds=10)


def external_id(kind: str, payload: dict[str, Any]) -> str:
    """The provider's identity of an event; repeats of one event share it."""
    if kind in ("voice", "dial_result"):
        return str(payload["CallSid"])
    if kind == "call_status":
        return f"{payload['CallSid']}:{payload['CallStatus']}"
    if kind == "sms":
        return str(payload["MessageSid"])
    if kind == "sms_status":
        return f"{payload['MessageSid']}:{payload['MessageStatus']}"
    if kind == "api_missed_call":  # another phone system's id, unique within its location
        return missed_calls.reported_call_sid(payload["location_id"], payload["event_id"])
    raise ValueError(f"unknown event kind {kind!r}")


def record(
    session: Session,
    deps: Deps,
    *,
    provider: str,
    kind: str,
    location_id: str,
    payload: dict[str, Any],
    received_at: datetime,
) -> int | None:
    """Store the event and enqueue its handling after commit; None if it was a duplicate."""
    event_id = insert_ignore(
        session,
        ProviderEvent,
        {
            "provider": provider,
            "kind": kind,
            "external_id": external_id(kind, payload),
            "location_id": location_id,
            "payload": payload,
            "received_at": received_at,
        },
        ["provider", "kind", "external_id"],
    )
    if event_id is None:
        log_event(log, "webhook.duplicate", kind=kind, location=location_id)
        return None
    after_commit(session, lambda: _enqueue(deps, event_id))
    return event_id


def _enqueue(deps: Deps, event_id: int) -> None:
    try:
        deps.jobs.handle_event(event_id)
    except EnqueueFailed:
        # Stored, but no job: due for the sweep at once, which retries every second until
        # the queue takes it (it is re-driven as soon as a worker can take it).
        with transaction(deps.sessions) as session:
            session.execute(
                update(ProviderEvent)
                .where(ProviderEvent.id == event_id)
                .values(redrive_at=deps.clock())
            )
        raise


def stored_payload(
    session: Session, *, provider: str, kind: str, payload: dict[str, Any]
) -> dict[str, Any] | None:
    """The payload stored first for this event's identity, to compare a repeat with."""
    return session.scalars(
        select(ProviderEvent.payload).where(
            ProviderEvent.provider == provider,
            ProviderEvent.kind == kind,
            ProviderEvent.external_id == external_id(kind, payload),
        )
    ).one_or_none()


def handle(deps: Deps, event_id: int) -> None:
    """Apply one stored event. Raises :class:`inbound.NotReady` to be retried later.

    The texts the event causes (a text-back, a reply) are claimed in its transaction and
    sent by this job once that commits, rather than queued for another worker: the queue
    would add a write, a wait and a read to every text-back.
    """
    with transaction(deps.sessions) as session:
        texts = outbox.send_inline(session)
        _apply(session, deps, event_id)
    outbox.deliver_now(deps, texts)


def _apply(session: Session, deps: Deps, event_id: int) -> None:
    event = session.get(ProviderEvent, event_id, with_for_update=True)
    if event is None or event.handled_at is not None:
        return
    location = deps.locations.get(event.location_id or "")
    if location is None:
        event.attempts += 1
        event.handled_at = deps.clock()
        event.last_error = f"unknown location {event.location_id!r}"
        return
    payload = dict(event.payload)
    # Which network the event came from (twilio, signalwire, api): calls and texts keep it.
    payload["_provider"] = event.provider
    at = event.received_at
    if event.kind == "voice":
        mode = payload.get("_ringback_mode", missed_calls.call_mode(location, at))
        missed_calls.on_voice(session, deps, location, payload, at, mode)
    elif event.kind == "dial_result":
        missed_calls.on_dial_result(session, deps, location, payload, at)
    elif event.kind == "call_status":
        seen = session.scalar(
            select(ProviderEvent.id).where(
                ProviderEvent.provider == event.provider,
                ProviderEvent.kind == "dial_result",
                ProviderEvent.external_id == payload["CallSid"],
            )
        )
        missed_calls.on_call_status(session, deps, location, payload, at, seen is not None)
    elif event.kind == "sms":
        inbound.on_inbound_sms(session, deps, location, payload, at)
    elif event.kind == "sms_status":
        inbound.on_sms_status(session, payload, at)
    elif event.kind == "api_missed_call":
        missed_calls.on_reported_miss(session, deps, location, payload)
    # Counted here, not on the way in, so the event's row is written once: an attempt
    # that fails rolls back with everything else either way.
    event.attempts += 1
    event.handled_at = deps.clock()
    event.last_error = None


def note_failure(deps: Deps, event_id: int, error: str) -> None:
    """Count a failed (or not yet possible) attempt; the sweep gives up after
    :data:`MAX_SWEEP_ATTEMPTS` and the event waits for ``ringback replay``."""
    with transaction(deps.sessions) as session:
        event = session.get(ProviderEvent, event_id, with_for_update=True)
        if event is None or event.handled_at is not None:
            return
        event.attempts += 1
        event.last_error = error[:500]
        if event.attempts == MAX_SWEEP_ATTEMPTS:
            log_event(
                log,
                "event.gave_up",
                logging.WARNING,
                event_id=event_id,
                kind=event.kind,
                attempts=event.attempts,
            )


def take_unhandled(deps: Deps, limit: int = 500) -> list[int]:
    """Events that should have been handled by now and are not, taken for re-driving:
    those whose ``redrive_at`` has come (an enqueue that failed sets it to its time), or,
    with none, stored :data:`REDRIVE_AFTER` ago. Each is then left alone by later sweeps
    for :data:`REDRIVE_LEASE` (see :func:`give_back` when the queue would not take them).
    Rows being handled right now are skipped."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        ids = list(
            session.scalars(
                select(ProviderEvent.id)
                .where(
                    ProviderEvent.handled_at.is_(None),
                    ProviderEvent.attempts < MAX_SWEEP_ATTEMPTS,
                    or_(
                        and_(
                            ProviderEvent.redrive_at.is_(None),
                            ProviderEvent.received_at <= now - REDRIVE_AFTER,
                        ),
                        ProviderEvent.redrive_at <= now,
                    ),
                )
                .order_by(ProviderEvent.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(
                update(ProviderEvent)
                .where(ProviderEvent.id.in_(ids))
                .values(redrive_at=now + REDRIVE_LEASE)
            )
        return ids


def give_back(deps: Deps, event_ids: list[int]) -> None:
    """Events taken for re-driving that no job got: the next sweep takes them again."""
    if event_ids:
        with transaction(deps.sessions) as session:
            session.execute(
                update(ProviderEvent)
                .where(ProviderEvent.id.in_(event_ids))
                .values(redrive_at=deps.clock())
            )


def replay(deps: Deps, event_ids: list[int]) -> int:
    """Mark events unhandled and run them again (idempotent by design)."""
    with transaction(deps.sessions) as session:
        events = session.scalars(select(ProviderEvent).where(ProviderEvent.id.in_(event_ids))).all()
        for event in events:
            event.handled_at = None
            event.attempts = 0
        ids = [e.id for e in events]
    for event_id in ids:
        deps.jobs.handle_event(event_id)
    return len(ids)
