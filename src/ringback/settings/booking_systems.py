"""Owner and admin pages for the booking systems: each location's system, what it can do, and
connecting Google Calendar (docs/booking-systems.md).

Only HTTP lives here; what the pages show is built in :mod:`ringback.booking.systems`.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringback.booking import systems
from ringback.deps import Deps
from ringback.roles import can
from ringback.web import TEMPLATES, SignedIn, deps_of, staff_frame, staff_user

router = APIRouter(prefix="/staff/settings", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]


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
    from ringback.ports import BookingSystemUnavailable

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
