"""The staff inbox pages: queues, a conversation, its actions, and live updates.

Server-rendered (Jinja2); every page works without JavaScript. With it, a few lines of
``/static/staff-live.js`` listen to ``/staff/events`` (Server-Sent Events) and have the
vendored htmx re-fetch the parts of the page that changed, so new texts and handoffs
appear without a reload. Queries live in :mod:`ringback.staff.inbox`, writes in
:mod:`ringback.staff.actions`; this module only speaks HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ringback import readable
from ringback.booking import status as appointment_status
from ringback.config import Location
from ringback.conversation.machine import State
from ringback.db import transaction
from ringback.logs import log_event
from ringback.models import Appointment, Patient
from ringback.patients.service import why_not_textable
from ringback.phones import display as display_phone
from ringback.staff import actions, inbox
from ringback.web import (
    RowId,
    SignedIn,
    csrf_protected,
    deps_of,
    row_id_of,
    staff_frame,
    staff_user,
)

log = logging.getLogger(__name__)

router = APIRouter(prefix="/staff", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]

# Live updates: how often each open page's stream looks for changes, and how often it
# sends a comment so proxies keep the connection. A stream ends after STREAM_SECONDS and
# the browser reconnects by itself, signing in afresh (a signed-out session gets no more
# events) and catching up through its "ready" event. Short streams also matter because
# uvicorn's graceful shutdown waits for open responses: this bounds a restart's wait.
POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 10.0
STREAM_SECONDS = 25.0
RETRY_MS = 1000

PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)

DONE = {
    "reply": "Reply queued. The bot is paused in this conversation until you hand it back.",
    "hand-back": "Handed back to the bot. It carries on from what the patient told it.",
    "resolve": "Resolved: closed as called back, not counted as booked or lost.",
    "name": "Name saved.",
    "booked": "Marked booked.",
    "lost": "Marked lost.",
    "assign": "Assignment saved.",
    "note": "Note added.",
}
DELIVERY = {
    "pending": "Queued",
    "sending": "Sending",
    "accepted": "Sent to carrier",
    "scheduled": "Scheduled",
    "queued": "Sent to carrier",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "undelivered": "Not delivered",
    "failed": "Failed",
    "canceled": "Canceled",
    "suppressed": "Not sent",
    "received": "Received",
}
SENDERS = {
    "textback": "Text-back",
    "reply": "Bot",
    "nudge": "Bot nudge",
    "keyword": "Automatic answer",
    "staff": "Staff",
    "inbound": "Patient",
}
MISS_REASONS = {
    "staff_busy": "Front desk was busy",
    "no_answer": "Nobody answered",
    "after_hours": "After hours",
    "caller_hung_up": "Caller hung up before anyone answered",
    "failed": "The call failed",
}
REASONS = {
    "asked_for_person": "Asked for a person",
    "medical_question": "Medical question",
    "appointment_change": "Appointment change",
    "appointment": "About an appointment",
    "consult": "Wants a consultation",
    "pricing": "Price question",
    "urgent": "Urgent symptom",
    "not_qualified": "Could not qualify",
    "ready_to_book": "Ready to book",
    "after_booking_link": "Wrote after the booking link",
    "treatment_not_understood": "Treatment not understood",
    "time_not_understood": "Time not understood",
    "patient_not_understood": "New or returning not understood",
    "appointment_not_understood": "Appointment not understood",
    "no_reply": "No reply",
    "opted_out": "Opted out",
    "wrong_number": "Wrong number",
    "booking_link": "Sent the booking link",
    "booked": "Booked",
    "lost": "Lost",
    "resolved": "Called back, resolved",
    "offered": "Offered times",
    "no_suitable_time": "No offered time suited",
    "offer_not_understood": "Answer to the offered times not understood",
    "rescheduled": "Rescheduled by text",
    "cancelled": "Cancelled by text",
    "confirmed": "Confirmed by text",
    "acknowledged": "Thanked us, nothing to answer",
}
# How a refused action's field reads on the page, per action where it differs.
FIELD_LABELS = {
    ("reply", "body"): "Reply",
    ("note", "body"): "Note",
    ("resolve", "note"): "Note",
    "first_name": "First name",
    "last_name": "Last name",
    "name": "Name",
    "value": "Booked value",
    "reason": "Reason lost",
    "assignee": "Assigned to",
    "nonce": "Form",
    "conversation": "Conversation",
    "location": "Location",
}
TIMING = {"asap": "As soon as possible", "flexible": "Flexible", "unsure": "Not sure yet"}
LOST_REASONS = (
    "Price",
    "Booked elsewhere",
    "No availability that suits",
    "Not a candidate",
    "Stopped replying",
    "Just browsing",
)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    """'Tue Nov 24, 10:02 AM' in the location's zone."""
    return "" if moment is None else readable.when(moment, zone, register="page")


def _window(pair: list[str] | tuple[str, ...]) -> str:
    """A captured time window (ISO start/end in the location's zone), for people."""
    start, end = (datetime.fromisoformat(p) for p in pair[:2])
    return f"{readable.day(start)}, {readable.clock(start)} – {readable.clock(end)}"


def _money(cents: int | None) -> str:
    return "" if cents is None else f"${cents / 100:,.2f}"


def _label(table: dict[str, str]) -> Callable[[str | None], str]:
    def label(value: str | None) -> str:
        return "" if value is None else table.get(value, value.replace("_", " ").capitalize())

    return label


def _name(patient: Patient) -> str:
    names = " ".join(n for n in (patient.first_name, patient.last_name) if n)
    return names or display_phone(patient.phone)


PAGES.filters.update(
    appointment_status=appointment_status.label,
    appointment_confirmation=appointment_status.confirmation,
    patient_name=_name,
    local=_local,
    phone=display_phone,
    money=_money,
    window=_window,
    status_label=_label({str(k): v for k, v in inbox.QUEUE_LABELS.items()}),
    delivery=_label(DELIVERY),
    sender=_label(SENDERS),
    miss_reason=_label(MISS_REASONS),
    reason=_label(REASONS),
    timing=_label(TIMING),
)


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(PAGES.get_template(template).render(**context), status_code=status)


class _Frame:
    """What every inbox page shows around its content: who, where, the queues and counts."""

    def __init__(self, request: Request, user: SignedIn, location: str | None) -> None:
        deps = self.deps = deps_of(request)
        self.user = user
        self.locations: list[Location] = [loc for loc in deps.locations if user.can_see(loc.id)]
        self.visible = inbox.visible_location_ids(deps.locations, user)
        self.location = location if location in self.visible else None
        self.scope = [self.location] if self.location else self.visible

    def context(self, counts: dict[inbox.Queue, int], marker: str, **extra: Any) -> dict[str, Any]:
        return {
            **staff_frame(self.deps, self.user, location=self.location, counts=counts),
            "marker": marker,
            "locations": self.locations,
            "multi_location": len(self.locations) > 1,
            "location_names": {loc.id: loc.name for loc in self.locations},
            **extra,
        }


def _not_found(request: Request, frame: _Frame, what: str) -> HTMLResponse:
    with transaction(deps_of(request).sessions) as session:
        counts = inbox.queue_counts(session, frame.visible)
    return _render(
        "staff/error.html", 404, **frame.context(counts, "", title="Not found", message=what)
    )


@router.get("", response_class=HTMLResponse)
def inbox_page(
    request: Request, user: Viewer, queue: str = "needs_staff", location: str = ""
) -> Response:
    frame = _Frame(request, user, location or None)
    if location and frame.location is None:
        return _not_found(request, frame, f"location: no location {location!r} you can see")
    if queue not in inbox.QUEUES:
        return _not_found(request, frame, f"queue: no queue {queue!r}")
    current: inbox.Queue = queue
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        counts = inbox.queue_counts(session, frame.scope)
        rows = inbox.conversation_list(session, frame.scope, current)
        urgent = (
            inbox.conversation_list(session, frame.scope, "urgent")
            if current != "urgent" and counts["urgent"]
            else []
        )
        marker = inbox.change_marker(session, frame.visible)
    zones = {loc.id: loc.zone for loc in frame.locations}
    return _render(
        "staff/inbox.html",
        **frame.context(
            counts,
            marker,
            queue=current,
            queue_label=inbox.QUEUE_LABELS[current],
            rows=rows,
            urgent=urgent,
            zones=zones,
            limit=inbox.LIST_LIMIT,
            self_url=_inbox_url(current, frame.location),
        ),
    )


def _inbox_url(queue: str, location: str | None) -> str:
    query = f"?queue={queue}" + (f"&location={location}" if location else "")
    return f"/staff{query}"


def error_text(action: str, error: actions.ActionError) -> str:
    """A refused action, for people: the field's label, then what was wrong."""
    if isinstance(error, actions.NotTextable):
        return f"Not sent. {error.problem}"
    label = FIELD_LABELS.get((action, error.field)) or FIELD_LABELS.get(error.field, error.field)
    return f"{label}: {error.problem}"


def _conversation_page(
    request: Request,
    user: SignedIn,
    conversation_id: RowId,
    *,
    status: int = 200,
    error: actions.ActionError | None = None,
    failed: str | None = None,
    form: dict[str, str] | None = None,
    done: str | None = None,
) -> Response:
    deps = deps_of(request)
    frame = _Frame(request, user, None)
    with transaction(deps.sessions) as session:
        detail = inbox.conversation_detail(session, user, conversation_id)
        if detail is not None:
            counts = inbox.queue_counts(session, frame.scope)
            marker = inbox.change_marker(session, frame.visible)
            team = inbox.colleagues(session, detail.conversation.location_id)
            about = State.from_json(detail.conversation.state).appointment_id
            appointment = session.get(Appointment, about) if about else None
            appointment_label = appointment_status.label(appointment) if appointment else ""
    if detail is None:
        return _not_found(request, frame, f"conversation: no conversation {conversation_id}")
    location = deps.locations.get(detail.conversation.location_id)
    zone = location.zone if location else ZoneInfo("UTC")
    blocked = why_not_textable(detail.patient)
    return _render(
        "staff/conversation.html",
        status,
        **frame.context(
            counts,
            marker,
            detail=detail,
            c=detail.conversation,
            patient=detail.patient,
            state=State.from_json(detail.conversation.state),
            appointment_label=appointment_label,
            location_obj=location,
            zone=zone,
            team=team,
            blocked=blocked,
            blocked_why=actions.NOT_TEXTABLE_WHY.get(blocked, blocked) if blocked else None,
            alerts=[m for m in detail.messages if m.kind == "alert"],
            thread=[m for m in detail.messages if m.kind != "alert"],
            error=error,
            error_text=error_text(failed or "", error) if error else "",
            failed=failed,
            form=form or {},
            done=DONE.get(done or ""),
            nonce=secrets.token_urlsafe(18),
            lost_reasons=LOST_REASONS,
            max_reply=actions.MAX_REPLY,
            self_url=f"/staff/conversations/{conversation_id}",
        ),
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(
    request: Request, conversation_id: RowId, user: Viewer, done: str = ""
) -> Response:
    return _conversation_page(request, user, conversation_id, done=done)


def _act(
    request: Request,
    user: SignedIn,
    conversation_id: RowId,
    name: str,
    action: Callable[[], object],
    form: dict[str, str] | None = None,
) -> Response:
    """Run an action; redirect to the page on success, show the page with the error if not."""
    try:
        action()
    except actions.ActionError as error:
        log_event(
            log,
            "staff.action_refused",
            logging.INFO,
            action=name,
            field=error.field,
            status=error.status,
            conversation_id=conversation_id,
        )
        return _conversation_page(
            request,
            user,
            conversation_id,
            status=error.status,
            error=error,
            failed=name,
            form=form,
        )
    return RedirectResponse(f"/staff/conversations/{conversation_id}?done={name}", status_code=303)


@router.post("/conversations/{conversation_id}/reply")
def post_reply(
    request: Request,
    conversation_id: RowId,
    user: Poster,
    body: Annotated[str, Form()] = "",
    nonce: Annotated[str, Form()] = "",
) -> Response:
    deps = deps_of(request)
    return _act(
        request,
        user,
        conversation_id,
        "reply",
        lambda: actions.reply(deps, conversation_id, user, body, nonce),
        {"body": body},
    )


@router.post("/conversations/{conversation_id}/resolve")
def post_resolve(
    request: Request, conversation_id: RowId, user: Poster, note: Annotated[str, Form()] = ""
) -> Response:
    deps = deps_of(request)
    return _act(
        request,
        user,
        conversation_id,
        "resolve",
        lambda: actions.resolve(deps, conversation_id, user, note),
        {"note": note},
    )


@router.post("/conversations/{conversation_id}/name")
def post_name(
    request: Request,
    conversation_id: RowId,
    user: Poster,
    first_name: Annotated[str, Form()] = "",
    last_name: Annotated[str, Form()] = "",
) -> Response:
    deps = deps_of(request)
    return _act(
        request,
        user,
        conversation_id,
        "name",
        lambda: actions.rename_patient(deps, conversation_id, user, first_name, last_name),
        {"first_name": first_name, "last_name": last_name},
    )


@router.post("/conversations/{conversation_id}/hand-back")
def post_hand_back(
    request: Request,
    conversation_id: RowId,
    user: Poster,
    already_answered: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    deps = deps_of(request)
    answered = already_answered == "yes"
    return _act(
        request,
        user,
        conversation_id,
        "hand-back",
        lambda: actions.hand_back(deps, conversation_id, user, already_answered=answered),
    )


_DOLLARS = re.compile(r"^\d{1,7}(\.\d{1,2})?$")


def parse_dollars(raw: str) -> int:
    """'480', '$1,200.50' -> cents; anything else is an error naming the field."""
    text = raw.strip().replace("$", "").replace(",", "").strip()
    if not _DOLLARS.match(text):
        raise actions.InvalidInput(
            "value", f"expected an amount in dollars like 480 or 480.00, got {raw.strip()!r}"
        )
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as exc:  # pragma: no cover - the pattern already rules it out
        raise actions.InvalidInput("value", f"not an amount: {raw!r}") from exc


@router.post("/conversations/{conversation_id}/booked")
def post_booked(
    request: Request, conversation_id: RowId, user: Poster, value: Annotated[str, Form()] = ""
) -> Response:
    deps = deps_of(request)

    def book() -> None:
        # Left empty: the captured treatment's menu price (refused when there is none).
        cents = parse_dollars(value) if value.strip() else None
        actions.mark_booked(deps, conversation_id, user, cents)

    return _act(request, user, conversation_id, "booked", book, {"value": value})


@router.post("/conversations/{conversation_id}/lost")
def post_lost(
    request: Request, conversation_id: RowId, user: Poster, reason: Annotated[str, Form()] = ""
) -> Response:
    deps = deps_of(request)
    return _act(
        request,
        user,
        conversation_id,
        "lost",
        lambda: actions.mark_lost(deps, conversation_id, user, reason),
        {"reason": reason},
    )


@router.post("/conversations/{conversation_id}/assign")
def post_assign(
    request: Request, conversation_id: RowId, user: Poster, assignee: Annotated[str, Form()] = ""
) -> Response:
    deps = deps_of(request)

    def assign() -> None:
        target = row_id_of(assignee)
        if assignee.strip() and target is None:
            raise actions.InvalidInput("assignee", f"expected a colleague's id, got {assignee!r}")
        actions.assign(deps, conversation_id, user, target)

    return _act(request, user, conversation_id, "assign", assign, {"assignee": assignee})


@router.post("/conversations/{conversation_id}/notes")
def post_note(
    request: Request, conversation_id: RowId, user: Poster, body: Annotated[str, Form()] = ""
) -> Response:
    deps = deps_of(request)
    return _act(
        request,
        user,
        conversation_id,
        "note",
        lambda: actions.add_note(deps, conversation_id, user, body),
        {"note": body},
    )


@router.get("/events")
async def events(request: Request, user: Viewer) -> StreamingResponse:
    """Server-Sent Events: ``ready`` with the current change marker on connect, then
    ``change`` each time it moves. A page compares the marker with its own and refreshes."""
    deps = deps_of(request)
    visible = inbox.visible_location_ids(deps.locations, user)

    def marker() -> str:
        with transaction(deps.sessions) as session:
            return inbox.change_marker(session, visible)

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        started = beat = loop.time()
        last = await run_in_threadpool(marker)
        yield f"retry: {RETRY_MS}\nevent: ready\ndata: {last}\n\n"
        while loop.time() - started < STREAM_SECONDS:
            await asyncio.sleep(POLL_SECONDS)
            if await request.is_disconnected():
                return
            now = loop.time()
            current = await run_in_threadpool(marker)
            if current != last:
                last, beat = current, now
                yield f"event: change\ndata: {current}\n\n"
            elif now - beat >= HEARTBEAT_SECONDS:
                beat = now
                yield ": heartbeat\n\n"

    log_event(log, "staff.events_opened", logging.DEBUG, user_id=user.user_id)
    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
