"""The staff app's webhooks page (owners only): endpoints, the delivery log, Replay.

Endpoints are added and removed with ``ringback webhooks``; this page is where an owner
sees what was sent, what the receiver answered, and sends a delivery again once the
receiver is fixed. Writes go through :mod:`ringback.outbound_webhooks.service`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ringback import readable
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.outbound_webhooks import service as webhooks
from ringback.web import TEMPLATES, SignedIn, csrf_protected, deps_of, staff_frame, staff_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]

RECENT = 100
UTC_ZONE = ZoneInfo("UTC")


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


def _owners_only(deps: Deps, user: SignedIn) -> HTMLResponse | None:
    if user.role == "owner":
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


@router.get("/webhooks", response_class=HTMLResponse)
def webhooks_page(
    request: Request, user: Viewer, status: str = "", replayed: int | None = None
) -> Response:
    deps = deps_of(request)
    refused = _owners_only(deps, user)
    if refused is not None:
        return refused
    failed_only = status == "failed"
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
            }
            for e in endpoints
        ]
    return _render(
        "staff/webhooks.html",
        **staff_frame(deps, user),
        endpoints=listed,
        deliveries=deliveries,
        failed_only=failed_only,
        replayed=replayed,
        error=None,
        limit=RECENT,
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
def replay_delivery(request: Request, delivery_id: int, user: Poster) -> Response:
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
