"""Texting freed slots to the waitlist, on the existing sweep.

:func:`ringback.booking.waitlist.slot_freed` writes an opening when a cancellation frees a
slot someone waits for. The sweep's step here (:func:`sweep`) takes each open opening
(row-locked, skipping ones another sweep holds), checks the slot is still free, and, inside
texting hours, texts it to every matching waiting patient who may be texted (not opted out,
within the day's cap of automated texts), in their thread. The first "yes" books it
through the booking service's lock; the rest hear it is gone when they answer and keep
their place (see the machine's ``waitlist_entry``).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.booking import service as booking
from ringback.booking import waitlist as waitlists
from ringback.booking.availability import Slot
from ringback.config import Location
from ringback.conversation import service as conversation_service
from ringback.conversation.machine import Offer, Offered
from ringback.conversation.threads import find_open, open_conversation
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.messaging import daily_cap
from ringback.models import Conversation, Patient, WaitlistOpening
from ringback.patients import service as patients

log = logging.getLogger(__name__)

OPENINGS_BATCH = 20
# How many waiting patients one freed slot is texted to (first reply wins).
OFFERS_PER_OPENING = 25


def patient_thread(
    session: Session, location: Location, patient: Patient, now: datetime
) -> Conversation:
    """The patient's open thread, else a new one in the language they last wrote in."""
    conversation = find_open(session, location.id, patient.id)
    if conversation is not None:
        return conversation
    language = session.scalar(
        select(Conversation.language)
        .where(Conversation.location_id == location.id, Conversation.patient_id == patient.id)
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    conversation, _ = open_conversation(session, location.id, patient, now, None)
    if language:
        conversation.language = language
    return conversation


def offer_opening(session: Session, deps: Deps, opening: WaitlistOpening) -> int:
    """Text ``opening`` to the matching waiting patients; how many were texted. Leaves the
    opening open when it is outside texting hours (the next sweep in hours sends it)."""
    now = deps.clock()
    location = deps.locations.get(opening.location_id)
    service = location.service_named(opening.service) if location else None
    if location is None or service is None or not location.waitlist:
        opening.status, opening.settled_at = "lapsed", now
        return 0
    if location.next_texting_time(now) != now:
        return 0
    slot = Slot(opening.starts_at, opening.ends_at, opening.provider_id, opening.room_id)
    if not booking.is_free(session, location, service, slot, now):
        opening.status, opening.settled_at = "lapsed", now
        log_event(log, "waitlist.opening_taken", opening_id=opening.id)
        return 0
    texted = 0
    for entry in waitlists.matching(session, location, opening, now, OFFERS_PER_OPENING):
        patient = session.get(Patient, entry.patient_id)
        if patient is None or patients.why_not_textable(patient):
            continue
        if not daily_cap.allows(session, location, patient, now):
            log_event(log, "sms.daily_cap", entry_id=entry.id, kind="waitlist")
            continue
        conversation = patient_thread(session, location, patient, now)
        offer = Offer(
            start=opening.starts_at.isoformat(),
            end=opening.ends_at.isoformat(),
            provider_id=opening.provider_id,
            room_id=opening.room_id or "",
            label=conversation_service.offer_label(
                location, opening.starts_at, opening.provider_id, conversation.language
            ),
        )
        event = Offered(opening.service, (offer,), "waitlist_offer", waitlist_entry=entry.id)
        if not conversation_service.offered(session, deps, location, conversation, patient, event):
            continue  # staff have the thread: no automated text in it
        entry.status = "offered"
        entry.offered_at = now
        entry.opening_id = opening.id
        texted += 1
    opening.offered = texted
    if texted:
        opening.status = "offered"
    else:
        opening.status, opening.settled_at = "lapsed", now
    log_event(log, "waitlist.offered", opening_id=opening.id, texted=texted)
    return texted


def sweep(deps: Deps) -> dict[str, int]:
    """Expire old entries and passed openings, then text the open ones; non-zero counts."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        expired = waitlists.expire(session, now)
        ids = list(
            session.scalars(
                select(WaitlistOpening.id)
                .where(WaitlistOpening.status == "open")
                .order_by(WaitlistOpening.starts_at)
                .limit(OPENINGS_BATCH)
            )
        )
    texted = 0
    for opening_id in ids:
        # One transaction per opening: a failure leaves the others' offers standing.
        with transaction(deps.sessions) as session:
            opening = session.get(WaitlistOpening, opening_id, with_for_update=True)
            if opening is None or opening.status != "open":
                continue
            texted += offer_opening(session, deps, opening)
    counts = {"waitlist_expired": expired, "waitlist_offers": texted}
    return {name: count for name, count in counts.items() if count}
