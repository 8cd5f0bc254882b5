"""Patient records in the staff app: search, one patient's whole record, CSV export, and
deletion of a patient's data on request (owners only).

Only HTTP lives here: the queries and the erasure are in :mod:`ringback.patients`
(importing, export, erasure, record). A patient
at a location the viewer may not see is the same 404 as one that does not exist. The
JSON form of the record is :mod:`ringback.patients.api`; :data:`router` carries both.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ringback.booking import waitlist
from ringback.config import Location
from ringback.conversation import reminders
from ringback.db import transaction
from ringback.logs import log_event
from ringback.models import Patient
from ringback.patients import api as records_api
from ringback.patients import erasure, export
from ringback.patients import record as records
from ringback.patients import service as patients
from ringback.patients.service import KEPT_OPT_OUT
from ringback.roles import can
from ringback.staff import actions, inbox
from ringback.staff.actions import NOT_TEXTABLE_WHY
from ringback.staff.pages import PAGES
from ringback.web import RowId, SignedIn, csrf_protected, deps_of, staff_frame, staff_user

log = logging.getLogger(__name__)

pages = APIRouter(prefix="/staff", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]

CONFIRM_WORD = "DELETE"
DONE = {
    "name": "Name saved.",
    "attendance": "Attendance saved. A no-show gets one text offering another time.",
    "waitlist": "On the waitlist. A freed slot that fits is texted to them.",
    "waitlist_removed": "Taken off the waitlist.",
}
NAME_LABELS = {"first_name": "First name", "last_name": "Last name", "name": "Name"}
OPT_OUT_SOURCES = {
    "keyword": "replied STOP",
    "carrier": "their carrier reported an opt-out",
    "conversation": "asked the bot to stop texting",
    KEPT_OPT_OUT: "kept from a record deleted on request",
    "deletion_request": "asked when their data was deleted",
}


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(PAGES.get_template(template).render(**context), status_code=status)


def _frame(request: Request, user: SignedIn, **extra: Any) -> dict[str, Any]:
    deps = deps_of(request)
    locations = [loc for loc in deps.locations if user.can_see(loc.id)]
    return {
        **staff_frame(deps, user),
        "locations": locations,
        "multi_location": len(locations) > 1,
        "location_names": {loc.id: loc.name for loc in locations},
        **extra,
    }


def _not_found(request: Request, user: SignedIn, message: str, status: int = 404) -> Response:
    title = {403: "Not allowed", 404: "Not found"}.get(status, "Cannot do that")
    return _render(
        "staff/error.html", status, **_frame(request, user, title=title, message=message)
    )


def _zone(location: Location | None) -> ZoneInfo:
    return location.zone if location else ZoneInfo("UTC")


@pages.get("/patients", response_class=HTMLResponse)
def patients_page(
    request: Request, user: Viewer, q: str = "", location: str = "", deleted: RowId | None = None
) -> Response:
    deps = deps_of(request)
    visible = inbox.visible_location_ids(deps.locations, user)
    if location and location not in visible:
        return _not_found(request, user, f"location: no location {location!r} you can see")
    scope = [location] if location else visible
    with transaction(deps.sessions) as session:
        found = records.search_patients(session, scope, q[:100])
    zones = {loc.id: loc.zone for loc in deps.locations}
    return _render(
        "staff/patients.html",
        **_frame(
            request,
            user,
            q=q,
            chosen=location,
            results=found,
            zones=zones,
            limit=records.SEARCH_LIMIT,
            deleted=deleted,
        ),
    )


@pages.get("/patients/export.csv")
def export_csv(request: Request, user: Viewer, location: str = "") -> Response:
    """Every patient of the chosen (or every visible) location, as CSV."""
    deps = deps_of(request)
    visible = inbox.visible_location_ids(deps.locations, user)
    if location and location not in visible:
        return _not_found(request, user, f"location: no location {location!r} you can see")
    scope = [location] if location else visible
    now = deps.clock()

    def body() -> Iterator[str]:
        with transaction(deps.sessions) as session:
            rows = export.export_patients(session, scope, now)
            yield from export.csv_lines(rows, export.EXPORT_COLUMNS)

    log_event(log, "records.exported", user_id=user.user_id, locations=scope)
    name = f"patients-{location or 'all'}-{now:%Y-%m-%d}.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def _patient_page(
    request: Request,
    user: SignedIn,
    patient_id: RowId,
    *,
    status: int = 200,
    error: str | None = None,
    name_error: patients.InvalidName | None = None,
    name_form: dict[str, str] | None = None,
    text_error: actions.ActionError | None = None,
    text_form: dict[str, str] | None = None,
    done: str | None = None,
    attendance_error: str | None = None,
    waitlist_error: str | None = None,
    waitlist_form: dict[str, Any] | None = None,
) -> Response:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        record = records.patient_record(session, patient_id)
    # Outside the transaction: on SQLite a second one would wait for this one's lock.
    if record is None or not user.can_see(record.patient.location_id):
        return _not_found(request, user, f"patient: no patient {patient_id}")
    location = deps.locations.get(record.patient.location_id)
    waiting = waitlist.listing(deps, [record.patient.location_id], patient_id=patient_id)
    blocked = record.consent.blocked
    return _render(
        "staff/patient.html",
        status,
        **_frame(
            request,
            user,
            r=record,
            patient=record.patient,
            location_obj=location,
            zone=_zone(location),
            blocked_why=NOT_TEXTABLE_WHY.get(blocked, blocked) if blocked else None,
            opt_out_how=OPT_OUT_SOURCES,
            can_delete=can(user, "erase_patients"),
            now=deps.clock(),
            attendance_error=attendance_error,
            waitlist_entries=[(e, waitlist_label(e.windows)) for e in waiting],
            waitlist_error=waitlist_error,
            waitlist_form=waitlist_form or {},
            waitlist_days=waitlist.DAY_NAMES,
            confirm_word=CONFIRM_WORD,
            error=error,
            name_error=name_error,
            name_error_text=f"{NAME_LABELS[name_error.field]}: {name_error.problem}"
            if name_error
            else "",
            name_form=name_form
            or {
                "first_name": record.patient.first_name or "",
                "last_name": record.patient.last_name or "",
            },
            text_error=text_error,
            text_form=text_form or {},
            nonce=secrets.token_urlsafe(24),
            max_text=actions.MAX_REPLY,
            done=DONE.get(done or ""),
        ),
    )


@pages.get("/patients/{patient_id}", response_class=HTMLResponse)
def patient_page(request: Request, patient_id: RowId, user: Viewer, done: str = "") -> Response:
    return _patient_page(request, user, patient_id, done=done)


@pages.post("/patients/{patient_id}/appointments/{appointment_id}/attendance")
def mark_attendance(
    request: Request,
    patient_id: RowId,
    appointment_id: RowId,
    user: Poster,
    attendance: Annotated[str, Form()] = "",
) -> Response:
    """Kept or no-show, after the visit; a refusal is shown on the page, nothing changes."""
    deps = deps_of(request)
    try:
        appointment, _ = reminders.attend(deps, appointment_id, attendance, user.can_see)
    except reminders.NoShowError as error:
        if error.status == 404:
            return _not_found(request, user, error.problem)
        return _patient_page(
            request, user, patient_id, status=error.status, attendance_error=error.problem
        )
    if appointment.patient_id != patient_id:
        return _not_found(request, user, f"appointment: no appointment {appointment_id}")
    log_event(
        log,
        "records.attendance",
        user_id=user.user_id,
        appointment_id=appointment_id,
        attendance=attendance,
    )
    return RedirectResponse(f"/staff/patients/{patient_id}?done=attendance", status_code=303)


def waitlist_label(windows: list[dict[str, Any]]) -> str:
    """ "Tue, Thu 12:00-17:00" for staff; "any time" without windows."""
    if not windows:
        return "any time"
    parts = []
    for w in windows:
        days = ", ".join(waitlist.DAY_NAMES[d].title() for d in w.get("days", [])) or "Any day"
        parts.append(f"{days} {w.get('from', '00:00')}-{w.get('to', '23:59')}")
    return "; ".join(parts)


@pages.post("/patients/{patient_id}/waitlist")
def add_to_waitlist(
    request: Request,
    patient_id: RowId,
    user: Poster,
    service: Annotated[str, Form()] = "",
    days: Annotated[list[str] | None, Form()] = None,
    time_from: Annotated[str, Form()] = "",
    time_to: Annotated[str, Form()] = "",
) -> Response:
    """Put the patient on the waitlist; a bad value is shown on the page, nothing saved."""
    form = {"service": service, "days": days or [], "from": time_from, "to": time_to}
    windows = (
        [{"days": days or [], "from": time_from or "00:00", "to": time_to or "23:59"}]
        if days or time_from or time_to
        else []
    )
    try:
        entry = waitlist.add_for_patient(
            deps_of(request), patient_id, service, windows, user.can_see
        )
    except waitlist.WaitlistError as error:
        if error.status == 404:
            return _not_found(request, user, error.problem)
        return _patient_page(
            request,
            user,
            patient_id,
            status=400 if error.status == 422 else error.status,
            waitlist_error=error.problem,
            waitlist_form=form,
        )
    log_event(log, "records.waitlisted", user_id=user.user_id, entry_id=entry.id)
    return RedirectResponse(f"/staff/patients/{patient_id}?done=waitlist", status_code=303)


@pages.post("/patients/{patient_id}/waitlist/{entry_id}/remove")
def remove_from_waitlist(
    request: Request, patient_id: RowId, entry_id: RowId, user: Poster
) -> Response:
    try:
        entry = waitlist.remove_entry(deps_of(request), entry_id, user.can_see)
    except waitlist.WaitlistError as error:
        return _not_found(request, user, error.problem)
    if entry.patient_id != patient_id:
        return _not_found(request, user, f"waitlist entry: no entry {entry_id}")
    log_event(log, "records.waitlist_removed", user_id=user.user_id, entry_id=entry_id)
    return RedirectResponse(f"/staff/patients/{patient_id}?done=waitlist_removed", status_code=303)


@pages.post("/patients/{patient_id}/name")
def rename_patient(
    request: Request,
    patient_id: RowId,
    user: Poster,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
) -> Response:
    """Set the patient's first and last name; a bad value is shown, nothing is saved."""
    deps = deps_of(request)
    form = {"first_name": first_name, "last_name": last_name}
    try:
        with transaction(deps.sessions) as session:
            patient = session.get(Patient, patient_id, with_for_update=True)
            if patient is None or not user.can_see(patient.location_id):
                found = False
            else:
                found = True
                if patient.deleted_at is not None:
                    raise patients.InvalidName("name", "this patient's data was deleted on request")
                changed = patients.rename(patient, first_name, last_name, deps.clock())
    except patients.InvalidName as error:
        log_event(
            log,
            "records.rename_refused",
            logging.INFO,
            user_id=user.user_id,
            patient_id=patient_id,
            field=error.field,
        )
        return _patient_page(
            request, user, patient_id, status=400, name_error=error, name_form=form
        )
    if not found:
        return _not_found(request, user, f"patient: no patient {patient_id}")
    log_event(log, "records.renamed", user_id=user.user_id, patient_id=patient_id, changed=changed)
    return RedirectResponse(f"/staff/patients/{patient_id}?done=name", status_code=303)


@pages.post("/patients/{patient_id}/text")
def text_patient(
    request: Request,
    patient_id: RowId,
    user: Poster,
    body: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
) -> Response:
    """Start a text to the patient from their record (consent checked); it lands in their
    open conversation, or opens one that staff own."""
    deps = deps_of(request)
    try:
        message = actions.start_text(deps, patient_id, user, body, nonce)
    except actions.PatientNotFound:
        return _not_found(request, user, f"patient: no patient {patient_id}")
    except actions.ActionError as error:
        log_event(
            log,
            "records.text_refused",
            logging.INFO,
            user_id=user.user_id,
            patient_id=patient_id,
            field=error.field,
        )
        return _patient_page(
            request,
            user,
            patient_id,
            status=error.status,
            text_error=error,
            text_form={"body": body},
        )
    return RedirectResponse(
        f"/staff/conversations/{message.conversation_id}?done=reply", status_code=303
    )


@pages.post("/patients/{patient_id}/delete")
def delete_patient(
    request: Request,
    patient_id: RowId,
    user: Poster,
    confirm: Annotated[str, Form()] = "",
    stop_texts: Annotated[str, Form()] = "",
) -> Response:
    """Erase the patient's personal data. Owners only; the form must be confirmed."""
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        record = records.patient_record(session, patient_id)
        visible = record is not None and user.can_see(record.patient.location_id)
    if not visible:
        return _not_found(request, user, f"patient: no patient {patient_id}")
    if not can(user, "erase_patients"):
        return _not_found(request, user, "Only an owner can delete a patient's data.", status=403)
    if confirm.strip().upper() != CONFIRM_WORD:
        return _patient_page(
            request,
            user,
            patient_id,
            status=400,
            error=f"confirm: type {CONFIRM_WORD} to delete this patient's data"
            + (f", got {confirm.strip()!r}" if confirm.strip() else ""),
        )
    try:
        with transaction(deps.sessions) as session:
            report = erasure.delete_patient(
                session, patient_id, deps.clock(), stop_texts=bool(stop_texts)
            )
    except erasure.RecordError as exc:
        return _not_found(request, user, str(exc), status=exc.status)
    log_event(
        log,
        "records.deleted",
        user_id=user.user_id,
        patient_id=patient_id,
        location=report.location_id,
        opt_out_kept=report.opt_out_kept,
    )
    return RedirectResponse(f"/staff/patients?deleted={patient_id}", status_code=303)


router = APIRouter()
router.include_router(pages)
router.include_router(records_api.router)
