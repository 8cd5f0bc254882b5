"""Texts after a kept visit, both opt-in per location, on the existing sweep.

* **Rebooking** (``rebooking: true`` and a service's ``rebook_after_days``): a patient whose
  last kept visit for that treatment is that old, and who has nothing booked, gets ONE text
  with real free times in their thread; a reply books one like any offer.
* **Review request** (``review_requests: true`` and ``review_link``): after a kept visit,
  one text with the link, at most once per patient per :data:`REVIEW_EVERY`.

A visit counts as kept when staff marked it so, or when it ended :data:`KEPT_AFTER` ago and
nobody marked it a no-show. Each text is claimed by a :class:`RetentionText` row, unique per
(kind, visit), so it goes once however often the sweep runs; a patient who may not be
texted gets a ``skipped`` row with why. The day's cap and texting hours hold a text back
for a later sweep rather than dropping it. Only visits from the last :data:`LOOK_BACK`
after they fell due are considered, so turning a setting on does not text years of patients.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from ringback.booking import service as booking
from ringback.config import Location
from ringback.conversation import replies
from ringback.conversation import service as conversation_service
from ringback.conversation.machine import Language, Offer, Offered
from ringback.conversation.reminders import has_consent
from ringback.conversation.threads import find_open
from ringback.conversation.waitlist import patient_thread
from ringback.db import insert_ignore, transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.messaging import daily_cap
from ringback.messaging.outbox import queue_sms
from ringback.models import Appointment, Patient, RetentionText
from ringback.patients import service as patients
from ringback.phones import display

log = logging.getLogger(__name__)

KEPT_AFTER = timedelta(hours=3)
REVIEW_EVERY = timedelta(days=180)
LOOK_BACK = timedelta(days=14)
BATCH = 100
REBOOK_OFFERS = 3


def _kept(now: datetime) -> ColumnElement[bool]:
    return and_(
        Appointment.status == "booked",
        or_(
            Appointment.attendance == "kept",
            and_(Appointment.attendance.is_(None), Appointment.ends_at <= now - KEPT_AFTER),
        ),
    )


def _claim(
    session: Session,
    kind: str,
    visit: Appointment,
    now: datetime,
    *,
    skipped: str | None = None,
) -> int | None:
    """Claim the (kind, visit) text; the row id, or None when it was claimed before."""
    return insert_ignore(
        session,
        RetentionText,
        {
            "kind": kind,
            "location_id": visit.location_id,
            "patient_id": visit.patient_id,
            "appointment_id": visit.id,
            "status": "skipped" if skipped else "sent",
            "skip_reason": skipped,
            "created_at": now,
        },
        ["kind", "appointment_id"],
    )


def _may_text(
    session: Session, location: Location, patient: Patient, visit: Appointment, now: datetime
) -> str | None:
    """Why this patient may not get the text (for good), else None."""
    blocked = patients.why_not_textable(patient)
    if blocked:
        return blocked
    if not has_consent(session, patient, visit):
        return "no_consent"
    return None


def rebook_candidates(
    session: Session, location: Location, service_name: str, days: int, now: datetime
) -> list[Appointment]:
    """Kept visits for ``service_name`` that fell due (``days`` old) lately, that are the
    patient's latest visit for it, not texted about yet, and with nothing booked ahead."""
    due = now - timedelta(days=days)
    later = aliased(Appointment)
    ahead = aliased(Appointment)
    return list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.location_id == location.id,
                Appointment.service == service_name,
                Appointment.starts_at <= due,
                Appointment.starts_at > due - LOOK_BACK,
                _kept(now),
                ~exists().where(
                    later.patient_id == Appointment.patient_id,
                    later.service == service_name,
                    later.status == "booked",
                    later.starts_at > Appointment.starts_at,
                ),
                ~exists().where(
                    ahead.patient_id == Appointment.patient_id,
                    ahead.status == "booked",
                    ahead.starts_at > now,
                ),
                ~exists().where(
                    RetentionText.kind == "rebook", RetentionText.appointment_id == Appointment.id
                ),
            )
            .order_by(Appointment.starts_at)
            .limit(BATCH)
        )
    )


def send_rebook(session: Session, deps: Deps, location: Location, visit: Appointment) -> bool:
    """One rebooking text with real times for ``visit``'s treatment; True when sent."""
    now = deps.clock()
    patient = session.get(Patient, visit.patient_id)
    service = location.service_named(visit.service)
    if patient is None or service is None:
        _claim(session, "rebook", visit, now, skipped="gone")
        return False
    blocked = _may_text(session, location, patient, visit, now)
    if blocked:
        _claim(session, "rebook", visit, now, skipped=blocked)
        return False
    if not daily_cap.allows(session, location, patient, now):
        return False  # tomorrow's sweep tries again
    slots = booking.offer(session, location, service, now, limit=REBOOK_OFFERS, deps=deps)
    if not slots:
        _claim(session, "rebook", visit, now, skipped="no_slots")
        return False
    if _claim(session, "rebook", visit, now) is None:
        return False
    conversation = patient_thread(session, location, patient, now)
    offers = tuple(
        Offer(
            start=slot.start.isoformat(),
            end=slot.end.isoformat(),
            provider_id=slot.provider_id,
            room_id=slot.room_id or "",
            label=conversation_service.offer_label(
                location, slot.start, slot.provider_id, conversation.language
            ),
        )
        for slot in slots
    )
    sent = conversation_service.offered(
        session, deps, location, conversation, patient, Offered(visit.service, offers, "rebook")
    )
    log_event(log, "rebook.sent" if sent else "rebook.staff_thread", appointment_id=visit.id)
    return sent


def review_candidates(session: Session, location: Location, now: datetime) -> list[Appointment]:
    """Kept visits of the last days whose patient had no review request in 180 days."""
    return list(
        session.scalars(
            select(Appointment)
            .where(
                Appointment.location_id == location.id,
                Appointment.ends_at > now - LOOK_BACK,
                Appointment.starts_at <= now,
                _kept(now),
                ~exists().where(
                    RetentionText.kind == "review",
                    RetentionText.patient_id == Appointment.patient_id,
                    or_(
                        RetentionText.appointment_id == Appointment.id,
                        and_(
                            RetentionText.status == "sent",
                            RetentionText.created_at > now - REVIEW_EVERY,
                        ),
                    ),
                ),
            )
            .order_by(Appointment.ends_at)
            .limit(BATCH)
        )
    )


def send_review(session: Session, deps: Deps, location: Location, visit: Appointment) -> bool:
    """The review request for ``visit``; True when queued."""
    now = deps.clock()
    patient = session.get(Patient, visit.patient_id)
    if patient is None or not location.review_link:
        _claim(session, "review", visit, now, skipped="gone")
        return False
    blocked = _may_text(session, location, patient, visit, now)
    if blocked:
        _claim(session, "review", visit, now, skipped=blocked)
        return False
    if not daily_cap.allows(session, location, patient, now):
        return False
    row_id = _claim(session, "review", visit, now)
    if row_id is None:
        return False
    fresh = find_open(session, location.id, patient.id) is None
    conversation = patient_thread(session, location, patient, now)
    first_name = (patient.first_name or "").strip()
    language: Language = "es" if conversation.language == "es" else "en"
    body = replies.render(
        "review",
        language,
        {
            "location": location.name,
            "phone": display(location.phone_number),
            "name": f", {first_name}" if first_name else "",
            "review_link": location.review_link,
        },
    )
    message = queue_sms(
        session,
        deps,
        location_id=location.id,
        patient=patient,
        from_number=location.phone_number,
        body=body,
        kind="review",
        idempotency_key=f"review:{row_id}",
        conversation_id=conversation.id,
        trigger_at=now,
    )
    row = session.get(RetentionText, row_id)
    if row is not None:
        row.message_id = message.id
    if fresh:  # a thread opened just for this text; one the patient is in stays open
        conversation_service.close(conversation, now, "review_requested")
    log_event(log, "review.requested", appointment_id=visit.id)
    return True


def sweep(deps: Deps) -> dict[str, int]:
    """Rebooking texts and review requests due now, at locations that turned them on and
    inside their texting hours; the non-zero counts."""
    now = deps.clock()
    rebooked = reviewed = 0
    for location in deps.locations:
        if not (location.rebooking or location.review_requests):
            continue
        if location.next_texting_time(now) != now:
            continue
        if location.rebooking:
            for service in location.services:
                if service.rebook_after_days is None or service.consult:
                    continue
                with transaction(deps.sessions) as session:
                    for visit in rebook_candidates(
                        session, location, service.name, service.rebook_after_days, now
                    ):
                        rebooked += send_rebook(session, deps, location, visit)
        if location.review_requests:
            with transaction(deps.sessions) as session:
                asked: set[int] = set()
                for visit in review_candidates(session, location, now):
                    if visit.patient_id not in asked and send_review(
                        session, deps, location, visit
                    ):
                        asked.add(visit.patient_id)
                        reviewed += 1
    counts = {"rebook_texts": rebooked, "review_requests": reviewed}
    return {name: count for name, count in counts.items() if count}
