"""Owner and admin pages for the booking systems: each location's system, what it can do,
connecting Google Calendar, and mapping a location to Square (docs/booking-systems.md).

Only HTTP lives here; what the pages show is built in :mod:`ringback.booking.systems`.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringback.booking import square_mapping, systems
from ringback.config import ConfigError, Location, Settings
from ringback.db import transaction
from ringback.deps import Deps
from ringback.ports import BookingSystemUnavailable
from ringback.roles import can
from ringback.settings import store
from ringback.settings.pages import read_only_reason
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


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


# --- booking systems ----------------------------------------------------------------------

GOOGLE_STATE_COOKIE = "rb_google_state"
GOOGLE_CALLBACK = "/staff/settings/booking-systems/google/callback"


def _refused(deps: Deps, user: SignedIn) -> HTMLResponse | None:
    if can(user, "booking_systems"):
        return None
    return _render(
        "staff/error.html",
        403,
        **staff_frame(deps, user),
        title="Not allowed",
        message="Booking systems are connected by an owner or an admin.",
    )


@router.get("/booking-systems", response_class=HTMLResponse)
def booking_systems_page(
    request: Request, user: Viewer, connected: str = "", problem: str = ""
) -> Response:
    """Each location's booking system, what it can do, and Google's Connect button."""
    deps = deps_of(request)
    refused = _refused(deps, user)
    if refused is not None:
        return refused
    opener = deps.booking_systems
    rows = []
    for location in deps.locations:
        google = location.google_calendar
        needs_oauth = location.booking_system == "google_calendar" and (
            google is not None and google.auth == "oauth"
        )
        rows.append(
            {
                "location": location,
                "described": systems.describe(location),
                "needs_oauth": needs_oauth,
                "connected": isinstance(opener, systems.OpenBookingSystems)
                and opener.connected(location.id, "google_calendar"),
            }
        )
    return _render(
        "staff/booking_systems.html",
        **staff_frame(deps, user),
        rows=rows,
        connected=deps.locations.get(connected),
        problem=problem[:200],
        callback=deps.public_url + GOOGLE_CALLBACK,
    )


@router.get("/booking-systems/google/connect")
def google_connect(request: Request, user: Viewer, location: str = "") -> Response:
    """Send the owner to Google's consent screen, with a state kept in a cookie."""
    deps = deps_of(request)
    refused = _refused(deps, user)
    if refused is not None:
        return refused
    chosen = deps.locations.get(location)
    opener = deps.booking_systems
    if chosen is None or chosen.booking_system != "google_calendar":
        return _back(f"location: {location[:64]!r} does not book into Google Calendar")
    if not isinstance(opener, systems.OpenBookingSystems):
        return _back("booking systems are not configured on this install")
    oauth = opener.google_oauth(chosen, deps.public_url + GOOGLE_CALLBACK)
    if oauth is None:
        return _back("no OAuth client: set GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET")
    state = f"{chosen.id}.{oauth.new_state()}"
    target = oauth.consent_url(state)
    oauth.close()
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        GOOGLE_STATE_COOKIE,
        state,
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=deps.public_url.startswith("https://"),
        path=GOOGLE_CALLBACK,
    )
    return response


@router.get("/booking-systems/google/callback")
def google_callback(
    request: Request, user: Viewer, state: str = "", code: str = "", error: str = ""
) -> Response:
    """Google's redirect back: the state must be the one this browser was given."""
    deps = deps_of(request)
    refused = _refused(deps, user)
    if refused is not None:
        return refused
    expected = request.cookies.get(GOOGLE_STATE_COOKIE, "")
    if not state or not hmac.compare_digest(state.encode(), expected.encode()):
        return _back("the answer from Google does not match this browser's request; try again")
    if error:
        return _back(f"Google said: {error[:80]}")
    location = deps.locations.get(state.split(".", 1)[0])
    opener = deps.booking_systems
    if location is None or not isinstance(opener, systems.OpenBookingSystems) or not code:
        return _back("no code from Google; try again")
    oauth = opener.google_oauth(location, deps.public_url + GOOGLE_CALLBACK)
    if oauth is None:
        return _back("no OAuth client: set GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET")
    try:
        tokens = oauth.exchange_code(code)
    except BookingSystemUnavailable as exc:
        return _back(f"Google refused: {exc.detail}")
    finally:
        oauth.close()
    if not tokens.refresh_token:
        return _back("Google sent no refresh token; remove Ringback's access and connect again")
    opener.store(location.id, "google_calendar", {"refresh_token": tokens.refresh_token})
    response = RedirectResponse(
        f"/staff/settings/booking-systems?connected={location.id}", status_code=303
    )
    response.delete_cookie(GOOGLE_STATE_COOKIE, path=GOOGLE_CALLBACK)
    return response


def _back(problem: str) -> Response:
    return RedirectResponse(
        "/staff/settings/booking-systems?" + urlencode({"problem": problem}), status_code=303
    )


# --- Square: locations, team members and services ------------------------------------------

SQUARE_PAGE = "/staff/settings/booking-systems/square"


class _SquareTrouble(Exception):
    """Square could not be read (or no token): the page says why, nothing is saved."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _square_location(deps: Deps, location_id: str) -> Location | None:
    if location_id:
        return deps.locations.get(location_id)
    on_square = [loc for loc in deps.locations if loc.booking_system == "square"]
    every: list[Location] = on_square or list(deps.locations)
    return every[0] if every else None


def _square_catalog(
    request: Request, location: Location, chosen: str
) -> square_mapping.SquareCatalog:
    deps = deps_of(request)
    settings: Settings = request.app.state.runtime.settings
    opener = deps.booking_systems
    try:
        stored = (
            opener.credential(location.id, "square")
            if isinstance(opener, systems.OpenBookingSystems)
            else None
        )
    except BookingSystemUnavailable as exc:  # sealed with another secret key
        raise _SquareTrouble(409, exc.detail) from exc
    token = square_mapping.access_token(location, stored)
    if not token:
        raise _SquareTrouble(
            409,
            f"no Square access token: set {square_mapping.token_env(location)} or run "
            f"`ringback square map -l {location.id} --token-stdin --save`",
        )
    environment = location.square.environment if location.square else "production"
    try:
        return square_mapping.read_catalog(
            token,
            systems.square_base_url(settings, environment),
            chosen,
            timeout=settings.send_timeout_seconds,
        )
    except BookingSystemUnavailable as exc:
        raise _SquareTrouble(
            503 if exc.retry else 502, square_mapping.explain(exc, location)
        ) from exc


def _square_form(mapping: square_mapping.SquareMapping, location: Location) -> dict[str, str]:
    form = {"square_location": mapping.location_id}
    for provider in location.providers:
        form[f"provider.{provider.id}"] = mapping.team_members.get(provider.id, "")
    for n, service in enumerate(location.services):
        if not service.consult:
            form[f"service.{n}"] = mapping.services.get(service.name, "")
    return form


def _square_page(
    request: Request,
    user: SignedIn,
    location: Location,
    *,
    chosen: str,
    status: int = 200,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    saved: bool = False,
) -> HTMLResponse:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        stored = store.read(session)
    catalog: square_mapping.SquareCatalog | None = None
    problem = ""
    try:
        catalog = _square_catalog(request, location, chosen)
    except _SquareTrouble as trouble:
        problem, status = trouble.message, max(status, trouble.status)
    values = dict(form or {})
    if catalog is not None:
        if not catalog.location_id:
            problem = problem or square_mapping.unchosen(catalog, chosen)
        if form is None:
            values = _square_form(square_mapping.proposed(location, catalog), location)
    return _render(
        "staff/square_mapping.html",
        status,
        **staff_frame(deps, user),
        location_obj=location,
        locations=list(deps.locations),
        catalog=catalog,
        form=values,
        errors=errors or {},
        problem=problem,
        saved=saved,
        read_only=read_only_reason(stored),
        version=stored.version if stored else 0,
        services=[
            (n, service, square_mapping.required(location, service))
            for n, service in enumerate(location.services)
            if not service.consult
        ],
    )


def _unknown_location(deps: Deps, user: SignedIn, location_id: str) -> HTMLResponse:
    known = ", ".join(loc.id for loc in deps.locations)
    return _render(
        "staff/error.html",
        404,
        **staff_frame(deps, user),
        title="Not found",
        message=f"location: no location {location_id[:64]!r} (known: {known})",
    )


@router.get("/booking-systems/square", response_class=HTMLResponse)
def square_mapping_page(
    request: Request,
    user: Viewer,
    location: str = "",
    square_location: str = "",
    saved: int = 0,
) -> Response:
    """Square's locations, team members and services beside the location's own, matched by
    name where no mapping is saved yet; each one can be changed."""
    deps = deps_of(request)
    refused = _refused(deps, user)
    if refused is not None:
        return refused
    chosen = _square_location(deps, location)
    if chosen is None:
        return _unknown_location(deps, user, location)
    asked = square_location or (chosen.square.location_id if chosen.square else "")
    return _square_page(request, user, chosen, chosen=asked[:64], saved=bool(saved))


@router.post("/booking-systems/square")
async def save_square_mapping(request: Request, user: Editor, location: str = "") -> Response:
    """Check the chosen ids against what Square lists, then save them as the location's
    ``square`` settings (audited); on any problem nothing is saved."""
    deps = deps_of(request)
    refused = _refused(deps, user)
    if refused is not None:
        return refused
    raw = await request.form()
    form = {key: str(value)[:200] for key, value in raw.items() if isinstance(value, str)}
    form.pop("csrf_token", None)
    chosen = deps.locations.get(location)
    if chosen is None:
        return _unknown_location(deps, user, location)
    return await run_in_threadpool(_save_square, request, user, chosen, form)


def _save_square(
    request: Request, user: SignedIn, location: Location, form: dict[str, str]
) -> Response:
    deps = deps_of(request)
    asked = form.get("square_location", "").strip()

    def again(status: int, errors: dict[str, str]) -> Response:
        return _square_page(
            request, user, location, chosen=asked, status=status, form=form, errors=errors
        )

    with transaction(deps.sessions) as session:
        reason = read_only_reason(store.read(session))
    if reason is not None:
        return again(409, {"": reason})
    try:
        expected = int(form.get("version", "") or -1)
    except ValueError:
        expected = -1
    try:
        catalog = _square_catalog(request, location, asked)
    except _SquareTrouble as trouble:
        return again(trouble.status, {"": trouble.message})
    wanted = square_mapping.SquareMapping(
        asked,
        {p.id: form.get(f"provider.{p.id}", "").strip() for p in location.providers},
        {
            s.name: form.get(f"service.{n}", "").strip()
            for n, s in enumerate(location.services)
            if not s.consult
        },
    )
    try:
        mapping = square_mapping.checked(location, catalog, wanted)
        with transaction(deps.sessions) as session:
            store.save_square(
                session,
                location.id,
                square_mapping.settings_block(location, mapping),
                actor=user.email,
                now=deps.clock(),
                expected_version=expected,
            )
    except square_mapping.MappingProblem as problem:
        return again(400, problem.errors)
    except ConfigError as exc:
        return again(400, {"": str(exc)})
    except (store.StaleSettings, store.SettingsManagedByFile, store.NoSettings) as exc:
        return again(409, {"": str(exc)})
    watcher = getattr(request.app.state.runtime, "settings_watcher", None)
    if watcher is not None:
        watcher.refresh()
    return RedirectResponse(
        f"{SQUARE_PAGE}?" + urlencode({"location": location.id, "saved": 1}), status_code=303
    )
