"""Applies the conversation machine: understand, transition, persist, carry out commands.

Runs inside the caller's transaction (the event job's). Every decision is stored with the
event that caused it; every text goes through the outbox keyed by the decision's
sequence number, so a retried job never sends a reply twice.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.booking import links
from ringback.booking import service as booking
from ringback.booking import waitlist as waitlists
from ringback.booking.availability import Slot, Window
from ringback.config import Location
from ringback.conversation import replies
from ringback.conversation.alerts import queue_staff_alerts
from ringback.conversation.machine import (
    AlertStaff,
    Book,
    Booked,
    CancelAppointment,
    Clinic,
    Close,
    Command,
    ConfirmAppointment,
    Event,
    FindOffers,
    HandedBack,
    HandOff,
    Inbound,
    JoinWaitlist,
    KeepWaiting,
    Machine,
    MarkWrongNumber,
    MissedVisit,
    NoteForStaff,
    Offer,
    Offered,
    OffersFound,
    OptOut,
    Qualified,
    Question,
    Reminded,
    Reply,
    Schedule,
    ServiceInfo,
    SetPatientStatus,
    SlotTaken,
    StaffTookOver,
    State,
    TextedBack,
    TimerDue,
    TimerKind,
    Upcoming,
)
from ringback.conversation.understand import understand
from ringback.db import after_commit, transaction
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.messaging import daily_cap
from ringback.messaging.outbox import queue_sms
from ringback.models import Appointment, Conversation, ConversationDecision, Message, Note, Patient
from ringback.outbound_webhooks import service as webhooks
from ringback.patients import service as patients
from ringback.phones import display, redact
from ringback.readable import slot_label, when

log = logging.getLogger(__name__)
TIMER_JOB_HORIZON = timedelta(minutes=5)
# What a NoteForStaff command writes on the thread (staff read it; no patient words in it).
STAFF_NOTES = {"running_late": "Patient says they're running late (replied to the reminder)."}


def clinic(location: Location) -> Clinic:
    """The machine's view of the location (pure data: slots are looked up on request)."""
    return Clinic(
        services=tuple(
            ServiceInfo(
                s.name,
                s.price_cents,
                s.consult,
                bookable=any(p.performs(s.name) for p in location.providers),
            )
            for s in location.services
        ),
        has_booking_link=location.booking_url is not None or location.schedules,
        nudge_after=timedelta(minutes=location.nudge_after_minutes),
        close_after=timedelta(minutes=location.close_after_minutes),
        next_texting_time=location.next_texting_time,
        schedules=location.schedules,
        confirm_cancel=location.confirm_cancel,
        waitlist=location.waitlist and location.schedules,
    )


def find_offers(
    session: Session,
    location: Location,
    command: FindOffers,
    now: datetime,
    language: str,
    deps: Deps | None = None,
) -> OffersFound:
    """The free slots a :class:`FindOffers` asks for, as the machine offers them."""
    service = location.service_named(command.treatment)
    if service is None:
        return OffersFound((), command.template, command.price_line)
    slots = booking.offer(
        session,
        location,
        service,
        now,
        windows=[
            Window(datetime.fromisoformat(a), datetime.fromisoformat(b)) for a, b in command.times
        ],
        exclude=[datetime.fromisoformat(x) for x in command.exclude],
        spread=command.spread,
        deps=deps,
    )
    offers = tuple(
        Offer(
            start=slot.start.isoformat(),
            end=slot.end.isoformat(),
            provider_id=slot.provider_id,
            room_id=slot.room_id or "",
            label=slot_label(
                slot.start, location.zone, _provider_name(location, slot.provider_id), language
            ),
        )
        for slot in slots
    )
    return OffersFound(offers, command.template, command.price_line)


def _provider_name(location: Location, provider_id: str | None) -> str | None:
    provider = location.find_provider(provider_id) if provider_id else None
    return provider.name if provider else None


def _upcoming(
    session: Session, location: Location, patient: Patient, now: datetime, language: str
) -> Upcoming | None:
    if not location.schedules:
        return None
    appointment = booking.upcoming(session, patient.id, now)
    if appointment is None:
        return None
    return Upcoming(
        id=appointment.id,
        when=when(appointment.starts_at, location.zone, language),
        service=appointment.service,
    )


# Closing a booked thread again (after "C", "thanks", a reschedule) leaves it booked; only
# these end the booking's story.
_UNBOOKS = frozenset({"cancelled", "opted_out", "wrong_number", "lost"})


def close(conversation: Conversation, at: datetime, reason: str) -> None:
    """Close the thread (a text soon after, or about its booking, continues it)."""
    still_booked = conversation.status == "booked" and reason not in _UNBOOKS
    if reason == "booked" or still_booked:
        reason = "booked"
    conversation.is_open = False
    conversation.status = "booked" if reason == "booked" else "closed"
    conversation.close_reason = reason
    conversation.closed_at = at
    conversation.next_timer_at = None
    funnel.conversation_changed(conversation)


def urgent_reply(location: Location, now: datetime) -> tuple[str, str]:
    """The safety text's template and the number it gives, written the way people write it.

    The on-call ``urgent_phone`` when the location has one; the location's own number only
    while the clinic is open (after hours nobody answers it: that may be why the patient
    is texting); otherwise no number at all, just 911 and the promise of a call back.
    """
    if location.urgent_phone:
        return "urgent", display(location.urgent_phone)
    if location.is_open(now):
        return "urgent", display(location.phone_number)
    return "urgent_callback", ""


def is_known_patient(session: Session, patient: Patient) -> bool:
    """Returning per the record, or with any appointment on file: never asked again.

    New or returning is one fact, the record's: a patient known only by an appointment,
    whose record did not say, is recorded as returning, so the conversation and the
    patient list never disagree.
    """
    if patient.status == "returning":
        return True
    known = (
        session.scalar(select(Appointment.id).where(Appointment.patient_id == patient.id).limit(1))
        is not None
    )
    if known and patient.status is None:
        patient.status = "returning"
    return known


def texted_back(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    *,
    about_appointment: bool,
) -> None:
    question: Question = "appointment" if about_appointment else "treatment"
    event = TextedBack(
        question=question,
        known_patient=is_known_patient(session, patient),
        upcoming=_upcoming(session, location, patient, deps.clock(), conversation.language),
    )
    _apply(session, deps, location, conversation, patient, event, None)


def inbound(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    message: Message,
    *,
    reopened: bool = False,
) -> None:
    """A patient text in ``conversation`` (``reopened``: it continues a closed thread),
    read as an answer to the question the bot asked last."""
    now = message.created_at
    asked = State.from_json(conversation.state).last_question
    understanding = understand(
        message.body,
        now,
        location,
        known_patient=is_known_patient(session, patient),
        asked=asked,
        language="es" if conversation.language == "es" else "en",
    )
    conversation.language = understanding.language
    upcoming = _upcoming(session, location, patient, now, understanding.language)
    event = Inbound(understanding, upcoming, reopened=reopened)
    _apply(session, deps, location, conversation, patient, event, message)


def reminded(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    appointment: Appointment,
) -> None:
    """A reminder of ``appointment`` was queued in ``conversation``: replies are about it."""
    language = conversation.language
    upcoming = Upcoming(
        id=appointment.id,
        when=when(appointment.starts_at, location.zone, language),
        service=appointment.service,
    )
    event = Reminded(upcoming, until=appointment.starts_at.isoformat())
    _apply(session, deps, location, conversation, patient, event, None)


def offered(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    event: Offered,
) -> bool:
    """Ringback texts first with real times (a freed waitlist slot, a rebooking); False
    when the thread did not send it (staff have the thread)."""
    _apply(session, deps, location, conversation, patient, event, None)
    state = State.from_json(conversation.state)
    expected = "waitlist_offer" if event.template == "waitlist_offer" else "rebook_offer"
    return state.outcome == expected and state.offers == event.offers


def offer_label(location: Location, start: datetime, provider_id: str | None, language: str) -> str:
    """How an offered time reads in a text ("Thu Nov 26 at 3:00pm with Anna")."""
    return slot_label(start, location.zone, _provider_name(location, provider_id), language)


def missed_visit(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    appointment: Appointment,
) -> None:
    """Staff marked ``appointment`` a no-show: the thread offers fresh times, once."""
    event = MissedVisit(treatment=appointment.service)
    _apply(session, deps, location, conversation, patient, event, None)


def timer_due(deps: Deps, conversation_id: int, kind: TimerKind) -> None:
    """A nudge or close timer fired (a job, or the sweep). Harmless when no longer due."""
    with transaction(deps.sessions) as session:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or not conversation.is_open:
            return
        location = deps.locations.get(conversation.location_id)
        patient = session.get(Patient, conversation.patient_id)
        if location is None or patient is None:
            return
        _apply(session, deps, location, conversation, patient, TimerDue(kind), None)


def take_over(deps: Deps, conversation_id: int, staff_user_id: int | None) -> bool:
    """Staff take the thread: the bot stops talking in it until :func:`hand_back`."""
    return _staff_event(deps, conversation_id, StaffTookOver(), staff_user_id)


def hand_back(deps: Deps, conversation_id: int, *, already_answered: bool = False) -> bool:
    """Give the thread back to the bot, which carries on from what was captured; if the
    patient wrote last and staff did not answer (nor tick ``already_answered``), the bot
    answers now, so nobody is left on read."""
    with deps.sessions() as session:
        last = session.scalars(
            select(Message.direction)
            .where(Message.conversation_id == conversation_id, Message.kind != "alert")
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
    answer = last == "inbound" and not already_answered
    return _staff_event(deps, conversation_id, HandedBack(answer=answer), None)


def _staff_event(
    deps: Deps, conversation_id: int, event: StaffTookOver | HandedBack, staff_user_id: int | None
) -> bool:
    with transaction(deps.sessions) as session:
        conversation = session.get(Conversation, conversation_id, with_for_update=True)
        if conversation is None or not conversation.is_open:
            return False
        location = deps.locations.get(conversation.location_id)
        patient = session.get(Patient, conversation.patient_id)
        if location is None or patient is None:
            return False
        _apply(session, deps, location, conversation, patient, event, None)
        conversation.bot_paused = isinstance(event, StaffTookOver)
        if staff_user_id is not None:
            conversation.assigned_user_id = staff_user_id
        if isinstance(event, HandedBack) and conversation.status == "needs_staff":
            conversation.status = "active"
        return True


def due_timers(deps: Deps, limit: int = 500) -> list[tuple[int, TimerKind]]:
    """Open conversations whose timers are due, for the sweep."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        rows = session.scalars(
            select(Conversation)
            .where(Conversation.is_open.is_(True), Conversation.next_timer_at <= now)
            .limit(limit)
        ).all()
        due: list[tuple[int, TimerKind]] = []
        for conversation in rows:
            state = State.from_json(conversation.state)
            for kind, at in (("nudge", state.nudge_at), ("close", state.close_at)):
                if at is not None and datetime.fromisoformat(at) <= now:
                    due.append((conversation.id, kind))  # type: ignore[arg-type]
        return due


def _event_json(event: Event) -> dict[str, Any]:
    if isinstance(event, Inbound):
        return {"type": "inbound", "understanding": event.understanding.to_json()}
    return {"type": type(event).__name__, **asdict(event)}


def _command_json(command: Command) -> dict[str, Any]:
    data = {"type": type(command).__name__, **asdict(command)}
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in data.items()}


def _apply(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    event: Event,
    message: Message | None,
) -> None:
    now = deps.clock() if message is None else message.created_at
    state = State.from_json(conversation.state)
    rules = clinic(location)
    new_state, commands = Machine(rules).transition(state, event, now)
    conversation.state = new_state.to_json()
    session.add(
        ConversationDecision(
            conversation_id=conversation.id,
            seq=new_state.seq,
            at=deps.clock(),
            event=_event_json(event),
            commands=[_command_json(c) for c in commands],
            message_id=message.id if message else None,
        )
    )
    follow_ups: list[Event] = []
    for index, command in enumerate(commands):
        follow_up = _carry_out(
            session, deps, location, conversation, patient, new_state, command, index, message
        )
        if follow_up is not None:
            follow_ups.append(follow_up)
    timers = [t for t in (new_state.nudge_at, new_state.close_at) if t]
    conversation.next_timer_at = (
        min(datetime.fromisoformat(t) for t in timers) if timers and conversation.is_open else None
    )
    funnel.conversation_changed(conversation)
    if commands:
        log_event(
            log,
            "conversation.decided",
            conversation_id=conversation.id,
            stage=new_state.stage,
            commands=[type(c).__name__ for c in commands],
        )
    # What booking reported back (booked, or taken meanwhile) and the slots found for an
    # offer: the machine hears them as events of their own.
    for follow_up in follow_ups:
        _apply(session, deps, location, conversation, patient, follow_up, None)


def confirm_opt_change(
    session: Session,
    deps: Deps,
    location: Location,
    patient: Patient,
    word: str,
    key: str,
    at: datetime,
) -> None:
    """One short confirmation of STOP / START, when the location leaves it to Ringback.

    Sent only when the keyword changed something (a second STOP gets nothing), keyed by
    ``key`` (the inbound message) so a retried webhook never sends it twice. The STOP confirmation
    goes to a number that just opted out: it is the one text the rules allow then.
    """
    if location.opt_out_confirmations != "ringback":
        return
    template = location.messages.stop if word == "stop" else location.messages.start
    queue_sms(
        session,
        deps,
        location_id=location.id,
        patient=None if word == "stop" else patient,
        to_number=patient.phone,
        from_number=location.phone_number,
        body=location.render(template),
        kind="keyword",
        idempotency_key=key,
        trigger_at=at,
    )


def _booking_link(
    deps: Deps,
    location: Location,
    conversation: Conversation,
    treatment: str,
    wish: tuple[tuple[str, str], ...] = (),
) -> str:
    """The outside booking system's URL, or Ringback's own signed page for this thread,
    opening at the day and part of the day the patient asked for."""
    if location.booking_url:
        base = location.booking_url
        separator = "&" if "?" in base else "?"
        return f"{base}{separator}{urlencode({'service': treatment})}"
    return booking_page_url(deps, location, conversation.id, treatment, wish)


def booking_page_url(
    deps: Deps,
    location: Location,
    conversation_id: int,
    treatment: str,
    wish: tuple[tuple[str, str], ...] = (),
) -> str:
    valid = timedelta(days=location.booking.link_days)
    now = deps.clock()
    token = links.booking_token(deps.link_secret, conversation_id, now, valid)
    query: dict[str, str] = {"service": treatment} if treatment else {}
    if wish:
        start = datetime.fromisoformat(wish[0][0]).astimezone(location.zone)
        if start.date() >= now.astimezone(location.zone).date():
            query["day"] = start.date().isoformat()
            query["part"] = links.part_of_day(start)
    url = f"{deps.public_url}/book/{token}" + (f"?{urlencode(query)}" if query else "")
    return url + ("#asked" if "part" in query else "")


def _carry_out(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    state: State,
    command: Command,
    index: int,
    message: Message | None,
) -> Event | None:
    now = deps.clock()
    key = f"conv:{conversation.id}:{state.seq}:{index}"
    if isinstance(command, Reply):
        if command.kind != "reply" and not daily_cap.allows(session, location, patient, now):
            # An automated text (nudge, no-show) beyond the day's cap: not sent.
            log_event(log, "sms.daily_cap", conversation_id=conversation.id, kind=command.kind)
            return None
        values = dict(command.values)
        first_name = (patient.first_name or "").strip()
        values.update(
            location=location.name,
            phone=display(location.phone_number),
            examples=", ".join(s.name for s in location.services[:3]),
            name=f", {first_name}" if first_name else "",
        )
        template = command.template
        if template == "urgent":
            template, values["phone"] = urgent_reply(location, now)
        if "treatment" in values and (location.booking_url or location.schedules):
            values["booking_link"] = _booking_link(
                deps, location, conversation, values["treatment"], state.times
            )
        if command.template in ("booked", "rescheduled"):
            service = location.service_named(values.get("treatment", ""))
            values["address"] = f"{location.address}. " if location.address else ""
            values["prep"] = f"{service.prep_note} " if service and service.prep_note else ""
        if command.template in ("offer_more", "offer_slots") and "booking_link" not in values:
            values["booking_link"] = _booking_link(
                deps, location, conversation, state.treatment or "", state.times
            )
        queue_sms(
            session,
            deps,
            location_id=location.id,
            patient=patient,
            from_number=location.phone_number,
            body=replies.render(template, command.language, values),
            kind=command.kind,
            idempotency_key=key,
            conversation_id=conversation.id,
            trigger_at=message.created_at if message else now,
        )
        conversation.last_outbound_at = now
    elif isinstance(command, HandOff):
        conversation.status = "urgent" if command.urgent else "needs_staff"
        conversation.handoff_reason = command.reason
        conversation.handed_off_at = conversation.handed_off_at or now
        if command.urgent:
            conversation.urgent_at = conversation.urgent_at or now
        log_event(
            log,
            "conversation.handed_off",
            conversation_id=conversation.id,
            reason=command.reason,
            urgent=command.urgent,
        )
        webhooks.conversation_handed_off(
            session, deps, conversation, urgent=command.urgent, decision_key=key
        )
    elif isinstance(command, AlertStaff):
        what = (
            "URGENT message" if command.urgent else f"Handoff ({command.reason.replace('_', ' ')})"
        )
        # Staff are authorised to see the number, and the nurse calls back from this text.
        body = replies.STAFF_ALERT.format(
            what=what,
            phone=display(patient.phone),
            location=location.name,
            link=f"{deps.public_url}/staff/conversations/{conversation.id}",
        )
        for n, number in enumerate(location.staff_alert_numbers):
            queue_sms(
                session,
                deps,
                location_id=location.id,
                patient=None,
                to_number=number,
                from_number=location.phone_number,
                body=body,
                kind="alert",
                idempotency_key=f"{key}:{n}",
                conversation_id=conversation.id,
                trigger_at=message.created_at if message else now,
            )
        queue_staff_alerts(
            session, deps, location, conversation.id, reason=command.reason, urgent=command.urgent
        )
    elif isinstance(command, Qualified):
        conversation.treatment = command.treatment
        conversation.qualified_at = conversation.qualified_at or now
        webhooks.conversation_qualified(session, deps, conversation, key)
    elif isinstance(command, SetPatientStatus):
        patient.status = command.status
    elif isinstance(command, OptOut):
        if patients.opt_out(patient, now, "conversation"):
            log_event(log, "patient.opted_out", location=location.id, patient_id=patient.id)
            webhooks.patient_opted_out(session, deps, patient, "conversation")
            confirm_opt_change(session, deps, location, patient, "stop", key, now)
    elif isinstance(command, MarkWrongNumber):
        patient.wrong_number_at = now
        log_event(log, "patient.wrong_number", caller=redact(patient.phone))
    elif isinstance(command, Close):
        close(conversation, now, command.reason)
        webhooks.conversation_closed(session, deps, conversation)
    elif isinstance(command, Book):
        return _book(session, deps, location, conversation, patient, command)
    elif isinstance(command, FindOffers):
        asked_at = message.created_at if message else now
        return find_offers(session, location, command, asked_at, conversation.language, deps)
    elif isinstance(command, CancelAppointment):
        appointment = session.get(Appointment, command.appointment_id)
        if appointment is not None and appointment.patient_id == patient.id:
            booking.cancel(session, deps, location, appointment, by="patient")
    elif isinstance(command, NoteForStaff):
        session.add(
            Note(
                conversation_id=conversation.id,
                patient_id=patient.id,
                author_id=None,
                body=STAFF_NOTES.get(command.what, command.what),
                created_at=now,
            )
        )
    elif isinstance(command, JoinWaitlist):
        waitlists.join_from_thread(
            session, location, patient, command.treatment, command.times, now
        )
    elif isinstance(command, KeepWaiting):
        waitlists.keep_waiting(session, command.waitlist_entry)
    elif isinstance(command, ConfirmAppointment):
        appointment = session.get(Appointment, command.appointment_id)
        if appointment is not None and appointment.patient_id == patient.id:
            booking.confirm(deps, appointment)
    elif isinstance(command, Schedule) and command.at - now <= TIMER_JOB_HORIZON:
        # Timers live on the conversation (next_timer_at) and the minute sweep fires them;
        # only a timer due sooner than the sweep can promise gets its own queued job.
        conversation_id, kind, at = conversation.id, command.kind, command.at
        after_commit(session, lambda: deps.jobs.conversation_timer(conversation_id, kind, at))
    if conversation.treatment is None and state.treatment:
        conversation.treatment = state.treatment
    return None


def _book(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    command: Book,
) -> Event:
    """Book the chosen slot; report back Booked, or SlotTaken when someone was faster."""
    service = location.service_named(command.treatment)
    offer = command.offer
    replaces = session.get(Appointment, command.replaces) if command.replaces else None
    if replaces is not None and (replaces.patient_id != patient.id or replaces.status != "booked"):
        replaces = None
    appointment = None
    if service is not None:
        slot = Slot(
            datetime.fromisoformat(offer.start),
            datetime.fromisoformat(offer.end),
            offer.provider_id,
            offer.room_id or None,
        )
        appointment = booking.reserve(
            session,
            deps,
            location,
            service,
            patient,
            slot,
            source="bot",
            conversation_id=conversation.id,
            replaces=replaces,
        )
    if appointment is None:
        return SlotTaken(offer.start)
    if replaces is None:
        conversation.booked_by = "bot"
        conversation.booked_value_cents = appointment.value_cents
    if command.waitlist_entry is not None:
        waitlists.filled(session, command.waitlist_entry, appointment, deps.clock())
    return _booked_event(location, conversation, appointment, rescheduled=replaces is not None)


def _booked_event(
    location: Location,
    conversation: Conversation,
    appointment: Appointment,
    *,
    rescheduled: bool = False,
    treatment: str = "",
) -> Booked:
    """The booking as the thread reports it: the time in the location's zone, who with."""
    return Booked(
        appointment_id=appointment.id,
        when=when(appointment.starts_at, location.zone, conversation.language),
        provider=appointment.provider_name or location.name,
        rescheduled=rescheduled,
        treatment=treatment,
    )


def book_from_page(
    session: Session,
    deps: Deps,
    location: Location,
    conversation: Conversation,
    patient: Patient,
    appointment: Appointment,
) -> None:
    """The patient booked on the booking page: the thread confirms and closes as booked.

    The link outlives the thread (it may have closed as "no reply" a day before): the
    booking still confirms by text and counts as a booking in the funnel.
    """
    if conversation.status == "booked":
        return
    conversation.booked_by = "page"
    conversation.booked_value_cents = appointment.value_cents
    conversation.treatment = appointment.service
    event = _booked_event(location, conversation, appointment, treatment=appointment.service)
    _apply(session, deps, location, conversation, patient, event, None)
