"""Inbound texts and delivery receipts.

Inbound: record the message, honour STOP/START/HELP, then hand the text to the
conversation. Receipts: move the outbound message's status forward (never back) and
act on carrier errors that mean the patient cannot or will not be texted.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ringback.config import Location
from ringback.conversation import service as conversation_service
from ringback.conversation.threads import find_open, open_conversation, reopen_recent
from ringback.db import insert_ignore
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.messaging import keywords
from ringback.messaging.outbox import advance_status, queue_sms
from ringback.models import Message, Patient
from ringback.outbound_webhooks import service as webhooks
from ringback.patients import service as patients
from ringback.phones import InvalidPhoneNumber, normalize_e164, redact

log = logging.getLogger(__name__)

# Delivery error codes (Twilio 30xxx) that mean this number will not get texts.
UNREACHABLE_CODES = frozenset({30005, 30006})
OPTED_OUT_CODES = frozenset({21610})


class NotReady(Exception):
    """The event refers to something not recorded yet (a receipt before its send): retry."""


def on_inbound_sms(
    session: Session, deps: Deps, location: Location, payload: dict[str, Any], at: datetime
) -> None:
    body = str(payload.get("Body", ""))
    try:
        phone = normalize_e164(str(payload["From"]))
    except InvalidPhoneNumber:
        log_event(log, "sms.inbound_unroutable", location=location.id)
        return
    patient = patients.get_or_create(session, location.id, phone, at)
    conversation = find_open(session, location.id, patient.id)
    message_id = insert_ignore(
        session,
        Message,
        {
            "location_id": location.id,
            "conversation_id": conversation.id if conversation else None,
            "patient_id": patient.id,
            "direction": "inbound",
            "kind": "inbound",
            "from_number": phone,
            "to_number": location.phone_number,
            "body": body,
            "provider": str(payload.get("_provider") or location.provider),
            "provider_sid": payload["MessageSid"],
            "status": "received",
            "created_at": at,
            "trigger_at": at,
            "send_after": at,
        },
        ["provider", "provider_sid"],
    )
    if message_id is None:
        return  # already handled
    word = keywords.from_opt_out_type(payload.get("OptOutType")) or keywords.keyword(body)
    if word == "start" and patient.opted_out_at is None and keywords.is_answer(body):
        # "Yes" re-subscribes only a patient who opted out; anyone else is answering us.
        word = None
    log_event(
        log,
        "sms.received",
        location=location.id,
        caller=redact(phone),
        keyword=word,
        message_id=message_id,
    )
    if word == "stop":
        if patients.opt_out(patient, at, "keyword"):
            log_event(log, "patient.opted_out", location=location.id, patient_id=patient.id)
            webhooks.patient_opted_out(session, deps, patient, "keyword")
            conversation_service.confirm_opt_change(
                session, deps, location, patient, "stop", f"stop:{payload['MessageSid']}", at
            )
        if conversation is not None:
            conversation_service.close(conversation, at, "opted_out")
        return
    if word == "start":
        if patients.opt_in(patient, at):
            log_event(log, "patient.opted_in", location=location.id, patient_id=patient.id)
            conversation_service.confirm_opt_change(
                session, deps, location, patient, "start", f"start:{payload['MessageSid']}", at
            )
        return
    if word == "help":
        queue_sms(
            session,
            deps,
            location_id=location.id,
            patient=patient,
            from_number=location.phone_number,
            body=location.render(location.messages.help),
            kind="keyword",
            idempotency_key=f"help:{payload['MessageSid']}",
            conversation_id=conversation.id if conversation else None,
            trigger_at=at,
        )
        return
    if patient.opted_out:
        # Kept for the record, but no thread is opened or continued: nothing may be sent
        # until the patient texts START.
        log_event(log, "sms.from_opted_out", location=location.id, message_id=message_id)
        return
    reopened = False
    if conversation is None:
        within = timedelta(days=location.reopen_days)
        found = reopen_recent(session, location.id, patient.id, at, within)
        reopened = found is not None
        if found is None:
            found, _ = open_conversation(session, location.id, patient, at, variant=None)
        conversation = found
        session.execute(
            update(Message).where(Message.id == message_id).values(conversation_id=conversation.id)
        )
    webhooks.conversation_replied(session, deps, conversation, at)  # before first_reply_at
    conversation.first_reply_at = conversation.first_reply_at or at
    conversation.last_inbound_at = at
    message = session.get(Message, message_id)
    if message is not None:
        conversation_service.inbound(
            session, deps, location, conversation, patient, message, reopened=reopened
        )


def on_sms_status(session: Session, payload: dict[str, Any], at: datetime) -> None:
    sid = payload["MessageSid"]
    provider = str(payload.get("_provider") or "twilio")
    message = session.scalars(
        select(Message)
        .where(Message.provider == provider, Message.provider_sid == sid)
        .with_for_update()
    ).one_or_none()
    if message is None:
        raise NotReady(f"no message with sid {sid} yet")
    status = payload["MessageStatus"]
    code = int(payload["ErrorCode"]) if payload.get("ErrorCode") else None
    if advance_status(message, status, at):
        if status in ("undelivered", "failed"):
            message.error_code = code
        log_event(log, "sms.status", message_id=message.id, status=status, code=code)
    if code is None or message.patient_id is None:
        return
    patient = session.get(Patient, message.patient_id)
    if patient is None:
        return
    if code in OPTED_OUT_CODES:
        patients.opt_out(patient, at, "carrier")
    elif code in UNREACHABLE_CODES:
        patients.mark_not_textable(patient, f"{provider}_{code}", at)
