"""Changes made in the clinic's booking system reach Ringback's appointments.

Three ways in, one way of applying them (:func:`apply_change`):

* Square's ``booking.created`` / ``booking.updated`` webhooks (verified, then applied);
* Google's push notifications (``events.watch`` channels): the push says only "something
  changed", so it marks the location's changes as due and the sweep reads them;
* the sweep's backstop read, every five minutes (Google's incremental ``syncToken``;
  Square re-reads the month, keeping the newest update time as its cursor).

A booking of ours cancelled there is cancelled here (``cancelled_by`` "outside"); one moved
there is rescheduled here the way a patient's reschedule is (a new appointment that
replaces the old), so the funnel counts both as it counts the patient's own. Each leaves a
note on the thread for staff. Applying the same change twice changes nothing.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ringback.booking import service as booking
from ringback.booking import systems, waitlist
from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.funnel import rollup as funnel
from ringback.logs import log_event
from ringback.models import (
    Appointment,
    BookingSystemChannel,
    BookingSystemState,
    CalendarSync,
    Conversation,
    Note,
)
from ringback.outbound_webhooks import service as webhooks
from ringback.ports import BookingSystemUnavailable, ExternalChange
from ringback.readable import when

log = logging.getLogger(__name__)

CHANNEL_TTL = timedelta(days=7)
CHANNEL_RENEW_MARGIN = timedelta(hours=12)


def hook_path(system: str, location_id: str) -> str:
    """Where the system posts its notifications for a location (behind RINGBACK_PUBLIC_URL)."""
    return f"/booking-systems/{'google' if system == 'google_calendar' else system}/{location_id}"


def apply_change(
    session: Session, deps: Deps, location: Location, change: ExternalChange
) -> str | None:
    """Apply one change to the appointment it is about; returns what was done, if anything."""
    conditions = [CalendarSync.external_ref == change.external_id]
    if change.ringback_id:
        conditions.append(CalendarSync.ringback_ref == change.ringback_id)
    row = session.scalars(
        select(CalendarSync).where(
            CalendarSync.location_id == location.id,
            CalendarSync.calendar_key == systems.SYSTEM_KEY,
            or_(*conditions),
        )
    ).first()
    if row is None:
        return None  # not one of ours: it is busy time, read with the rest
    appointment = session.get(Appointment, row.appointment_id)
    if appointment is None or appointment.status != "booked":
        return None
    name = systems.SYSTEM_NAMES.get(location.booking_system, location.booking_system)
    if change.kind == "cancelled":
        booking.cancel(session, deps, location, appointment, by="outside", in_system=False)
        _note(session, location, appointment, f"{name}: this booking was cancelled there.")
        log_event(log, "booking_system.cancelled_there", appointment_id=appointment.id)
        return "cancelled"
    if change.start is None or change.end is None or change.start == appointment.starts_at:
        return None
    moved = _move(session, deps, location, appointment, change.start, change.end)
    if moved is None:
        _note(
            session,
            location,
            appointment,
            f"{name}: this booking was moved there to a time another booking holds here; "
            "check both.",
        )
        return "conflict"
    row.appointment_id = moved.id
    new_time = when(moved.starts_at, location.zone, _language(session, appointment))
    _note(session, location, moved, f"{name}: this booking was moved there to {new_time}.")
    log_event(log, "booking_system.moved_there", appointment_id=moved.id)
    return "moved"


def _move(
    session: Session,
    deps: Deps,
    location: Location,
    old: Appointment,
    start: datetime,
    end: datetime,
) -> Appointment | None:
    """The move as a reschedule: a new appointment replacing the old, in one step."""
    now = deps.clock()
    buffer = (old.busy_until or old.ends_at) - old.ends_at
    moved = Appointment(
        location_id=old.location_id,
        patient_id=old.patient_id,
        conversation_id=old.conversation_id,
        service=old.service,
        provider_id=old.provider_id,
        provider_name=old.provider_name,
        room_id=old.room_id,
        starts_at=start,
        ends_at=end,
        busy_until=end + buffer,
        status="booked",
        source=old.source,
        value_cents=old.value_cents,
        rescheduled_from_id=old.id,
        created_at=now,
    )
    try:
        with session.begin_nested():
            old.status, old.cancelled_at, old.cancelled_by = "cancelled", now, "outside"
            session.add(moved)
            session.flush()
    except IntegrityError:
        session.refresh(old)
        return None
    funnel.appointment_changed(old)
    funnel.appointment_changed(moved)
    waitlist.slot_freed(session, location, old, now)
    booking.queue_calendar_syncs(session, deps, location, old)
    booking.queue_calendar_syncs(session, deps, location, moved)
    webhooks.appointment_cancelled(session, deps, old)
    webhooks.appointment_booked(session, deps, moved)
    return moved


def _language(session: Session, appointment: Appointment) -> str:
    if appointment.conversation_id is None:
        return "en"
    conversation = session.get(Conversation, appointment.conversation_id)
    return conversation.language if conversation else "en"


def _note(session: Session, location: Location, appointment: Appointment, body: str) -> None:
    session.add(
        Note(
            conversation_id=appointment.conversation_id,
            patient_id=appointment.patient_id,
            author_id=None,
            body=body,
        )
    )


def apply_changes(deps: Deps, location: Location, changes: list[ExternalChange]) -> int:
    """Apply changes in one transaction; returns how many changed an appointment."""
    done = 0
    with transaction(deps.sessions) as session:
        for change in changes:
            if apply_change(session, deps, location, change):
                done += 1
    return done


def changes_due(deps: Deps, location_id: str) -> None:
    """A push said something changed: the next sweep reads the changes."""
    with transaction(deps.sessions) as session:
        state = _state(session, location_id)
        state.read_at = None


def read_changes(deps: Deps, location: Location) -> int | None:
    """Read what changed since the stored cursor, apply it, keep the new cursor."""
    system = deps.booking_systems(location) if deps.booking_systems else None
    if system is None:
        return None
    now = deps.clock()
    with deps.sessions() as session:
        state = session.get(BookingSystemState, location.id)
        cursor = state.cursor if state else None
    try:
        changes, next_cursor = system.changes(cursor)
    except BookingSystemUnavailable as exc:
        with transaction(deps.sessions) as session:
            state = _state(session, location.id)
            state.read_at, state.last_error = now, exc.detail[:300]
        log_event(log, "booking_system.changes_failed", logging.WARNING, detail=exc.detail)
        return None
    finally:
        system.close()
    applied = apply_changes(deps, location, changes)
    with transaction(deps.sessions) as session:
        state = _state(session, location.id)
        state.cursor, state.read_at, state.last_error = next_cursor, now, None
    return applied


def keep_channels(deps: Deps, location: Location) -> int:
    """Google: a push channel on each calendar, opened anew before the old one expires."""
    from ringback.integrations.google_calendar import GoogleCalendarBookingSystem, WatchChannel

    if location.booking_system != "google_calendar" or deps.booking_systems is None:
        return 0
    now = deps.clock()
    with deps.sessions() as session:
        current = list(
            session.scalars(
                select(BookingSystemChannel).where(BookingSystemChannel.location_id == location.id)
            )
        )
    wanted = sorted(set(systems.provider_refs(location).values()))
    fresh = {c.calendar_id for c in current if c.expires_at - CHANNEL_RENEW_MARGIN > now}
    stale = [c for c in current if c.calendar_id not in wanted or c.expires_at <= now]
    due = [calendar for calendar in wanted if calendar not in fresh]
    if not due and not stale:
        return 0
    system = deps.booking_systems(location)
    if not isinstance(system, GoogleCalendarBookingSystem):
        return 0
    opened = 0
    try:
        for calendar in due:
            token = secrets.token_urlsafe(32)
            try:
                channel = system.watch(
                    secrets.token_hex(16),
                    deps.public_url + hook_path("google_calendar", location.id),
                    token,
                    CHANNEL_TTL,
                    calendar=calendar,
                )
            except BookingSystemUnavailable as exc:
                log_event(log, "booking_system.watch_failed", logging.WARNING, detail=exc.detail)
                continue
            with transaction(deps.sessions) as session:
                session.add(
                    BookingSystemChannel(
                        id=channel.id,
                        location_id=location.id,
                        calendar_id=calendar,
                        resource_id=channel.resource_id,
                        token=token,
                        expires_at=channel.expiration,
                    )
                )
            opened += 1
            stale += [c for c in current if c.calendar_id == calendar]
        for old in stale:
            try:
                system.stop_channel(
                    WatchChannel(old.id, old.resource_id, old.calendar_id, old.expires_at)
                )
            except BookingSystemUnavailable:
                if old.expires_at > now:
                    continue  # try again next sweep
            with transaction(deps.sessions) as session:
                row = session.get(BookingSystemChannel, old.id)
                if row is not None:
                    session.delete(row)
    finally:
        system.close()
    return opened


def channel_for_push(session: Session, channel_id: str) -> BookingSystemChannel | None:
    return session.get(BookingSystemChannel, channel_id)


def sweep(deps: Deps, *, force: bool = False) -> dict[str, int]:
    """Keep push channels open and read changes that are due (every five minutes, or at
    once after a push). Reports only non-zero counts."""
    now = deps.clock()
    read = changed = opened = 0
    for location in deps.locations:
        if not systems.uses_system(location):
            continue
        opened += keep_channels(deps, location)
        with deps.sessions() as session:
            state = session.get(BookingSystemState, location.id)
            last = state.read_at if state else None
        if force or last is None or now - last >= systems.READ_EVERY:
            read += 1
            changed += read_changes(deps, location) or 0
    counts = {"system_reads": read, "system_changes": changed, "system_channels": opened}
    return {key: value for key, value in counts.items() if value}


def _state(session: Session, location_id: str) -> BookingSystemState:
    row = session.get(BookingSystemState, location_id)
    if row is None:
        row = BookingSystemState(location_id=location_id)
        session.add(row)
        session.flush()
    return row
