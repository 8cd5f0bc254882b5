"""Owner pages for setting Ringback up: each location's settings (the location, services,
providers, message templates), the log of changes, and the texting registration helper.

Only HTTP lives here; what the pages show and save is built in :mod:`ringback.settings`
(:mod:`~ringback.settings.forms` reads the forms, :mod:`~ringback.settings.store` keeps
the settings). Owners and admins may change settings; anyone else gets 403.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ringback.booking.systems import describe as describe_system
from ringback.config import WEEKDAYS, ConfigError, Location, Reminder
from ringback.conversation.replies import TEMPLATES as REPLY_WORDING
from ringback.db import transaction
from ringback.missed_calls.service import textback_body
from ringback.phones import display
from ringback.roles import can
from ringback.settings import forms, registration, store
from ringback.settings.store import SettingsWatcher
from ringback.web import (
    TEMPLATES,
    SignedIn,
    csrf_protected,
    deps_of,
    staff_frame,
    staff_user,
)

router = APIRouter(prefix="/staff/settings", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Editor = Annotated[SignedIn, Depends(csrf_protected)]
US_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
)
PAGES = {
    "location": ("Location", ""),
    "services": ("Services", "/services"),
    "providers": ("Providers", "/providers"),
    "templates": ("Messages", "/templates"),
    "reminders": ("Reminders", "/reminders"),
    "booking": ("Booking system", "/booking-system"),
}


class _Refresh:
    """ASGI middleware: before each request, pick up settings saved since the last one."""

    def __init__(self, app: ASGIApp, watcher: SettingsWatcher) -> None:
        self.app = app
        self.watcher = watcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            await run_in_threadpool(self.watcher.refresh)
        await self.app(scope, receive, send)


def watch_settings(app: FastAPI, watcher: SettingsWatcher | None) -> None:
    """Every request starts by checking the settings' version (one primary-key read)."""
    if watcher is not None:
        app.add_middleware(_Refresh, watcher=watcher)


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


def _problem(frame: dict[str, Any], status: int, title: str, message: str) -> HTMLResponse:
    return _render("staff/error.html", status, **frame, title=title, message=message)


def _refused(request: Request, user: SignedIn) -> Response | None:
    if can(user, "settings"):
        return None
    frame = staff_frame(deps_of(request), user)
    return _problem(frame, 403, "Not allowed", "Settings are changed by an owner or an admin.")


@router.get("/texting-registration", response_class=HTMLResponse)
def texting_registration(request: Request, user: Viewer, location: str = "") -> Response:
    """US A2P 10DLC: the campaign's description, samples and keywords, ready to paste."""
    deps = deps_of(request)
    frame = staff_frame(deps, user)
    if not can(user, "settings"):
        return _problem(
            frame, 403, "Not allowed", "Texting registration is set up by an owner or an admin."
        )
    locations = list(deps.locations)
    chosen = deps.locations.get(location) if location else locations[0]
    if chosen is None:
        known = ", ".join(loc.id for loc in locations)
        return _problem(
            frame, 404, "Not found", f"location: no location {location!r} (known: {known})"
        )
    found = registration.build(chosen, textback_body(chosen, 0, None), deps.clock())
    return _render(
        "staff/registration.html",
        **frame,
        reg=found,
        location_obj=chosen,
        locations=locations,
    )


# --- the settings pages -------------------------------------------------------------


def _state(request: Request) -> store.Stored | None:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        return store.read(session)


def read_only_reason(stored: store.Stored | None) -> str | None:
    if stored is None:
        return "These settings come from the locations file this server started with."
    if stored.managed_by:
        return (
            f"These settings are managed by the file {stored.managed_by} (RINGBACK_CONFIG): "
            "change them there, or start Ringback without RINGBACK_CONFIG to change them here."
        )
    return None


def _stored_data(stored: store.Stored | None, location: Location) -> tuple[int, dict[str, Any]]:
    """The location's entry in the stored document, and its index there."""
    if stored is not None:
        for index, entry in enumerate(stored.document.get("locations", [])):
            if entry.get("id") == location.id:
                return index, dict(entry)
    return 0, store.location_data(location)


@router.get("", response_class=HTMLResponse)
def overview(request: Request, user: Viewer) -> Response:
    """Every location and what can be set for it, and where the settings come from."""
    refused = _refused(request, user)
    if refused is not None:
        return refused
    deps = deps_of(request)
    stored = _state(request)
    return _render(
        "staff/settings_overview.html",
        **staff_frame(deps, user),
        locations=list(deps.locations),
        pages=PAGES,
        read_only=read_only_reason(stored),
        stored=stored,
        display=display,
    )


def _page(
    request: Request,
    user: SignedIn,
    location_id: str,
    page: str,
    *,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
) -> Response:
    deps = deps_of(request)
    frame = staff_frame(deps, user)
    location = deps.locations.get(location_id)
    if location is None:
        known = ", ".join(loc.id for loc in deps.locations)
        return _problem(
            frame, 404, "Not found", f"location: no location {location_id!r} (known: {known})"
        )
    stored = _state(request)
    values = form if form is not None else _form_of(location, page)
    context: dict[str, Any] = {
        **frame,
        "location_obj": location,
        "locations": list(deps.locations),
        "page": page,
        "pages": PAGES,
        "form": values,
        "errors": errors or {},
        "saved": saved,
        "read_only": read_only_reason(stored),
        "version": stored.version if stored else 0,
        "weekdays": WEEKDAYS,
        "day_names": forms.DAY_NAMES,
        "zones": US_ZONES,
    }
    if page == "services":
        context["rows"] = _row_numbers(values, "services")
    if page == "providers":
        context["rows"] = _row_numbers(values, "providers")
        context["menu"] = [service.name for service in location.services]
    if page == "templates":
        phone = display(location.phone_number)
        context["previews"] = forms.previews(location.name, phone, values)
        context["replies"] = forms.reply_samples(location.name, phone, REPLY_WORDING)
        context["template_fields"] = forms.TEMPLATE_FIELDS
        context["sample_appointment"] = forms.SAMPLE_APPOINTMENT
        context["reminder_previews"] = _reminder_previews(location)
    if page == "reminders":
        context["rows"] = _row_numbers(values, "reminders")
        context["reminder_previews"] = _reminder_previews(location)
        context["placeholders"] = ["{location}", "{when}", "{phone}", "{treatment}"]
    if page == "booking":
        context["systems"] = [
            (name, label, describe_system(location.model_copy(update={"booking_system": name})))
            for name, label in forms.BOOKING_SYSTEMS
        ]
        context["current_system"] = describe_system(location)
    return _render(f"staff/settings_{page}.html", status, **context)


def _reminder_previews(location: Location) -> list[forms.Preview]:
    return forms.reminder_previews(
        location.name,
        display(location.phone_number),
        location.reminders,
        health_details=location.health_details_in_texts,
    )


def _row_numbers(form: dict[str, str], prefix: str) -> list[int]:
    rows = forms.row_numbers(form, prefix)
    # Always one blank row to add to, even without scripts.
    return [*rows, (max(rows) + 1) if rows else 0]


def _form_of(location: Location, page: str) -> dict[str, str]:
    """The page's fields filled from the location's settings."""
    values: dict[str, str] = {}
    if page == "location":
        values.update(
            {
                "name": location.name,
                "phone_number": location.phone_number,
                "front_desk": "\n".join(location.front_desk),
                "ring_seconds": str(location.ring_seconds),
                "timezone": location.timezone,
                "closures": "\n".join(location.closures),
                "texting_hours": location.texting_hours,
                "address": location.address or "",
                "booking_url": location.booking_url or "",
                "booking_mode": forms.booking_mode(location),
                "staff_alert_numbers": "\n".join(location.staff_alert_numbers),
                "staff_alert_emails": "\n".join(location.staff_alert_emails),
                "urgent_phone": location.urgent_phone or "",
                "blocklist": "\n".join(location.blocklist),
            }
        )
        if location.after_hours_skip_ring:
            values["after_hours_skip_ring"] = "on"
        if location.hold_textback_outside_texting_hours:
            values["hold_textback_outside_texting_hours"] = "on"
        for day in WEEKDAYS:
            values[f"hours.{day}"] = location.hours.get(day, "closed")
    elif page == "services":
        for n, service in enumerate(location.services):
            values[f"services.{n}.name"] = service.name
            values[f"services.{n}.aliases"] = ", ".join(service.aliases)
            values[f"services.{n}.minutes"] = str(service.minutes)
            values[f"services.{n}.buffer_minutes"] = str(service.buffer_minutes)
            values[f"services.{n}.price"] = str(store._plain(service.price))
            values[f"services.{n}.prep_note"] = service.prep_note or ""
            if service.consult:
                values[f"services.{n}.consult"] = "on"
            if service.rebook_after_days is not None:
                values[f"services.{n}.rebook_after_days"] = str(service.rebook_after_days)
        for key in ("waitlist", "rebooking", "review_requests"):
            if getattr(location, key):
                values[key] = "on"
        values["review_link"] = location.review_link or ""
    elif page == "providers":
        for n, provider in enumerate(location.providers):
            values[f"providers.{n}.id"] = provider.id
            values[f"providers.{n}.name"] = provider.name
            values[f"providers.{n}.services"] = ", ".join(provider.services)
            for day in WEEKDAYS:
                hours = provider.hours or {}
                values[f"providers.{n}.hours.{day}"] = hours.get(day, "") if hours else ""
    elif page == "templates":
        messages = location.messages
        for name, _label, _kind in forms.TEMPLATE_FIELDS:
            values[f"messages.{name}"] = str(getattr(messages, name))
        values["messages.textback_variants"] = "\n".join(messages.textback_variants)
    elif page == "reminders":
        for n, reminder in enumerate(location.reminders):
            values[f"reminders.{n}.hours_before"] = f"{reminder.hours_before:g}"
            values[f"reminders.{n}.text"] = reminder.text or ""
            values[f"reminders.{n}.text_es"] = reminder.text_es or ""
        cap = location.automated_texts_per_day
        values["automated_texts_per_day"] = "" if cap is None else str(cap)
        if location.no_show_text:
            values["no_show_text"] = "on"
        if location.health_details_in_texts:
            values["health_details_in_texts"] = "on"
    elif page == "booking":
        values["booking_system"] = location.booking_system
        google = location.google_calendar
        values["google_calendar.default_calendar"] = (
            (google.default_calendar or "") if google else ""
        )
        square = location.square
        values["square.location_id"] = square.location_id if square else ""
        values["square.environment"] = square.environment if square else "production"
    return values


_READERS = {
    "location": forms.general,
    "services": forms.services,
    "providers": forms.providers,
    "templates": forms.templates,
    "reminders": forms.reminders,
    "booking": forms.booking_system,
}


async def _save(request: Request, user: SignedIn, location_id: str, page: str) -> Response:
    refused = _refused(request, user)
    if refused is not None:
        return refused
    raw = await request.form()
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    form.pop("csrf_token", None)
    return await run_in_threadpool(_save_form, request, user, location_id, page, form)


def _save_form(
    request: Request, user: SignedIn, location_id: str, page: str, form: dict[str, str]
) -> Response:
    deps = deps_of(request)
    location = deps.locations.get(location_id)
    if location is None:
        return _page(request, user, location_id, page)
    stored = _state(request)
    reason = read_only_reason(stored)
    if reason is not None:
        return _page(request, user, location_id, page, status=409, form=form, errors={"": reason})
    index, current = _stored_data(stored, location)
    try:
        expected = int(form.pop("version", "") or -1)
    except ValueError:
        expected = -1
    try:
        parsed = _READERS[page](current, form)
    except forms.FormProblem as problem:
        return _page(request, user, location_id, page, status=400, form=form, errors=problem.errors)
    try:
        with transaction(deps.sessions) as session:
            store.save_location(
                session,
                location_id,
                parsed.data,
                actor=user.email,
                now=deps.clock(),
                expected_version=expected,
            )
    except ConfigError as exc:
        fields = set(form) | {"phone_number", "name", "hours", "services", "providers", "messages"}
        fields |= {"reminders", "booking_system", "google_calendar", "square"}
        errors = forms.field_errors(exc.issues, index, parsed, fields)
        if not exc.issues:
            errors = {"": str(exc)}
        return _page(request, user, location_id, page, status=400, form=form, errors=errors)
    except (store.StaleSettings, store.SettingsManagedByFile, store.NoSettings) as exc:
        return _page(request, user, location_id, page, status=409, form=form, errors={"": str(exc)})
    watcher = getattr(request.app.state.runtime, "settings_watcher", None)
    if watcher is not None:
        watcher.refresh()
    suffix = PAGES[page][1]
    return RedirectResponse(
        f"/staff/settings/locations/{location_id}{suffix}?saved=1", status_code=303
    )


def _register(page: str) -> None:
    suffix = PAGES[page][1]

    def show(request: Request, user: Viewer, location_id: str, saved: int = 0) -> Response:
        refused = _refused(request, user)
        if refused is not None:
            return refused
        return _page(request, user, location_id, page, saved=bool(saved))

    async def save(request: Request, user: Editor, location_id: str) -> Response:
        return await _save(request, user, location_id, page)

    show.__name__ = f"settings_{page}"
    save.__name__ = f"save_settings_{page}"
    router.add_api_route(
        f"/locations/{{location_id}}{suffix}", show, methods=["GET"], response_class=HTMLResponse
    )
    router.add_api_route(f"/locations/{{location_id}}{suffix}", save, methods=["POST"])


for _name in PAGES:
    _register(_name)


@router.post("/locations/{location_id}/templates/preview", response_class=HTMLResponse)
async def template_preview(request: Request, user: Editor, location_id: str) -> Response:
    """The live preview (htmx): each template as sent, with its encoding and segments."""
    refused = _refused(request, user)
    if refused is not None:
        return refused
    deps = deps_of(request)
    location = deps.locations.get(location_id)
    if location is None:
        return HTMLResponse("", status_code=404)
    raw = await request.form()
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    found = forms.previews(location.name, display(location.phone_number), form)
    return _render("staff/_settings_previews.html", previews=found)


@router.post("/locations/{location_id}/reminders/preview", response_class=HTMLResponse)
async def reminder_preview(request: Request, user: Editor, location_id: str) -> Response:
    """The reminders' live preview (htmx): each as typed, with its encoding and segments."""
    refused = _refused(request, user)
    if refused is not None:
        return refused
    deps = deps_of(request)
    location = deps.locations.get(location_id)
    if location is None:
        return HTMLResponse("", status_code=404)
    raw = await request.form()
    form = {key: str(value) for key, value in raw.items() if isinstance(value, str)}
    typed = []
    for n in forms.row_numbers(form, "reminders"):
        try:
            hours = float(form.get(f"reminders.{n}.hours_before", ""))
        except ValueError:
            continue
        if hours <= 0 or form.get(f"reminders.{n}.remove"):
            continue
        # Unvalidated on purpose: the preview shows what was typed, the save validates it.
        typed.append(
            Reminder.model_construct(
                hours_before=hours,
                text=form.get(f"reminders.{n}.text", "").strip() or None,
                text_es=form.get(f"reminders.{n}.text_es", "").strip() or None,
            )
        )
    found = forms.reminder_previews(
        location.name,
        display(location.phone_number),
        typed,
        health_details="health_details_in_texts" in form,
    )
    return _render("staff/_settings_previews.html", previews=found)


@router.get("/changes", response_class=HTMLResponse)
def changes(request: Request, user: Viewer, location: str = "") -> Response:
    """The audit log: who changed which setting, when, and what it was before and after."""
    refused = _refused(request, user)
    if refused is not None:
        return refused
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        rows = store.recent_changes(session, location_id=location or None)
        entries = [
            {
                "at": _local(row.changed_at, deps, row.location_id),
                "actor": row.actor,
                "location": row.location_id,
                "section": row.section,
                "before": _shown(row.before),
                "after": _shown(row.after),
                "version": row.version,
            }
            for row in rows
        ]
    return _render(
        "staff/settings_changes.html",
        **staff_frame(deps, user),
        entries=entries,
        locations=list(deps.locations),
        chosen=location,
    )


def _local(moment: datetime, deps: Any, location_id: str) -> str:
    location = deps.locations.get(location_id)
    zone = location.zone if location is not None else ZoneInfo("UTC")
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and not value:
        return "(none)"
    if isinstance(value, dict | list):
        import yaml

        return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True)).strip()
    return str(value)
