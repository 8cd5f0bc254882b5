"""The team page (owners and admins): invite by a one-time link, roles and locations,
deactivate, password reset links; and the public page where a link is spent. An admin
manages everyone but owners (:func:`ringback.staff.auth.check_team_change`): a refused
change answers 403 and changes nothing.

An invitation or reset link is emailed when SMTP is configured; otherwise, or when the
mail is refused, it is shown to the owner once on the page that made it. The account
rules live in :mod:`ringback.staff.auth`.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringback import readable
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.ports import AlertDeliveryFailed
from ringback.settings.owners import gate, render
from ringback.staff import auth
from ringback.web import RowId, SignedIn, csrf_protected, deps_of, staff_frame, staff_user

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]
LINK_CSRF_COOKIE = "rb_link_csrf"
UTC_ZONE = ZoneInfo("UTC")
WHY = "The team is managed by an owner or an admin."
DONE = {
    "access": "Access saved.",
    "deactivated": "Deactivated: signed out everywhere, API tokens revoked.",
    "reactivated": "Reactivated: they can sign in again.",
}


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{readable.when(local, zone, register='page')} {local:%Z}"


def link_url(deps: Deps, token: str) -> str:
    return f"{deps.public_url}/staff/link/{token}"


def _team_page(
    deps: Deps,
    user: SignedIn,
    *,
    status: int = 200,
    error: auth.AccountError | None = None,
    error_for: str = "",
    form: dict[str, Any] | None = None,
    shown: dict[str, Any] | None = None,
    done: str = "",
) -> HTMLResponse:
    zone = next(iter(deps.locations)).zone if len(deps.locations) else UTC_ZONE
    names = {loc.id: loc.name for loc in deps.locations}
    now = deps.clock()
    with transaction(deps.sessions) as session:
        people = [
            {
                "id": u.id,
                "name": u.name,
                "email": u.email,
                "role": u.role,
                "location_ids": list(u.location_ids or []),
                "locations": ", ".join(names.get(i, i) for i in u.location_ids or [])
                if not auth.role_can(u.role, "all_locations")
                else "All locations",
                # An admin sees an owner's row but cannot change it.
                "locked": u.role == "owner" and not auth.can(user, "manage_owners"),
                "active": u.active,
                "last_login": _when(u.last_login_at, zone),
                "me": u.id == user.user_id,
            }
            for u in auth.users(session)
        ]
        invites = [
            {
                "email": link.email,
                "role": link.role,
                "expires": _when(link.expires_at, zone),
            }
            for link in auth.pending_invites(session, now)
        ]
    return render(
        "staff/team.html",
        status,
        **staff_frame(deps, user),
        people=people,
        invites=invites,
        locations=list(deps.locations),
        roles=[r for r in auth.ROLES if r != "owner" or auth.can(user, "manage_owners")],
        role_labels=auth.ROLE_LABELS,
        error=error,
        error_for=error_for,
        form=form or {"email": "", "role": "staff", "location_ids": []},
        shown=shown,
        done=DONE.get(done, ""),
        emailing=deps.emailer is not None,
    )


def _status(exc: auth.AccountError) -> int:
    """403 for what the acting role may not do, 400 for bad input."""
    return 403 if isinstance(exc, auth.NotAllowed) else 400


def _send_link(deps: Deps, link: auth.NewLink, by: SignedIn) -> bool:
    """Email the link when SMTP is configured; False when it was not sent."""
    if deps.emailer is None:
        return False
    url = link_url(deps, link.token)
    expires = link.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if link.kind == "invite":
        subject = "You're invited to Ringback"
        body = (
            f"{by.name} invited you to the clinic's Ringback, where the team answers "
            f"missed callers.\n\nChoose your name and password here (the link works once, "
            f"until {expires}):\n\n{url}\n"
        )
    else:
        subject = "Set a new Ringback password"
        body = (
            f"{by.name} sent you a link to set a new Ringback password. It works once, "
            f"until {expires}:\n\n{url}\n\nSetting it signs you out on every device.\n"
        )
    try:
        deps.emailer.send([link.email], subject, body)
    except AlertDeliveryFailed as exc:
        log_event(log, "staff.link_email_failed", logging.WARNING, kind=link.kind, error=str(exc))
        return False
    return True


def _shown(deps: Deps, link: auth.NewLink, sent: bool) -> dict[str, Any]:
    return {
        "kind": link.kind,
        "email": link.email,
        "sent": sent,
        "url": None if sent else link_url(deps, link.token),
        "failed": deps.emailer is not None and not sent,
    }


@router.get("/staff/settings/team", response_class=HTMLResponse)
def team_page(request: Request, user: Viewer, done: str = "") -> Response:
    deps = deps_of(request)
    return gate(deps, user, "team", WHY) or _team_page(deps, user, done=done)


@router.post("/staff/settings/team/invite", response_class=HTMLResponse)
def invite(
    request: Request,
    user: Poster,
    email: Annotated[str, Form(max_length=254)] = "",
    role: Annotated[str, Form(max_length=20)] = "",
    location: Annotated[list[str] | None, Form()] = None,
) -> Response:
    deps = deps_of(request)
    refused = gate(deps, user, "team", WHY)
    if refused is not None:
        return refused
    chosen = location or []
    try:
        with transaction(deps.sessions) as session:
            link = auth.invite(
                session,
                email=email,
                role=role,
                location_ids=chosen,
                known_locations={loc.id for loc in deps.locations},
                created_by=user.user_id,
                acting_role=user.role,
                now=deps.clock(),
            )
    except auth.AccountError as exc:
        form = {"email": email, "role": role, "location_ids": chosen}
        return _team_page(deps, user, status=_status(exc), error=exc, error_for="invite", form=form)
    sent = _send_link(deps, link, user)
    log_event(log, "staff.invited", user_id=user.user_id, role=role, emailed=sent)
    return _team_page(deps, user, shown=_shown(deps, link, sent))


@router.post("/staff/settings/team/{user_id}/access", response_class=HTMLResponse)
def change_access(
    request: Request,
    user_id: RowId,
    user: Poster,
    role: Annotated[str, Form(max_length=20)] = "",
    location: Annotated[list[str] | None, Form()] = None,
) -> Response:
    deps = deps_of(request)
    refused = gate(deps, user, "team", WHY)
    if refused is not None:
        return refused
    try:
        with transaction(deps.sessions) as session:
            auth.change_access(
                session,
                user_id,
                role=role,
                location_ids=location or [],
                known_locations={loc.id for loc in deps.locations},
                acting_role=user.role,
            )
    except auth.AccountError as exc:
        return _team_page(deps, user, status=_status(exc), error=exc, error_for=str(user_id))
    log_event(log, "staff.access_changed", user_id=user.user_id, target=user_id, role=role)
    return RedirectResponse("/staff/settings/team?done=access", status_code=303)


def _switch_account(request: Request, user: SignedIn, user_id: RowId, on: bool) -> Response:
    """Deactivate (``on`` False) or reactivate an account, then back to the team page."""
    deps = deps_of(request)
    refused = gate(deps, user, "team", WHY)
    if refused is not None:
        return refused
    try:
        with transaction(deps.sessions) as session:
            if on:
                auth.reactivate_user(session, user_id, acting_role=user.role)
            else:
                auth.deactivate_user(
                    session,
                    user_id,
                    acting_user_id=user.user_id,
                    acting_role=user.role,
                    now=deps.clock(),
                )
    except auth.AccountError as exc:
        return _team_page(deps, user, status=_status(exc), error=exc, error_for=str(user_id))
    done = "reactivated" if on else "deactivated"
    log_event(log, f"staff.{done}", user_id=user.user_id, target=user_id)
    return RedirectResponse(f"/staff/settings/team?done={done}", status_code=303)


@router.post("/staff/settings/team/{user_id}/deactivate", response_class=HTMLResponse)
def deactivate(request: Request, user_id: RowId, user: Poster) -> Response:
    return _switch_account(request, user, user_id, on=False)


@router.post("/staff/settings/team/{user_id}/reactivate", response_class=HTMLResponse)
def reactivate(request: Request, user_id: RowId, user: Poster) -> Response:
    return _switch_account(request, user, user_id, on=True)


@router.post("/staff/settings/team/{user_id}/reset", response_class=HTMLResponse)
def reset(request: Request, user_id: RowId, user: Poster) -> Response:
    deps = deps_of(request)
    refused = gate(deps, user, "team", WHY)
    if refused is not None:
        return refused
    try:
        with transaction(deps.sessions) as session:
            link = auth.reset_link(
                session,
                user_id,
                created_by=user.user_id,
                acting_role=user.role,
                now=deps.clock(),
            )
    except auth.AccountError as exc:
        return _team_page(deps, user, status=_status(exc), error=exc, error_for=str(user_id))
    sent = _send_link(deps, link, user)
    log_event(log, "staff.reset_link", user_id=user.user_id, target=user_id, emailed=sent)
    return _team_page(deps, user, shown=_shown(deps, link, sent))


# --- the one-time link (no sign-in: the link's secret is the credential) ----------------------


def _link_page(
    request: Request, token: str, *, status: int = 200, error: str | None = None, name: str = ""
) -> Response:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        link = auth.find_link(session, token, deps.clock())
        found = None if link is None else {"kind": link.kind, "email": link.email}
    if found is None:
        return render("staff/link_gone.html", 410)
    csrf = secrets.token_urlsafe(24)
    response = render(
        "staff/link.html",
        status,
        link=found,
        token=token,
        csrf_token=csrf,
        error=error,
        name=name,
        min_length=auth.MIN_PASSWORD_LENGTH,
    )
    response.set_cookie(
        LINK_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=deps.public_url.startswith("https://"),
        path="/staff/link",
    )
    return response


@router.get("/staff/link/{token}", response_class=HTMLResponse)
def link_page(request: Request, token: str) -> Response:
    return _link_page(request, token[:100])


@router.post("/staff/link/{token}", response_class=HTMLResponse)
def use_link(
    request: Request,
    token: str,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    name: Annotated[str, Form(max_length=120)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    confirm: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    deps = deps_of(request)
    token = token[:100]
    expected = request.cookies.get(LINK_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return _link_page(
            request, token, status=403, error="This form expired. Please try again.", name=name
        )
    if password != confirm:
        return _link_page(
            request, token, status=400, error="confirm: the two passwords differ", name=name
        )
    try:
        with transaction(deps.sessions) as session:
            account = auth.use_link(
                session,
                token,
                name=name,
                password=password,
                known_locations={loc.id for loc in deps.locations},
                now=deps.clock(),
            )
            account_id, email = account.id, account.email
    except auth.AccountError as exc:
        if str(exc).startswith("link:"):
            return render("staff/link_gone.html", 410)
        return _link_page(request, token, status=400, error=str(exc), name=name)
    log_event(log, "staff.link_used", user_id=account_id)
    response = render("staff/link_done.html", email=email)
    response.delete_cookie(LINK_CSRF_COOKIE, path="/staff/link")
    return response
