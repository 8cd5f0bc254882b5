"""The outbox: every outbound text is a row first, then a send.

``queue_sms`` writes the row in the caller's transaction (keyed by an idempotency key, so
a retried decision never queues a second text) and enqueues delivery after commit.
``deliver`` claims the row (``pending`` -> ``sending``) in its own transaction before
calling the provider, so two workers can never both send it. The event handler, which
sends its texts itself (:func:`send_inline`), writes them claimed instead, in the
transaction that decided them. A send whose outcome is unknown (timeout, worker killed)
is reconciled against the provider's message list before it is ever sent again.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.db import after_commit, insert_returning, transaction
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.messaging.segments import prefer_gsm7
from ringback.models import Message, Patient
from ringback.patients import service as patients
from ringback.phones import redact
from ringback.ports import OutboundSms, SendFailure, SentSms

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
_INLINE_SENDS = "ringback.outbox.inline_sends"
RECONCILE_AFTER = timedelta(seconds=5)

# Twilio's message statuses in the order they happen; a late callback never moves back.
STATUS_RANK = {
    "pending": 0,
    "sending": 1,
    "accepted": 2,
    "scheduled": 2,
    "queued": 3,
    "sent": 4,
    "delivered": 5,
    "read": 6,
    "undelivered": 6,
    "failed": 6,
    "canceled": 6,
}


def backoff(attempt: int, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with full jitter: 1 s, 2 s, 4 s ... capped at 5 minutes."""
    ceiling = min(2.0 ** max(attempt - 1, 0), 300.0)
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


def _provider_of(deps: Deps, location_id: str) -> str:
    """The network that sends the location's texts (its receipts come back tagged so)."""
    location = deps.locations.get(location_id)
    return location.provider if location is not None else "twilio"


def queue_sms(
    session: Session,
    deps: Deps,
    *,
    location_id: str,
    patient: Patient | None,
    from_number: str,
    body: str,
    kind: str,
    idempotency_key: str,
    conversation_id: int | None = None,
    call_id: int | None = None,
    trigger_at: datetime | None = None,
    send_after: datetime | None = None,
    to_number: str | None = None,
) -> Message:
    """Write an outbound text and have it delivered after commit; returns its row.

    The text goes to ``patient`` (whose consent is checked now and again at delivery), or,
    for staff alerts, to ``to_number`` with no patient. A second call with the same
    ``idempotency_key`` returns the first row and sends nothing. A patient who may not be
    texted gets a ``suppressed`` row (kept for the record).
    """
    now = deps.clock()
    if patient is None and to_number is None:
        raise ValueError("queue_sms needs a patient or a to_number")
    blocked = patients.why_not_textable(patient) if patient is not None else None
    at = send_after if send_after and send_after > now else None
    inline: list[ClaimedSms] | None = session.info.get(_INLINE_SENDS)
    # Sent by this job after commit: claimed in the very transaction that writes it.
    claim = inline is not None and at is None and not blocked
    message = insert_returning(
        session,
        Message,
        {
            "location_id": location_id,
            "conversation_id": conversation_id,
            "patient_id": patient.id if patient is not None else None,
            "call_id": call_id,
            "provider": _provider_of(deps, location_id),
            "direction": "outbound",
            "kind": kind,
            "from_number": from_number,
            "to_number": patient.phone if patient is not None else to_number,
            "body": prefer_gsm7(body),
            "idempotency_key": idempotency_key,
            "status": "suppressed" if blocked else "sending" if claim else "pending",
            "error_detail": blocked,
            "attempts": 1 if claim else 0,
            "created_at": now,
            "trigger_at": trigger_at,
            "send_after": send_after or now,
            "claimed_at": now if claim else None,
        },
        ["idempotency_key"],
    )
    if message is None:
        return session.scalars(
            select(Message).where(Message.idempotency_key == idempotency_key)
        ).one()
    if blocked:
        log_event(log, "sms.suppressed", message_id=message.id, kind=kind, reason=blocked)
        return message
    mid = message.id
    if claim and inline is not None:
        claimed = ClaimedSms(mid, _outbound(message, deps), kind)
        after_commit(session, lambda: inline.append(claimed))
    else:
        after_commit(session, lambda: deps.jobs.deliver_sms(mid, at))
    return message


@dataclass(frozen=True, slots=True)
class ClaimedSms:
    """A text written already claimed (``sending``), for its writer to send after commit."""

    message_id: int
    sms: OutboundSms
    kind: str


def send_inline(session: Session) -> list[ClaimedSms]:
    """Have the texts this session queues for now sent by its caller, not by delivery jobs.

    For a job that queues texts and can send them itself the moment its transaction
    commits (the event handler: a text-back, a reply). Each such text is written claimed
    (``sending``, one attempt), so the claim is part of the transaction that decided to
    send it: no sweep or job can send it too. The returned list fills with them on commit
    (and stays empty on rollback); pass it to :func:`deliver_now`. A text for later is
    still written ``pending`` and scheduled as a delivery job.
    """
    inline: list[ClaimedSms] = []
    session.info[_INLINE_SENDS] = inline
    return inline


def deliver_now(deps: Deps, claimed: list[ClaimedSms]) -> None:
    """Send the texts a committed transaction claimed (see :func:`send_inline`).

    Saves a write, a wait in the queue and a read on the way to the provider. If this
    process dies before a send is settled, the sweep finds the claim unsettled and
    reconciles it with the provider's message list before ever sending it again, as for
    a worker that died mid-send; an unexpected error here schedules that reconcile.
    """
    for text in claimed:
        try:
            _send(deps, text.message_id, text.sms, text.kind)
        except Exception:
            log.exception(
                "sms.inline_send_failed", extra={"fields": {"message_id": text.message_id}}
            )
            deps.jobs.reconcile_sms(text.message_id, deps.clock() + RECONCILE_AFTER)


def _outbound(message: Message, deps: Deps) -> OutboundSms:
    return OutboundSms(
        to=message.to_number,
        from_=message.from_number,
        body=message.body,
        status_callback=deps.sms_status_callback,
    )


def deliver(deps: Deps, message_id: int) -> None:
    """Claim and send one outbox message. Safe to call any number of times."""
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "pending":
            return
        now = deps.clock()
        if message.send_after > now + timedelta(seconds=1):
            at = message.send_after
            after_commit(session, lambda: deps.jobs.deliver_sms(message_id, at))
            return
        patient = session.get(Patient, message.patient_id) if message.patient_id else None
        blocked = patients.why_not_textable(patient) if patient else None
        if blocked:
            message.status = "suppressed"
            message.error_detail = blocked
            log_event(log, "sms.suppressed", message_id=message_id, reason=blocked)
            return
        message.status = "sending"
        message.claimed_at = now
        message.attempts += 1
        sms = _outbound(message, deps)
        kind = message.kind
    _send(deps, message_id, sms, kind)


def _send(deps: Deps, message_id: int, sms: OutboundSms, kind: str) -> None:
    """Send a claimed text and record what the provider said."""
    try:
        sent = deps.sms.send(sms)
    except SendFailure as failure:
        _record_failure(deps, message_id, failure)
        return
    _record_sent(deps, message_id, sent, kind)


def _record_sent(deps: Deps, message_id: int, sent: SentSms, kind: str) -> None:
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None:
            return
        now = deps.clock()
        message.provider_sid = sent.sid
        if STATUS_RANK.get(sent.status, 3) > STATUS_RANK.get(message.status, 0):
            message.status = sent.status
        message.sent_at = message.sent_at or now
        message.status_at = now
        funnel.message_changed(message)
        latency_ms = (
            round((now - message.trigger_at).total_seconds() * 1000) if message.trigger_at else None
        )
        log_event(
            log,
            f"{kind}.sent" if kind == "textback" else "sms.sent",
            message_id=message_id,
            to=redact(message.to_number),
            attempts=message.attempts,
            latency_ms=latency_ms,
        )


def _record_failure(deps: Deps, message_id: int, failure: SendFailure) -> None:
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending":
            return
        now = deps.clock()
        message.error_code = failure.code
        message.error_detail = failure.detail[:300]
        message.status_at = now
        patient = session.get(Patient, message.patient_id) if message.patient_id else None
        fields = {"message_id": message_id, "code": failure.code, "attempts": message.attempts}
        if failure.kind == "ambiguous":
            at = now + RECONCILE_AFTER
            after_commit(session, lambda: deps.jobs.reconcile_sms(message_id, at))
            log_event(log, "sms.send_ambiguous", logging.WARNING, **fields)
        elif failure.kind == "retry" and message.attempts < MAX_ATTEMPTS:
            delay = backoff(message.attempts)
            if failure.retry_after:
                delay = max(delay, timedelta(seconds=failure.retry_after))
            message.status = "pending"
            message.send_after = now + delay
            at = message.send_after
            after_commit(session, lambda: deps.jobs.deliver_sms(message_id, at))
            log_event(log, "sms.retry_scheduled", logging.WARNING, delay_s=delay.seconds, **fields)
        else:
            message.status = "failed"
            if patient is not None and failure.kind == "opted_out":
                patients.opt_out(patient, now, "carrier")
            elif patient is not None and failure.kind == "not_textable":
                patients.mark_not_textable(patient, f"{message.provider}_{failure.code}", now)
            log_event(log, "sms.failed", logging.WARNING, kind=failure.kind, **fields)


def reconcile(deps: Deps, message_id: int) -> None:
    """Settle a send whose outcome is unknown: record it if the provider has it, else resend."""
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id)
        if message is None or message.status != "sending":
            return
        sms = _outbound(message, deps)
        since = message.claimed_at or message.created_at
        kind = message.kind
    try:
        found = deps.sms.find_sent(sms, since)
    except SendFailure as failure:
        with transaction(deps.sessions) as session:
            message = session.get(Message, message_id)
            attempts = message.attempts if message else MAX_ATTEMPTS
        at = deps.clock() + backoff(attempts)
        deps.jobs.reconcile_sms(message_id, at)
        log_event(
            log,
            "sms.reconcile_failed",
            logging.WARNING,
            message_id=message_id,
            detail=failure.detail[:120],
        )
        return
    if found is not None:
        log_event(log, "sms.reconciled_sent", message_id=message_id)
        _record_sent(deps, message_id, found, kind)
        return
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending":
            return
        message.status = "pending"
        message.send_after = deps.clock()
        after_commit(session, lambda: deps.jobs.deliver_sms(message_id, None))
        log_event(log, "sms.reconciled_unsent", message_id=message_id)


def sweep(deps: Deps, *, grace: timedelta = timedelta(seconds=30)) -> dict[str, int]:
    """Re-drive what a dead worker left behind: due texts not sent, sends not settled."""
    now = deps.clock()
    stale_claim = now - grace - timedelta(seconds=deps.send_timeout_seconds)
    with transaction(deps.sessions) as session:
        due = session.scalars(
            select(Message.id).where(Message.status == "pending", Message.send_after <= now - grace)
        ).all()
        stuck = session.scalars(
            select(Message.id).where(Message.status == "sending", Message.claimed_at <= stale_claim)
        ).all()
    for mid in due:
        deps.jobs.deliver_sms(mid)
    for mid in stuck:
        deps.jobs.reconcile_sms(mid)
    return {"due": len(due), "stuck": len(stuck)}


def advance_status(message: Message, status: str, now: datetime) -> bool:
    """Apply a delivery status if it moves the message forward; True when it did."""
    if STATUS_RANK.get(status, -1) <= STATUS_RANK.get(message.status, 0):
        return False
    message.status = status
    message.status_at = now
    funnel.message_changed(message)
    return True
