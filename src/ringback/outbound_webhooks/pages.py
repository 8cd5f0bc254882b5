"""The staff app's webhooks page (owners only): endpoints, the delivery log, Replay.

An owner adds an endpoint (its signing secret is shown once), pauses and resumes it,
rotates its secret or removes it, sees what was sent and what the receiver answered, and
sends a delivery again once the receiver is fixed. ``ringback webhooks`` does the same
from a shell; both write through :mod:`ringback.outbound_webhooks.service`.
"""

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
from ringback.outbound_webhooks import service as webhooks
from ringback.roles import can
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
router = APIRouter(prefix="/staff", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]

RECENT = 100
UTC_ZONE = ZoneInfo("UTC")


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)
    response.headers["Cache-Control"] = "no-store"  # a new signing secret may be on it
    return response


def _owners_only(deps: Deps, user: SignedIn) -> HTMLResponse | None:
    # Owners only (not admins): a webhook sends patient events to another system.
    if can(user, "webhooks"):
        return None
    return _render(
        "staff/error.html",
        403,
        **staff_frame(deps, user),
        title="Owners only",
        message="Webhooks send patient events to other systems; only an owner can see them.",
    )


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return ""
    local = moment.astimezone(zone)
    return f"{readable.when(local, zone, register='page')} {local:%Z}"


def _page(
    deps: Deps,
    user: SignedIn,
    *,
    status: int = 200,
    failed_only: bool = False,
    replayed: RowId | None = None,
    done: str = "",
    error: webhooks.WebhookError | None = None,
    form: dict[str, Any] | None = None,
    secret: dict[str, Any] | None = None,
) -> HTMLResponse:
    zones = {location.id: location.zone for location in deps.locations}
    names = {location.id: location.name for location in deps.locations}
    with transaction(deps.sessions) as session:
        endpoints = webhooks.endpoints(session)
        rows = webhooks.deliveries(session, failed_only=failed_only, limit=RECENT)
        active = {endpoint.id for endpoint in endpoints}
        deliveries = [
            {
                "id": d.id,
                "event": d.event,
                "endpoint_id": d.endpoint_id,
                "status": d.status,
                "attempts": d.attempts,
                "code": d.last_status_code,
                "response": d.last_response,
                "error": d.last_error,
                "created": _local(
                    d.created_at, zones.get(str(d.payload.get("location_id")), UTC_ZONE)
                ),
                "next": _local(
                    d.next_attempt_at if d.status == "pending" else None,
                    zones.get(str(d.payload.get("location_id")), UTC_ZONE),
                ),
                "replayable": d.endpoint_id in active,
            }
            for d in rows
        ]
        listed = [
            {
                "id": e.id,
                "url": e.url,
                "location": names.get(e.location_id, e.location_id)
                if e.location_id
                else "All locations",
                "events": e.events,
                "created": _local(e.created_at, UTC_ZONE),
                "paused": _local(e.paused_at, UTC_ZONE),
            }
            for e in endpoints
        ]
    return _render(
        "staff/webhooks.html",
        status,
        **staff_frame(deps, user),
        endpoints=listed,
        deliveries=deliveries,
        failed_only=failed_only,
        replayed=replayed,
        done=DONE.get(done, ""),
        error=error,
        form=form or {"url": "", "events": list(webhooks.EVENTS), "location": ""},
        secret=secret,
        all_events=webhooks.EVENTS,
        locations=list(deps.locations),
        limit=RECENT,
    )


DONE = {
    "paused": "Paused: events are kept and wait until you resume.",
    "resumed": "Resumed: anything that waited is being sent now.",
    "removed": "Removed: nothing more is sent there (its deliveries stay listed).",
}


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(
    request: Request,
    user: Viewer,
    status: str = "",
    replayed: RowId | None = None,
    done: str = "",
) -> Response:
    deps = deps_of(request)
    refused = _owners_only(deps, user)
    if refused is not None:
        return refused
    return _page(deps, user, failed_only=status == "failed", replayed=replayed, done=done)


@router.post("/webhooks/endpoints", response_class=HTMLResponse)
def add_endpoint(
    request: Request,
    user: Poster,
    url: Annotated[str, Form(max_length=4000)] = "",
    event: Annotated[list[str] | None, Form()] = None,
    location: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Register an endpoint; the page that answers shows its signing secret once."""
    deps = deps_of(request)
    refused = _owners_only(deps, user)
    if refused is not None:
        return refused
    try:
        with transaction(deps.sessions) as session:
            endpoint = webhooks.create_endpoint(
                session,
                url=url,
                events=event or [],
                location_id=location or None,
                known_locations={loc.id for loc in deps.locations},
                now=deps.clock(),
                allow_private=deps.allow_private_webhooks,
            )
            made = {"id": endpoint.id, "secret": endpoint.secret, "added": True}
    except webhooks.WebhookError as exc:
        form = {"url": url, "events": event or [], "location": location}
        return _page(deps, user, status=exc.status, error=exc, form=form)
    log_event(log, "staff.webhook_added", endpoint_id=made["id"], user_id=user.user_id)
    return _page(deps, user, secret=made)


def _endpoint_action(request: Request, user: SignedIn, endpoint_id: RowId, action: str) -> Response:
    deps = deps_of(request)
    refused = _owners_only(deps, user)
    if refused is not None:
        return refused
    secret: dict[str, Any] | None = None
    try:
        with transaction(deps.sessions) as session:
            if action == "pause":
                webhooks.pause_endpoint(session, endpoint_id, deps.clock())
            elif action == "resume":
                webhooks.resume_endpoint(session, deps, endpoint_id)
            elif action == "rotate":
                secret = {"id": endpoint_id, "secret": webhooks.rotate_secret(session, endpoint_id)}
            elif not webhooks.remove_endpoint(session, endpoint_id):
                raise webhooks.WebhookError(
                    "endpoint", f"no active endpoint {endpoint_id}", status=404
                )
    except webhooks.WebhookError as exc:
        return _page(deps, user, status=exc.status, error=exc)
    log_event(log, f"staff.webhook_{action}", endpoint_id=endpoint_id, user_id=user.user_id)
    if secret is not None:
        return _page(deps, user, secret=secret)
    done = {"pause": "paused", "resume": "resumed", "remove": "removed"}[action]
    return RedirectResponse(f"/staff/webhooks?done={done}", status_code=303)


@router.post("/webhooks/endpoints/{endpoint_id}/pause", response_class=HTMLResponse)
def pause(request: Request, endpoint_id: RowId, user: Poster) -> Response:
    return _endpoint_action(request, user, endpoint_id, "pause")


@router.post("/webhooks/endpoints/{endpoint_id}/resume", response_class=HTMLResponse)
def resume(request: Request, endpoint_id: RowId, user: Poster) -> Response:
    return _endpoint_action(request, user, endpoint_id, "resume")


@router.post("/webhooks/endpoints/{endpoint_id}/rotate-secret", response_class=HTMLResponse)
def rotate(request: Request, endpoint_id: RowId, user: Poster) -> Response:
    """A new signing secret, shown once; the old one stops signing at once."""
    return _endpoint_action(request, user, endpoint_id, "rotate")


@router.post("/webhooks/endpoints/{endpoint_id}/remove", response_class=HTMLResponse)
def remove(request: Request, endpoint_id: RowId, user: Poster) -> Response:
    return _endpoint_action(request, user, endpoint_id, "remove")


@router.post("/webhooks/deliveries/{delivery_id}/replay")
def replay_delivery(request: Request, delivery_id: RowId, user: Poster) -> Response:
    deps = deps_of(request)
    refused = _owners_only(deps, user)
    if refused is not None:
        return refused
    try:
        webhooks.replay(deps, delivery_id)
    except webhooks.WebhookError as exc:
        return _render(
            "staff/error.html",
            exc.status,
            **staff_frame(deps, user),
            title="Not sent again",
            message=str(exc),
        )
    log_event(log, "staff.webhook_replayed", delivery_id=delivery_id, user_id=user.user_id)
    return RedirectResponse(f"/staff/webhooks?replayed={delivery_id}", status_code=303)
