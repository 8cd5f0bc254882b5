"""Offers, holds and bookings in the database: exactly one live appointment per slot.

Runs inside the caller's transaction (a job's or a request's). Booking takes a lock row
per provider and room (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite's single writer
serialises it anyway), then checks the slot again against everything busy and inserts.
A partial unique index on (location, provider, start) of live appointments is the last
guard. The loser of a race gets ``None`` and is offered new times by its caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ringback.booking import systems, waitlist
from ringback.booking.availability import (
    BusyIndex,
    Slot,
    Window,
    bookable_providers,
    candidate_slots,
    find_slots,
    is_bookable,
)
from ringback.config import CalendarLink, Location, Service
from ringback.db import after_commit, transaction, upsert_insert
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.models import Appointment, BookingLock, CalendarSync, ExternalBusy, Patient
from ringback.outbound_webhooks import service as webhooks
from ringback.ports import BookingConflict

log = logging.getLogger(__name__)

LOCATION_CALENDAR = "location"


@dataclass(frozen=True, slots=True)
class Upcoming:
    """A patient's next appointment, as the conversation talks about it."""

    id: int
    start: datetime
    service: str
    provider_name: str | None


def busy_index(
    session: Session,
    location: Location,
    start: datetime,
    end: datetime,
    now: datetime,
    *,
    ignore_appointment: int | None = None,
    outside: systems.OutsideTimes | None = None,
) -> BusyIndex:
    """Everything that makes a provider or room busy between ``start`` and ``end``.

    ``outside`` is what the location's booking system said just now; without it, the busy
    time the sweep read from it last stands in."""
    until = func.coalesce(Appointment.busy_until, Appointment.ends_at)
    live = or_(
        Appointment.status == "booked",
        and_(Appointment.status == "held", Appointment.hold_expires_at > now),
    )
    query = select(
        Appointment.provider_id,
        Appointment.provider_name,
        Appointment.room_id,
        Appointment.starts_at,
        until,
    ).where(
        Appointment.location_id == location.id,
        Appointment.starts_at < end,
        Appointment.starts_at >= start - timedelta(days=1),
        live,
    )
    if ignore_appointment is not None:
        query = query.where(Appointment.id != ignore_appointment)
    by_name = {p.name.casefold(): p.id for p in location.providers}
    intervals: list[tuple[str, datetime, datetime]] = []
    for provider_id, provider_name, room_id, starts_at, busy_until in session.execute(query):
        # Imported appointments name the provider; match them to the configured one.
        pid = provider_id or (by_name.get(provider_name.casefold()) if provider_name else None)
        if pid:
            intervals.append((f"provider:{pid}", starts_at, busy_until))
        if room_id:
            intervals.append((f"room:{room_id}", starts_at, busy_until))
    columns = (ExternalBusy.calendar_key, ExternalBusy.starts_at, ExternalBusy.ends_at)
    external = select(*columns).where(
        ExternalBusy.location_id == location.id,
        ExternalBusy.starts_at < end,
        ExternalBusy.ends_at > start,
    )
    for key, starts_at, ends_at in session.execute(external):
        if key.startswith(systems.BUSY_PREFIX):
            if outside is not None:
                continue  # read live instead
            key = key.removeprefix(systems.BUSY_PREFIX)
        name = "location" if key == LOCATION_CALENDAR else f"provider:{key}"
        intervals.append((name, starts_at, ends_at))
    if outside is not None:
        intervals.extend(outside.intervals)
    return BusyIndex(intervals, outside.starts if outside is not None else None)


def offer(
    session: Session,
    location: Location,
    service: Service,
    now: datetime,
    *,
    windows: Sequence[Window] = (),
    exclude: Iterable[datetime] = (),
    limit: int | None = None,
    provider_id: str | None = None,
    ignore_appointment: int | None = None,
    spread: bool = False,
    deps: Deps | None = None,
) -> list[Slot]:
    """Up to ``limit`` free slots for ``service`` closest to ``windows`` (else the earliest);
    ``spread`` after "none of those" (see :func:`find_slots`). With ``deps``, a location's
    own booking system is read live (see :mod:`ringback.booking.systems`)."""
    horizon = now + timedelta(days=location.booking.horizon_days + 1)
    outside = (
        systems.read_outside(deps, location, service, now, horizon)
        if deps is not None and systems.uses_system(location)
        else None
    )
    busy = busy_index(
        session,
        location,
        now,
        horizon,
        now,
        ignore_appointment=ignore_appointment,
        outside=outside,
    )
    return find_slots(
        location,
        service,
        now,
        busy,
        windows=windows,
        limit=limit,
        exclude=frozenset(exclude),
        provider_id=provider_id,
        spread=spread,
    )


def _lock(session: Session, location: Location, slot: Slot) -> None:
    keys = [f"{location.id}:provider:{slot.provider_id}"]
    if slot.room_id:
        keys.append(f"{location.id}:room:{slot.room_id}")
    for key in sorted(keys):  # one order everywhere: no deadlocks between bookings
        _insert_lock_row(session, key)
        session.execute(select(BookingLock.key).where(BookingLock.key == key).with_for_update())


def _still_free(
    session: Session,
    location: Location,
    service: Service,
    slot: Slot,
    now: datetime,
    ignore_appointment: int | None,
) -> bool:
    """The check under the lock: the slot against everything busy around it right now."""
    busy = busy_index(
        session,
        location,
        slot.start - timedelta(days=1),
        slot.end + timedelta(days=1),
        now,
        ignore_appointment=ignore_appointment,
        outside=systems.UNDER_LOCK if systems.uses_system(location) else None,
    )
    return is_bookable(location, service, slot, now, busy)


def is_free(
    session: Session, location: Location, service: Service, slot: Slot, now: datetime
) -> bool:
    """Whether ``slot`` is free right now (no lock: booking checks again under it)."""
    return _still_free(session, location, service, slot, now, None)


def _insert_lock_row(session: Session, key: str) -> None:
    insert = upsert_insert(session.get_bind().dialect.name, BookingLock.__table__)
    session.execute(insert.values(key=key).on_conflict_do_nothing())


def _expire_holds(session: Session, location: Location, slot: Slot, now: datetime) -> None:
    session.execute(
        update(Appointment)
        .where(
            Appointment.location_id == location.id,
            Appointment.status == "held",
            Appointment.hold_expires_at <= now,
            or_(
                Appointment.provider_id == slot.provider_id,
                and_(Appointment.room_id.is_not(None), Appointment.room_id == slot.room_id),
            ),
        )
        .values(status="expired")
    )


def reserve(
    session: Session,
    deps: Deps,
    location: Location,
    service: Service,
    patient: Patient,
    slot: Slot,
    *,
    source: str,
    conversation_id: int | None = None,
    hold: bool = False,
    replaces: Appointment | None = None,
) -> Appointment | None:
    """Hold (``hold=True``) or book ``slot``; None when it is no longer free.

    A booking that replaces another (a reschedule) cancels the old one in the same
    transaction, so the patient never has both or neither.
    """
    now = deps.clock()
    _lock(session, location, slot)
    _expire_holds(session, location, slot, now)
    if not _still_free(session, location, service, slot, now, replaces.id if replaces else None):
        log_event(log, "booking.slot_taken", location=location.id, provider=slot.provider_id)
        return None
    provider = location.find_provider(slot.provider_id)
    appointment = Appointment(
        location_id=location.id,
        patient_id=patient.id,
        conversation_id=conversation_id,
        service=service.name,
        provider_id=slot.provider_id,
        provider_name=provider.name if provider else None,
        room_id=slot.room_id,
        starts_at=slot.start,
        ends_at=slot.end,
        busy_until=slot.end + timedelta(minutes=service.buffer_minutes),
        status="held" if hold else "booked",
        hold_expires_at=now + timedelta(minutes=location.booking.hold_minutes) if hold else None,
        source=source,
        value_cents=service.price_cents or None,
        rescheduled_from_id=replaces.id if replaces else None,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(appointment)
            session.flush()
            if not hold:
                # The clinic's own booking system, under the same lock (None: not used).
                systems.write_under_lock(session, deps, location, appointment)
    except IntegrityError:
        # Only reachable if something outside the lock wrote the same slot.
        log_event(log, "booking.slot_taken", location=location.id, provider=slot.provider_id)
        return None
    except BookingConflict:
        log_event(log, "booking.slot_taken", location=location.id, provider=slot.provider_id)
        return None
    if not hold:
        _booked(session, deps, location, appointment, replaces)
    log_event(
        log,
        "booking.held" if hold else "booking.booked",
        location=location.id,
        appointment_id=appointment.id,
        provider=slot.provider_id,
        source=source,
    )
    return appointment


def confirm_hold(
    session: Session, deps: Deps, location: Location, appointment: Appointment
) -> Appointment | None:
    """Turn a hold into a booking; a lapsed hold (expired by the sweep or not yet) is booked
    only if the slot is still free."""
    now = deps.clock()
    if appointment.status == "booked":
        return appointment
    service = location.service_named(appointment.service)
    live = ("held", "expired")
    if appointment.status not in live or service is None or appointment.provider_id is None:
        return None
    slot = Slot(
        appointment.starts_at, appointment.ends_at, appointment.provider_id, appointment.room_id
    )
    _lock(session, location, slot)
    session.refresh(appointment)
    if appointment.status not in live:
        return None
    lapsed = appointment.status == "expired" or (
        appointment.hold_expires_at is not None and appointment.hold_expires_at <= now
    )
    if lapsed and not _still_free(session, location, service, slot, now, appointment.id):
        appointment.status = "expired"
        return None
    try:
        with session.begin_nested():
            appointment.status = "booked"
            appointment.hold_expires_at = None
            session.flush()
            systems.write_under_lock(session, deps, location, appointment)
    except BookingConflict:
        session.refresh(appointment)
        appointment.status = "expired"
        return None
    _booked(session, deps, location, appointment, None)
    return appointment


def cancel(
    session: Session,
    deps: Deps,
    location: Location,
    appointment: Appointment,
    *,
    by: str,
    in_system: bool = True,
) -> bool:
    """Cancel a live appointment (and take it off the calendars and, unless it was cancelled
    there, ``in_system=False``, the clinic's booking system). False if it was not live."""
    if appointment.status not in ("booked", "held"):
        return False
    appointment.status = "cancelled"
    appointment.cancelled_at = now = deps.clock()
    appointment.cancelled_by = by
    funnel.appointment_changed(appointment)
    queue_calendar_syncs(session, deps, location, appointment)
    if in_system:
        systems.queue_cancel(session, deps, appointment)
    webhooks.appointment_cancelled(session, deps, appointment)
    waitlist.slot_freed(session, location, appointment, now)
    log_event(log, "booking.cancelled", location=location.id, appointment_id=appointment.id, by=by)
    return True


class CancelRefused(Exception):
    """Staff could not cancel: ``status`` 404 (not theirs or none) or 409 (not live)."""

    def __init__(self, problem: str, status: int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status


def cancel_by_staff(deps: Deps, appointment_id: int, can_see: Callable[[str], bool]) -> Appointment:
    """Staff cancel an appointment (one transaction); its slot goes to the waitlist."""
    with transaction(deps.sessions) as session:
        appointment = session.get(Appointment, appointment_id, with_for_update=True)
        if appointment is None or not can_see(appointment.location_id):
            raise CancelRefused(f"appointment: no appointment {appointment_id}", 404)
        location = deps.locations.get(appointment.location_id)
        if location is None or not cancel(session, deps, location, appointment, by="staff"):
            raise CancelRefused(f"appointment: the appointment is {appointment.status}", 409)
        session.flush()
        session.expunge(appointment)
        return appointment


def expire_lapsed_holds(deps: Deps) -> dict[str, int]:
    """Mark holds nobody confirmed in time as expired (for the sweep; they stopped counting
    as busy when they lapsed, this keeps records and exports honest)."""
    with transaction(deps.sessions) as session:
        result = session.execute(
            update(Appointment)
            .where(Appointment.status == "held", Appointment.hold_expires_at <= deps.clock())
            .values(status="expired")
        )
        count = int(getattr(result, "rowcount", 0) or 0)
    return {"holds_expired": count} if count else {}


def confirm(deps: Deps, appointment: Appointment) -> None:
    """The patient confirmed they are coming."""
    appointment.confirmed_at = appointment.confirmed_at or deps.clock()


def upcoming(session: Session, patient_id: int, now: datetime) -> Appointment | None:
    """The patient's next booked appointment that has not started yet."""
    return session.scalars(
        select(Appointment)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.status == "booked",
            Appointment.starts_at > now,
        )
        .order_by(Appointment.starts_at)
        .limit(1)
    ).first()


def _booked(
    session: Session,
    deps: Deps,
    location: Location,
    appointment: Appointment,
    replaces: Appointment | None,
) -> None:
    funnel.appointment_changed(appointment)
    queue_calendar_syncs(session, deps, location, appointment)
    if replaces is not None:
        cancel(session, deps, location, replaces, by="patient")
        webhooks.appointment_booked(session, deps, appointment)


def calendar_keys(location: Location) -> list[str]:
    """Every outside calendar a location syncs: providers' (by id), then the location's."""
    keys = [p.id for p in location.providers if p.calendar is not None]
    if location.booking.calendar is not None:
        keys.append(LOCATION_CALENDAR)
    return keys


def calendar_link(location: Location, key: str) -> CalendarLink | None:
    if key == LOCATION_CALENDAR:
        return location.booking.calendar
    provider = location.find_provider(key)
    return provider.calendar if provider else None


def queue_calendar_syncs(
    session: Session, deps: Deps, location: Location, appointment: Appointment
) -> None:
    """Mark the appointment's calendar events as needing a write, and queue the jobs."""
    now = deps.clock()
    ids: list[int] = []
    # Its provider's calendar and the location's show it.
    shown_on = (appointment.provider_id, LOCATION_CALENDAR)
    for key in (k for k in calendar_keys(location) if k in shown_on):
        sync = session.scalars(
            select(CalendarSync).where(
                CalendarSync.appointment_id == appointment.id, CalendarSync.calendar_key == key
            )
        ).first()
        if sync is None:
            sync = CalendarSync(
                appointment_id=appointment.id, location_id=location.id, calendar_key=key
            )
            session.add(sync)
        sync.status = "pending"
        sync.attempts = 0
        sync.next_attempt_at = now
        sync.last_error = None
        session.flush()
        ids.append(sync.id)
    for sync_id in ids:
        after_commit(session, _sync_job(deps, sync_id))


def _sync_job(deps: Deps, sync_id: int) -> Callable[[], None]:
    return lambda: deps.jobs.sync_calendar(sync_id)


# --- the booking page ----------------------------------------------------------------------


def day_slots(
    session: Session,
    location: Location,
    service: Service,
    day: date,
    now: datetime,
    *,
    provider_id: str | None = None,
    outside: systems.OutsideTimes | None = None,
) -> list[Slot]:
    """Every free start on ``day`` (the location's calendar day), one slot per start time.
    ``outside``: what the location's booking system said (:func:`read_outside_days`).

    Where several providers are free at a time, the first in the location's order is taken
    (the booking page shows times, and a provider filter for patients who care who).
    """
    providers = bookable_providers(location, service)
    if provider_id is not None:
        providers = [p for p in providers if p.id == provider_id]
    today = now.astimezone(location.zone).date()
    if (
        not providers
        or service.consult
        or not today <= day <= today + timedelta(days=location.booking.horizon_days)
    ):
        return []
    start = datetime.combine(day, time(0), tzinfo=location.zone)
    busy = busy_index(session, location, start, start + timedelta(days=2), now, outside=outside)
    not_before = now + timedelta(minutes=location.booking.lead_minutes)
    slots: list[Slot] = []
    for slot in candidate_slots(location, service, day, busy, not_before, providers):
        if not slots or slots[-1].start != slot.start:
            slots.append(slot)
    return slots


def read_outside_days(
    deps: Deps, location: Location, service: Service, first: date, last: date
) -> systems.OutsideTimes | None:
    """The booking system's word on ``first`` to ``last`` (one read for a page of days)."""
    if not systems.uses_system(location):
        return None
    start = datetime.combine(first, time(0), tzinfo=location.zone)
    end = datetime.combine(last + timedelta(days=2), time(0), tzinfo=location.zone)
    return systems.read_outside(deps, location, service, start, end)


def release_holds(session: Session, conversation_id: int, *, keep: int | None = None) -> None:
    """Let go of a thread's live holds (the patient picked another time on the page)."""
    query = update(Appointment).where(
        Appointment.conversation_id == conversation_id, Appointment.status == "held"
    )
    if keep is not None:
        query = query.where(Appointment.id != keep)
    session.execute(query.values(status="expired"))


def conversation_booking(session: Session, conversation_id: int) -> Appointment | None:
    """The thread's latest booked appointment, if it has one."""
    return session.scalars(
        select(Appointment)
        .where(Appointment.conversation_id == conversation_id, Appointment.status == "booked")
        .order_by(Appointment.id.desc())
        .limit(1)
    ).first()
