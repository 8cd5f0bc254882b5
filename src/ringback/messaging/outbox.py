"""The outbox: every outbound text is a row first, then a send.

``queue_sms`` writes the row in the caller's transaction (keyed by an idempotency key, so
a retried decision never queues a second text) and enqueues delivery after commit.
``deliver`` claims the row (``pending`` -> ``sending``, with a claim token and a lease:
:mod:`ringback.messaging.claims`) in its own transaction before calling the provider, so
two workers can never both send it. The event handler, which sends its texts itself
(:func:`send_inline`), writes them claimed instead, in the transaction that decided them.
A send whose outcome is unknown (timeout, worker killed: its lease lapsed) is taken over
by the sweep under a new token and reconciled against the provider's message list before
it is ever sent again; every step that writes an outcome checks the token is its own.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from ringback.db import after_commit, insert_returning, transaction
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.messaging import claims
from ringback.messaging.claims import LEASE
from ringback.messaging.segments import prefer_gsm7
from ringback.models import Message, Patient
from ringback.patients import service as patients
from ringback.phones import redact
from ringback.ports import EnqueueFailed, OutboundSms, SendFailure, SentSms

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
_INLINE_SENDS = "ringback.outbox.inline_sends"
RECONCILE_AFTER = timedelta(seconds=5)
# A due text no job has claimed this long after it came due is handed to a job again.
DUE_GRACE = timedelta(seconds=5)
# Messages-list lookups that fail (revoked credentials, an outage) are retried 1, 2, 4 ...
# seconds apart up to this, and after this many in a row the text is marked failed: we
# cannot tell whether it went out, and a person should look.
LOOKUP_BACKOFF_CAP_SECONDS = 300.0
MAX_LOOKUP_FAILURES = 12
SWEEP_BATCH = 200

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


def backoff(
    attempt: int, rng: random.Random | None = None, *, cap_seconds: float = 300.0
) -> timedelta:
    """Exponential backoff with half jitter: 0.5-1 s, 1-2 s, 2-4 s ... capped at ``cap_seconds``."""
    ceiling = min(2.0 ** max(attempt - 1, 0), cap_seconds)
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


def _seconds(delay: timedelta) -> float:
    # Logged with its fraction: ``timedelta.seconds`` would log 0.7 s as 0.
    return round(delay.total_seconds(), 3)


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
    token = claims.new_token() if claim else None
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
            "claim_token": token,
            "lease_until": now + LEASE if claim else None,
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
    if token is not None and inline is not None:
        claimed = ClaimedSms(mid, _outbound(message, deps), kind, token)
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
    claim: str


def send_inline(session: Session) -> list[ClaimedSms]:
    """Have the texts this session queues for now sent by its caller, not by delivery jobs.

    For a job that queues texts and can send them itself the moment its transaction
    commits (the event handler: a text-back, a reply). Each such text is written claimed
    (``sending``, one attempt, a claim token and lease), so the claim is part of the
    transaction that decided to send it: no sweep or job can send it too. The returned
    list fills with them on commit (and stays empty on rollback); pass it to
    :func:`deliver_now`. A text for later is still written ``pending`` and scheduled as a
    delivery job.
    """
    inline: list[ClaimedSms] = []
    session.info[_INLINE_SENDS] = inline
    return inline


def deliver_now(deps: Deps, claimed: list[ClaimedSms]) -> None:
    """Send the texts a committed transaction claimed (see :func:`send_inline`).

    Saves a write, a wait in the queue and a read on the way to the provider. If this
    process dies before a send is settled, its lease lapses and the sweep reconciles the
    claim with the provider's message list before ever sending it again, as for a worker
    that died mid-send; an unexpected error here schedules that reconcile.
    """
    for text in claimed:
        try:
            _send(deps, text.message_id, text.sms, text.kind, text.claim)
        except Exception:
            log.exception(
                "sms.inline_send_failed", extra={"fields": {"message_id": text.message_id}}
            )
            try:
                at = deps.clock() + RECONCILE_AFTER
                deps.jobs.reconcile_sms(text.message_id, text.claim, at)
            except EnqueueFailed:
                pass  # the lease lapses and the sweep takes the claim over


def _outbound(message: Message, deps: Deps) -> OutboundSms:
    return OutboundSms(
        to=message.to_number,
        from_=message.from_number,
        body=message.body,
        status_callback=deps.sms_status_callback,
    )


def _claim(message: Message, now: datetime) -> str:
    """Take ``message`` for one send attempt (the caller holds its row lock)."""
    token = claims.new_token()
    message.status = "sending"
    message.claim_token = token
    message.lease_until = now + LEASE
    message.claimed_at = now
    message.attempts += 1
    return token


def _settle(message: Message) -> None:
    message.claim_token = None
    message.lease_until = None


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
            _settle(message)
            log_event(log, "sms.suppressed", message_id=message_id, reason=blocked)
            return
        token = _claim(message, now)
        sms = _outbound(message, deps)
        kind = message.kind
    _send(deps, message_id, sms, kind, token)


def _send(deps: Deps, message_id: int, sms: OutboundSms, kind: str, claim: str) -> None:
    """Send a claimed text and record what the provider said, keeping the claim meanwhile."""
    with claims.hold(deps, message_id, claim):
        try:
            sent = deps.sms.send(sms)
        except SendFailure as failure:
            _record_failure(deps, message_id, failure, claim)
            return
        _record_sent(deps, message_id, sent, kind, claim)


def _record_sent(deps: Deps, message_id: int, sent: SentSms, kind: str, claim: str) -> None:
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None:
            return
        if message.claim_token != claim:
            # Our lease lapsed while the provider call hung and another worker took the row
            # over. The text went out: if the row knows no send yet, this is it (the taker
            # finds its claim gone and stands down); if it knows another, it went twice.
            if message.provider_sid not in (None, sent.sid):
                log_event(
                    log,
                    "sms.sent_twice",
                    logging.ERROR,
                    message_id=message_id,
                    recorded_sid=message.provider_sid,
                    other_sid=sent.sid,
                )
                return
            log_event(log, "sms.sent_after_takeover", logging.WARNING, message_id=message_id)
        now = deps.clock()
        message.provider_sid = sent.sid
        if STATUS_RANK.get(sent.status, 3) > STATUS_RANK.get(message.status, 0):
            message.status = sent.status
        _settle(message)
        message.lookup_failures = 0
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


def _record_failure(deps: Deps, message_id: int, failure: SendFailure, claim: str) -> None:
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending" or message.claim_token != claim:
            return
        now = deps.clock()
        message.error_code = failure.code
        message.error_detail = failure.detail[:300]
        message.status_at = now
        patient = session.get(Patient, message.patient_id) if message.patient_id else None
        fields = {"message_id": message_id, "code": failure.code, "attempts": message.attempts}
        if failure.kind == "ambiguous":
            # Still ours: our own reconcile comes first; the sweep only if that job is lost.
            at = now + RECONCILE_AFTER
            message.lease_until = at + LEASE
            after_commit(session, lambda: deps.jobs.reconcile_sms(message_id, claim, at))
            log_event(log, "sms.send_ambiguous", logging.WARNING, **fields)
        elif failure.kind == "retry" and message.attempts < MAX_ATTEMPTS:
            delay = backoff(message.attempts)
            if failure.retry_after:
                delay = max(delay, timedelta(seconds=failure.retry_after))
            message.status = "pending"
            _settle(message)
            message.send_after = now + delay
            at = message.send_after
            after_commit(session, lambda: deps.jobs.deliver_sms(message_id, at))
            log_event(
                log, "sms.retry_scheduled", logging.WARNING, delay_s=_seconds(delay), **fields
            )
        else:
            message.status = "failed"
            _settle(message)
            if patient is not None and failure.kind == "opted_out":
                patients.opt_out(patient, now, "carrier")
            elif patient is not None and failure.kind == "not_textable":
                patients.mark_not_textable(patient, f"{message.provider}_{failure.code}", now)
            log_event(log, "sms.failed", logging.WARNING, kind=failure.kind, **fields)


def reconcile(deps: Deps, message_id: int, claim: str) -> None:
    """Settle a send whose outcome is unknown, under ``claim``: record it if the provider
    has it, else send it again. Does nothing once the row is no longer under ``claim``
    (settled, or taken over by a newer claim), so any number of copies of this job, from
    any number of sweeps, act at most once."""
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending" or message.claim_token != claim:
            return
        message.lease_until = deps.clock() + LEASE  # ours while we ask
        sms = _outbound(message, deps)
        since = message.claimed_at or message.created_at
        kind = message.kind
    with claims.hold(deps, message_id, claim):
        try:
            found = deps.sms.find_sent(sms, since)
        except SendFailure as failure:
            _lookup_failed(deps, message_id, claim, failure)
            return
        if found is not None:
            log_event(log, "sms.reconciled_sent", message_id=message_id)
            _record_sent(deps, message_id, found, kind, claim)
            return
        resend = _claim_for_resend(deps, message_id, claim)
    if resend is not None:
        token, sms = resend
        _send(deps, message_id, sms, kind, token)


def _lookup_failed(deps: Deps, message_id: int, claim: str, failure: SendFailure) -> None:
    """Count a failed Messages-list lookup: retry it later (growing, capped), or give up."""
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending" or message.claim_token != claim:
            return
        now = deps.clock()
        message.lookup_failures += 1
        failures = message.lookup_failures
        detail = failure.detail[:120]
        if failures >= MAX_LOOKUP_FAILURES:
            # Whether it went out is unknown and stays so: a person must look (staff see
            # it as Failed, with why), rather than the lookup running forever.
            message.status = "failed"
            message.error_code = failure.code
            message.error_detail = (
                f"not confirmed: the message list failed {failures} times ({detail})"
            )[:300]
            message.status_at = now
            _settle(message)
            funnel.message_changed(message)
            log_event(
                log,
                "sms.unconfirmed",
                logging.ERROR,
                message_id=message_id,
                lookup_failures=failures,
                detail=detail,
            )
            return
        delay = backoff(failures, cap_seconds=LOOKUP_BACKOFF_CAP_SECONDS)
        at = now + delay
        # The claim stays ours through the wait: no sweep starts a second chain of lookups.
        message.lease_until = at + LEASE
        after_commit(session, lambda: deps.jobs.reconcile_sms(message_id, claim, at))
        log_event(
            log,
            "sms.reconcile_failed",
            logging.WARNING,
            message_id=message_id,
            lookup_failures=failures,
            delay_s=_seconds(delay),
            detail=detail,
        )


def _claim_for_resend(deps: Deps, message_id: int, claim: str) -> tuple[str, OutboundSms] | None:
    """The provider has no such send: take the row for a new attempt, if still ours."""
    with transaction(deps.sessions) as session:
        message = session.get(Message, message_id, with_for_update=True)
        if message is None or message.status != "sending" or message.claim_token != claim:
            return None
        now = deps.clock()
        message.lookup_failures = 0
        patient = session.get(Patient, message.patient_id) if message.patient_id else None
        blocked = patients.why_not_textable(patient) if patient else None
        if blocked or message.attempts >= MAX_ATTEMPTS:
            message.status = "suppressed" if blocked else "failed"
            message.error_detail = blocked or f"not sent after {message.attempts} attempts"
            message.status_at = now
            _settle(message)
            log_event(log, f"sms.{message.status}", message_id=message_id, reason=blocked)
            return None
        token = _claim(message, now)
        log_event(log, "sms.reconciled_unsent", message_id=message_id, attempts=message.attempts)
        return token, _outbound(message, deps)


def sweep(deps: Deps) -> dict[str, int]:
    """Re-drive what a lost job or a dead worker left behind, one claim per row.

    Due texts no job took within :data:`DUE_GRACE` are handed to a delivery job (and not
    again while that job's lease runs). Sends whose claim's lease lapsed are taken over
    under a new token and handed to a reconcile job. Rows another sweep is taking right
    now are skipped (``FOR UPDATE SKIP LOCKED``; SQLite has one writer at a time anyway),
    and a taken row cannot be taken again until its new lease lapses: two sweeps never
    hand out the same row.
    """
    now = deps.clock()
    lease_end = now + LEASE
    with transaction(deps.sessions) as session:
        due = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.status == "pending",
                    Message.send_after <= now - DUE_GRACE,
                    or_(Message.lease_until.is_(None), Message.lease_until <= now),
                )
                .order_by(Message.id)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if due:
            session.execute(
                update(Message).where(Message.id.in_(due)).values(lease_until=lease_end)
            )
        lapsed = list(
            session.scalars(
                select(Message.id)
                .where(
                    Message.status == "sending",
                    or_(
                        Message.lease_until <= now,
                        and_(
                            Message.lease_until.is_(None),
                            or_(Message.claimed_at.is_(None), Message.claimed_at <= now - LEASE),
                        ),
                    ),
                )
                .order_by(Message.id)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        stuck: dict[int, str] = {}
        for message_id in lapsed:
            token = stuck[message_id] = claims.new_token()
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(claim_token=token, lease_until=lease_end)
            )
    handed: list[int] = []
    try:
        for message_id in due:
            deps.jobs.deliver_sms(message_id)
            handed.append(message_id)
        for message_id, token in stuck.items():
            deps.jobs.reconcile_sms(message_id, token)
            handed.append(message_id)
    except EnqueueFailed:
        # The queue is down: give the rows back at once, so the next sweep tries again.
        taken = set(handed)
        left = [mid for mid in (*due, *stuck) if mid not in taken]
        with transaction(deps.sessions) as session:
            session.execute(update(Message).where(Message.id.in_(left)).values(lease_until=now))
        log_event(log, "sweep.queue_unavailable", logging.WARNING, texts_left=len(left))
        return {"due": len(due), "stuck": len(stuck), "unqueued": len(left)}
    return {"due": len(due), "stuck": len(stuck)}


def next_lapse(deps: Deps) -> datetime | None:
    """When the soonest live claim's lease lapses (the sweep should look again then)."""
    with transaction(deps.sessions) as session:
        return session.scalar(
            select(func.min(Message.lease_until)).where(
                Message.status == "sending", Message.lease_until > deps.clock()
            )
        )


def advance_status(message: Message, status: str, now: datetime) -> bool:
    """Apply a delivery status if it moves the message forward; True when it did."""
    if STATUS_RANK.get(status, -1) <= STATUS_RANK.get(message.status, 0):
        return False
    message.status = status
    message.status_at = now
    funnel.message_changed(message)
    return True
