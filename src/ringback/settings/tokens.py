"""API tokens page: everyone manages their own tokens for the JSON API; an owner (not an
admin: a token acts as its person) sees and revokes everyone's. A new token's secret is
shown once, on the page that made it."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringback import readable
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import ApiToken, StaffUser
from ringback.roles import can
from ringback.settings.owners import render
from ringback.staff import auth
from ringback.web import RowId, SignedIn, csrf_protected, deps_of, staff_frame, staff_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff/settings/tokens", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]
UTC_ZONE = ZoneInfo("UTC")


def _when(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{readable.when(local, zone, register='page')} {local:%Z}"


def _page(
    deps: Deps,
    user: SignedIn,
    *,
    status: int = 200,
    error: str | None = None,
    name: str = "",
    created: dict[str, Any] | None = None,
    revoked: str = "",
) -> HTMLResponse:
    zone = next(iter(deps.locations)).zone if len(deps.locations) else UTC_ZONE
    everyone = can(user, "all_api_tokens")
    with transaction(deps.sessions) as session:
        tokens = [
            {
                "id": t.id,
                "name": t.name,
                "prefix": t.prefix,
                "owner": t.user.name if t.user_id != user.user_id else "you",
                "created": _when(t.created_at, zone),
                "last_used": _when(t.last_used_at, zone),
                "revoked": _when(t.revoked_at, zone),
            }
            for t in auth.api_tokens(session, None if everyone else user.user_id)
        ]
    return render(
        "staff/tokens.html",
        status,
        **staff_frame(deps, user),
        tokens=tokens,
        everyone=everyone,
        error=error,
        name=name,
        created=created,
        revoked=revoked,
    )


@router.get("", response_class=HTMLResponse)
def tokens_page(request: Request, user: Viewer, revoked: str = "") -> Response:
    return _page(deps_of(request), user, revoked=revoked[:20])


@router.post("", response_class=HTMLResponse)
def create_token(
    request: Request, user: Poster, name: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    deps = deps_of(request)
    if len(name.strip()) > 120:
        return _page(deps, user, status=400, error="name: at most 120 characters", name=name[:120])
    try:
        with transaction(deps.sessions) as session:
            me = session.get(StaffUser, user.user_id)
            assert me is not None  # signed in a moment ago
            new = auth.create_api_token(session, me, name, deps.clock())
    except auth.AccountError as exc:
        return _page(deps, user, status=400, error=str(exc), name=name)
    log_event(log, "staff.token_created", user_id=user.user_id, token_id=new.id)
    return _page(deps, user, created={"id": new.id, "name": name.strip(), "secret": new.token})


@router.post("/{token_id}/revoke", response_class=HTMLResponse)
def revoke_token(request: Request, token_id: RowId, user: Poster) -> Response:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        token = session.get(ApiToken, token_id)
        # Someone else's token is as absent as a missing one, except to an owner.
        found = token is not None and (can(user, "all_api_tokens") or token.user_id == user.user_id)
        done = found and auth.revoke_api_token(session, token_id, deps.clock())
    if not found:
        return _page(deps, user, status=404, error=f"token: no token {token_id} of yours")
    if not done:
        return _page(deps, user, status=409, error=f"token: token {token_id} is already revoked")
    log_event(log, "staff.token_revoked", user_id=user.user_id, token_id=token_id)
    return RedirectResponse(f"/staff/settings/tokens?revoked={token_id}", status_code=303)
