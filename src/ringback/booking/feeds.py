"""Calendars in the staff app and for calendar apps.

* ``GET /calendar/{location}/{key}.ics?token=...``: an iCalendar feed of booked
  appointments per provider (``key`` = provider id) or for the whole location
  (``key`` = ``location``), which Google Calendar, Apple Calendar or Outlook can subscribe
  to. The token is an HMAC of location and key with the deployment's secret, so a feed URL
  cannot be guessed from another; events carry first name and service only.
* ``GET /staff/calendar``: the next two weeks of appointments, calendar writes that are
  failing or retrying (with Retry), calendars that could not be read, and the feed URLs.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from ringback.booking import calendar_sync, links, systems
from ringback.booking import status as appointment_status
from ringback.booking.service import LOCATION_CALENDAR
from ringback.config import Location
from ringback.deps import Deps
from ringback.integrations.icalendar import feed_to_ics
from ringback.logs import log_event
from ringback.models import Appointment, CalendarSync, Patient
from ringback.readable import when
from ringback.staff import inbox
from ringback.web import (
    TEMPLATES,
    RowId,
    SignedIn,
    csrf_protected,
    deps_of,
    staff_frame,
    staff_user,
)

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]
FEED_PAST = timedelta(days=30)


def feed_keys(location: Location) -> list[tuple[str, str]]:
    """(key, label) of every feed a location offers: the whole location, then each provider."""
    return [(LOCATION_CALENDAR, f"{location.name} (everyone)")] + [
        (p.id, f"{location.name}: {p.name}") for p in location.providers
    ]


def feed_url(deps: Deps, location_id: str, key: str) -> str:
    token = links.feed_token(deps.link_secret, location_id, key)
    return f"{deps.public_url}/calendar/{location_id}/{key}.ics?token={token}"


@router.get("/calendar/{location_id}/{key}.ics")
def ics_feed(request: Request, location_id: str, key: str, token: str = "") -> Response:
    deps = deps_of(request)
    location = deps.locations.get(location_id)
    known = location is not None and key in {k for k, _ in feed_keys(location)}
    if (
        location is None
        or not known
        or not links.check_feed_token(deps.link_secret, location_id, key, token)
    ):
        return Response("No such calendar feed.\n", status_code=404, media_type="text/plain")
    now = deps.clock()
    with deps.sessions() as session:
        query = (
            select(Appointment, Patient)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.location_id == location_id,
                Appointment.status == "booked",
                Appointment.starts_at >= now - FEED_PAST,
            )
            .order_by(Appointment.starts_at)
        )
        if key != LOCATION_CALENDAR:
            query = query.where(Appointment.provider_id == key)
        events = [
            calendar_sync.calendar_event(location, appointment, patient, deps.public_url)
            for appointment, patient in session.execute(query)
        ]
    label = dict(feed_keys(location))[key]
    body = feed_to_ics(label, events, now)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        # Patients' names and treatments: not kept by any cache (ringback.guards says so too).
        headers={"Cache-Control": "no-store"},
    )


@router.get("/staff/calendar", response_class=HTMLResponse)
def calendar_page(request: Request, user: Viewer, retried: RowId | None = None) -> Response:
    deps = deps_of(request)
    visible = inbox.visible_location_ids(deps.locations, user)
    locations = [loc for loc in deps.locations if loc.id in visible]
    now = deps.clock()
    upcoming: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    with deps.sessions() as session:
        rows = session.execute(
            select(Appointment, Patient)
            .join(Patient, Patient.id == Appointment.patient_id)
            .where(
                Appointment.location_id.in_(visible),
                Appointment.status.in_(("booked", "cancelled")),
                Appointment.starts_at >= now,
                Appointment.starts_at < now + timedelta(days=14),
            )
            .order_by(Appointment.starts_at)
            .limit(300)
        )
        zones = {loc.id: loc.zone for loc in locations}
        for appointment, patient in rows:
            upcoming.append(
                {
                    "when": when(appointment.starts_at, zones[appointment.location_id]),
                    "service": appointment.service,
                    "provider": appointment.provider_name or "",
                    "patient": patient.first_name or "",
                    "patient_id": patient.id,
                    "source": appointment.source,
                    "confirmed": appointment.confirmed_at is not None,
                    "status": appointment_status.confirmation(appointment),
                    "status_label": appointment_status.label(appointment),
                }
            )
        for sync in calendar_sync.problems(session, visible):
            booked = session.get(Appointment, sync.appointment_id)
            problems.append(
                {
                    "id": sync.id,
                    "calendar": _calendar_label(deps, sync.location_id, sync.calendar_key),
                    "status": sync.status,
                    "attempts": sync.attempts,
                    "error": sync.last_error,
                    "appointment": booked.service if booked else "",
                    "when": when(booked.starts_at, zones[sync.location_id])
                    if booked and sync.location_id in zones
                    else "",
                }
            )
        read_errors = [
            {
                "calendar": _calendar_label(deps, r.location_id, r.calendar_key),
                "error": r.last_error,
            }
            for r in calendar_sync.read_problems(session)
            if r.location_id in visible
        ]
    feeds = [
        {"label": label, "url": feed_url(deps, loc.id, key)}
        for loc in locations
        if loc.schedules
        for key, label in feed_keys(loc)
    ]
    page = TEMPLATES.get_template("staff/calendar.html").render(
        **staff_frame(deps, user),
        upcoming=upcoming,
        problems=problems,
        read_errors=read_errors,
        feeds=feeds,
        retried=retried,
    )
    return HTMLResponse(page)


@router.post("/staff/calendar/syncs/{sync_id}/retry")
def retry_sync(request: Request, sync_id: RowId, user: Poster) -> Response:
    deps = deps_of(request)
    visible = inbox.visible_location_ids(deps.locations, user)
    with deps.sessions() as session:
        sync = session.get(CalendarSync, sync_id)
        location_id = sync.location_id if sync else None
    if location_id is None or location_id not in visible or not calendar_sync.retry(deps, sync_id):
        page = TEMPLATES.get_template("staff/error.html").render(
            **staff_frame(deps, user),
            title="Nothing to retry",
            message=f"Calendar write {sync_id} is not waiting or failed (or is not yours).",
        )
        return HTMLResponse(page, status_code=404)
    log_event(log, "staff.calendar_retried", sync_id=sync_id, user_id=user.user_id)
    return RedirectResponse(f"/staff/calendar?retried={sync_id}", status_code=303)


def _calendar_label(deps: Deps, location_id: str, key: str) -> str:
    """A calendar key as staff know it: the booking system's name for its own row."""
    location = deps.locations.get(location_id)
    if key == systems.SYSTEM_KEY and location is not None:
        return systems.SYSTEM_NAMES.get(location.booking_system, key)
    return key
