"""Keeps outside calendars in step with bookings, and reads their busy time.

Writes: each appointment has one :class:`~ringback.models.CalendarSync` row per calendar
that should show it. The job makes the calendar match the appointment *as it is now*
(the event written while booked, removed once cancelled), so retries, reordering and
replays are harmless. An unreachable calendar never loses a booking: the booking is
already committed, the write is retried with backoff for about a day, and the failure is
shown to staff (``last_error``) until it succeeds.

Reads: the sweep re-reads each calendar's busy time every few minutes into
:class:`~ringback.models.ExternalBusy`, so computing offers never waits on the network.
Events Ringback wrote itself (``ringback-`` uids) are skipped: our own appointments are
already busy time.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.orm import Session

from ringback.booking import systems
from ringback.booking.service import calendar_keys, calendar_link
from ringback.config import Location
from ringback.db import after_commit, transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import Appointment, CalendarRead, CalendarSync, ExternalBusy, Patient
from ringback.ports import (
    BookingSystemUnavailable,
    Calendar,
    CalendarEvent,
    CalendarFactory,
    CalendarUnavailable,
)

log = logging.getLogger(__name__)

# Backoff between write attempts: 1, 2, 4 ... minutes, capped at an hour; about a day.
MAX_ATTEMPTS = 30
CLAIM_SECONDS = 120  # a write in progress; after this, another worker may take it over
READ_EVERY = timedelta(minutes=5)
UID_PREFIX = "ringback-"
SYSTEM = systems.SYSTEM_KEY


def retry_delay(attempts: int) -> timedelta:
    return timedelta(minutes=min(60, 2 ** max(0, attempts - 1)))


def event_uid(appointment: Appointment, public_url: str) -> str:
    host = urlsplit(public_url).hostname or "ringback"
    return f"{UID_PREFIX}{appointment.id}@{host}"


def caldav_calendars(timeout: float) -> CalendarFactory:
    """Open calendars as CalDAV collections; passwords come from the named env variables."""
    from ringback.integrations.caldav import CalDavCalendar

    def open_calendar(location: Location, key: str) -> Calendar | None:
        link = calendar_link(location, key)
        if link is None:
            return None
        password = os.environ.get(link.password_env) if link.password_env else None
        return CalDavCalendar(
            link.url, link.username, password, timeout=timeout, default_zone=location.timezone
        )

    return open_calendar


def calendar_event(
    location: Location, appointment: Appointment, patient: Patient | None, public_url: str
) -> CalendarEvent:
    """What the calendar shows: first name and service only, never health details."""
    who = (patient.first_name if patient and patient.first_name else None) or "Patient"
    provider = f" with {appointment.provider_name}" if appointment.provider_name else ""
    return CalendarEvent(
        uid=event_uid(appointment, public_url),
        start=appointment.starts_at,
        end=appointment.ends_at,
        summary=f"{who} - {appointment.service}",
        description=f"{appointment.service}{provider}. Booked via Ringback (#{appointment.id}).",
        location=location.address or location.name,
    )


def sync(deps: Deps, sync_id: int) -> str | None:
    """One attempt at making one calendar match one appointment. Returns the new status."""
    now = deps.clock()
    with transaction(deps.sessions) as session:
        claimed = cast(
            CursorResult[Any],
            session.execute(
                update(CalendarSync)
                .where(
                    CalendarSync.id == sync_id,
                    CalendarSync.status == "pending",
                    CalendarSync.next_attempt_at <= now,
                )
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
            ),
        ).rowcount
        if not claimed:
            return None
        row = session.get(CalendarSync, sync_id)
        assert row is not None
        appointment = session.get(Appointment, row.appointment_id)
        location = deps.locations.get(row.location_id)
        patient = session.get(Patient, appointment.patient_id) if appointment else None
        key, attempts = row.calendar_key, row.attempts
        if appointment is None or location is None:
            row.status, row.last_error, row.next_attempt_at = "failed", "appointment gone", None
            return "failed"
        live = appointment.status == "booked"
        event = calendar_event(location, appointment, patient, deps.public_url)
        work = systems.prepare(location, appointment, patient, row) if key == SYSTEM else None
    error: CalendarUnavailable | None = None
    external_ref: str | None = None
    if work is not None:
        # The clinic's booking system: book, or cancel, there (docs/booking-systems.md).
        try:
            external_ref = systems.carry_out(deps, location, work)
        except BookingSystemUnavailable as exc:
            error = CalendarUnavailable(exc.detail, retry=exc.retry)
        except systems.TakenMeanwhile as exc:
            error = CalendarUnavailable(
                f"the time was taken in the booking system meanwhile ({exc}): call the "
                "patient to move the booking",
                retry=False,
            )
    elif (calendar := deps.calendars(location, key) if deps.calendars else None) is None:
        error = CalendarUnavailable("calendar no longer configured", retry=False)
    else:
        try:
            if live:
                calendar.put_event(event)
            else:
                calendar.delete_event(event.uid)
        except CalendarUnavailable as exc:
            error = exc
        finally:
            calendar.close()
    with transaction(deps.sessions) as session:
        row = session.get(CalendarSync, sync_id)
        assert row is not None
        row.attempts = attempts + 1
        fields: dict[str, Any] = {
            "sync_id": sync_id,
            "appointment_id": row.appointment_id,
            "calendar": key,
        }
        if error is None:
            row.status, row.last_error, row.next_attempt_at = "done", None, None
            row.synced_at = now
            if external_ref is not None:
                row.external_ref = external_ref[:300]
            log_event(log, "calendar.written" if live else "calendar.removed", **fields)
            return "done"
        row.last_error = error.detail[:300]
        if error.retry and row.attempts < MAX_ATTEMPTS:
            row.next_attempt_at = now + retry_delay(row.attempts)
            at = row.next_attempt_at
            log_event(log, "calendar.retrying", logging.WARNING, detail=error.detail, **fields)
            after_commit(session, lambda: deps.jobs.sync_calendar(sync_id, at))
            return "pending"
        row.status, row.next_attempt_at = "failed", None
        log_event(log, "calendar.failed", logging.ERROR, detail=error.detail, **fields)
        return "failed"


def retry(deps: Deps, sync_id: int) -> bool:
    """Staff asked to try a failed or waiting write again now."""
    with transaction(deps.sessions) as session:
        row = session.get(CalendarSync, sync_id)
        if row is None or row.status == "done":
            return False
        row.status, row.attempts, row.next_attempt_at = "pending", 0, deps.clock()
    deps.jobs.sync_calendar(sync_id)
    return True


def problems(session: Session, location_ids: list[str] | None = None) -> list[CalendarSync]:
    """Calendar writes that have failed or are still retrying after an error (for staff)."""
    query = select(CalendarSync).where(
        CalendarSync.status.in_(("pending", "failed")), CalendarSync.last_error.is_not(None)
    )
    if location_ids is not None:
        query = query.where(CalendarSync.location_id.in_(location_ids))
    return list(session.scalars(query.order_by(CalendarSync.updated_at.desc()).limit(200)))


def read_problems(session: Session) -> list[CalendarRead]:
    """Calendars whose last read failed (offers keep the busy time read before)."""
    return list(session.scalars(select(CalendarRead).where(CalendarRead.last_error.is_not(None))))


def refresh_busy(deps: Deps, location: Location, key: str) -> int | None:
    """Re-read one calendar's busy time for the booking horizon. Returns the events kept."""
    now = deps.clock()
    calendar = deps.calendars(location, key) if deps.calendars else None
    if calendar is None:
        return None
    end = now + timedelta(days=location.booking.horizon_days + 1)
    try:
        busy = calendar.busy(now - timedelta(hours=12), end)
        error = None
    except CalendarUnavailable as exc:
        busy, error = [], exc
    finally:
        calendar.close()
    with transaction(deps.sessions) as session:
        state = session.get(CalendarRead, (location.id, key))
        if state is None:
            state = CalendarRead(location_id=location.id, calendar_key=key)
            session.add(state)
        state.attempted_at = now
        if error is not None:
            # Keep the busy time we last read: a stale busy block beats a double booking.
            state.last_error = error.detail[:300]
            log_event(
                log, "calendar.read_failed", logging.WARNING, calendar=key, detail=error.detail
            )
            return None
        state.read_at, state.last_error = now, None
        session.execute(
            delete(ExternalBusy).where(
                ExternalBusy.location_id == location.id, ExternalBusy.calendar_key == key
            )
        )
        kept = [b for b in busy if not b.uid.startswith(UID_PREFIX)]
        session.add_all(
            ExternalBusy(
                location_id=location.id,
                calendar_key=key,
                uid=b.uid[:300],
                starts_at=b.start,
                ends_at=b.end,
            )
            for b in kept
        )
        return len(kept)


def sweep(deps: Deps, *, force: bool = False) -> dict[str, int]:
    """Re-drive due writes and re-read calendars whose busy time is older than READ_EVERY.

    Reports only non-zero counts, like :func:`ringback.outbound_webhooks.service.sweep`.
    """
    now = deps.clock()
    with deps.sessions() as session:
        due = list(
            session.scalars(
                select(CalendarSync.id)
                .where(CalendarSync.status == "pending", CalendarSync.next_attempt_at <= now)
                .limit(500)
            )
        )
        reads = {
            (r.location_id, r.calendar_key): r.attempted_at
            for r in session.scalars(select(CalendarRead))
        }
    for sync_id in due:
        deps.jobs.sync_calendar(sync_id)
    refreshed = 0
    for location in deps.locations:
        for key in calendar_keys(location):
            last: datetime | None = reads.get((location.id, key))
            if force or last is None or now - last >= READ_EVERY:
                refresh_busy(deps, location, key)
                refreshed += 1
        if systems.uses_system(location):
            last = reads.get((location.id, SYSTEM))
            if force or last is None or now - last >= READ_EVERY:
                systems.refresh_busy(deps, location)
                refreshed += 1
    # Only what happened, so the sweep's usual answer is unchanged without calendars.
    counts = {"calendar_writes": len(due), "calendar_reads": refreshed}
    return {key: value for key, value in counts.items() if value}
