"""The staff app's door: sign-in pages, session cookies, CSRF, and who is asking.

Pages use :func:`staff_user` (redirects to sign-in) and, for every form post,
:func:`csrf_protected`; the JSON API uses :func:`api_user` (a bearer API token, or a
signed-in browser session). Nothing under /staff or /api answers without one of them.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from annotated_types import Interval
from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import StaffUser
from ringback.roles import Capability
from ringback.staff import auth, inbox

log = logging.getLogger(__name__)
SESSION_COOKIE = "rb_session"
LOGIN_CSRF_COOKIE = "rb_login_csrf"

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def render(template: str, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context))


def deps_of(request: Request) -> Deps:
    """The adapters and settings the app was built with (every edge reads them here)."""
    deps: Deps = request.app.state.deps
    return deps


def staff_frame(
    deps: Deps,
    user: SignedIn,
    *,
    location: str | None = None,
    counts: Mapping[inbox.Queue, int] | None = None,
    marker: str = "",
) -> dict[str, Any]:
    """What the signed-in layout (``staff/app.html``) shows around every staff page: who is
    signed in, the queues with their counts (read now unless given), the location filter,
    and the live-update marker (empty where the page is read, not watched)."""
    if counts is None:
        visible = inbox.visible_location_ids(deps.locations, user)
        with transaction(deps.sessions) as session:
            counts = inbox.queue_counts(session, visible)
    return {
        "user": user,
        "csrf_token": user.csrf_token,
        "queues": [(q, inbox.QUEUE_LABELS[q]) for q in inbox.QUEUES],
        "counts": counts,
        "queue": None,
        "location": location,
        "marker": marker,
    }


def _secure(request: Request) -> bool:
    return deps_of(request).public_url.startswith("https://")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class SignedIn:
    """The person behind a request, with the CSRF token their forms must carry."""

    user_id: int
    email: str
    name: str
    role: str
    location_ids: tuple[str, ...]
    csrf_token: str

    def can(self, capability: Capability) -> bool:
        """What the role table allows (pages show a link only to who may follow it)."""
        return auth.can(self, capability)

    def can_see(self, location_id: str) -> bool:
        return self.can("all_locations") or location_id in self.location_ids


def _signed_in(user: StaffUser, csrf: str) -> SignedIn:
    return SignedIn(
        user_id=user.id,
        email=user.email,
        name=user.name,
        role=user.role,
        location_ids=tuple(user.location_ids or ()),
        csrf_token=csrf,
    )


class NotSignedIn(Exception):
    """A page asked for by someone not signed in: answered with a redirect to sign-in."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _session_user(request: Request) -> SignedIn | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        found = auth.find_session(session, token, deps.clock())
        return _signed_in(found.user, found.csrf_token) if found else None


def staff_user(request: Request) -> SignedIn:
    """Dependency for pages: the signed-in person, or a redirect to the sign-in page."""
    user = _session_user(request)
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise NotSignedIn(path)
    request.state.user = user
    return user


async def csrf_protected(
    request: Request, user: Annotated[SignedIn, Depends(staff_user)]
) -> SignedIn:
    """Dependency for form posts and page actions: the form's token must match the session's."""
    sent = request.headers.get("X-CSRF-Token")
    if sent is None:
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not secrets.compare_digest(sent, user.csrf_token):
        log_event(log, "staff.csrf_rejected", logging.WARNING, user_id=user.user_id)
        raise HTTPException(
            403, "csrf_token: missing or does not match your session; reload the page"
        )
    return user


def api_user(request: Request) -> SignedIn:
    """Dependency for the JSON API: a bearer API token, or a signed-in browser session."""
    header = request.headers.get("Authorization", "")
    deps = deps_of(request)
    if header.lower().startswith("bearer "):
        secret = header[7:].strip()
        with transaction(deps.sessions) as session:
            token = auth.find_api_token(session, secret, deps.clock())
            if token is not None:
                return _signed_in(token.user, csrf="")
        raise HTTPException(
            401,
            "Authorization: API token is unknown or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    user = _session_user(request)
    if user is None:
        raise HTTPException(
            401,
            "Authorization: send 'Bearer <API token>' or sign in",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


# Row ids are BIGINT: anything outside 1..2^63-1 can name no row, and handed to the database
# it would be an overflow (a 500), not a miss. Every id in a path, a query or a form is one.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Interval(ge=1, le=MAX_ROW_ID)]


def row_id_of(text: str) -> int | None:
    """The row id a free-text field (a form's select, a link's segment) names, or None when
    it cannot name one: not ASCII digits ("²" passes ``isdigit``), zero, or beyond BIGINT."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= MAX_ROW_ID else None


router = APIRouter(prefix="/staff", include_in_schema=False)


def _no_users(session: Session) -> bool:
    return auth.count_users(session) == 0


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/staff") -> Response:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        first_run = _no_users(session)
    csrf = secrets.token_urlsafe(24)
    response = render(
        "staff/login.html",
        next=_safe_next(next),
        csrf_token=csrf,
        first_run=first_run,
        error=None,
        email="",
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/staff/login",
    )
    return response


def _safe_next(value: str) -> str:
    """Only local paths under /staff: a sign-in link must not bounce people elsewhere."""
    return value if value.startswith("/staff") and "//" not in value else "/staff"


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    email: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=500)] = "/staff",
) -> Response:
    deps = deps_of(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    target = _safe_next(next)

    def again(error: str, status: int) -> Response:
        csrf = secrets.token_urlsafe(24)
        response = render(
            "staff/login.html",
            next=target,
            csrf_token=csrf,
            first_run=False,
            error=error,
            email=email,
        )
        response.status_code = status
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/staff/login",
        )
        return response

    if not expected or not secrets.compare_digest(expected, csrf_token):
        return again("Your sign-in form expired. Please try again.", 403)
    if not email or not password:
        return again("Enter your email and password.", 400)
    try:
        with transaction(deps.sessions) as session:
            user = auth.authenticate(
                session, email, password, client_address(request), deps.clock()
            )
            new = auth.start_session(session, user, deps.clock()) if user else None
            user_id = user.id if user else None
    except auth.LoginThrottled as throttled:
        log_event(log, "staff.login_throttled", logging.WARNING)
        response = again(
            f"Too many failed attempts. Try again in {throttled.retry_after // 60 + 1} minutes.",
            429,
        )
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response
    if new is None:
        log_event(log, "staff.login_failed", logging.WARNING)
        return again("That email and password don't match an account.", 401)
    log_event(log, "staff.login", user_id=user_id)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
        max_age=int(auth.SESSION_MAX.total_seconds()),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/staff/login")
    return response


@router.post("/logout")
def logout(request: Request, user: Annotated[SignedIn, Depends(csrf_protected)]) -> Response:
    deps = deps_of(request)
    token = request.cookies.get(SESSION_COOKIE, "")
    with transaction(deps.sessions) as session:
        auth.end_session(session, token)
    log_event(log, "staff.logout", user_id=user.user_id)
    response = RedirectResponse("/staff/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def login_redirect(exc: NotSignedIn) -> Response:
    return RedirectResponse(f"/staff/login?next={quote(exc.next_path, safe='/')}", status_code=303)
