"""Notifications from the clinic's booking system: Square's booking webhooks and Google
Calendar's push channels (docs/booking-systems.md).

Each is verified before anything is read or written: Square's HMAC-SHA256 signature over
the notification URL and the raw body (403 when it does not match), Google's channel
token (403). An unknown location, or one that does not use that system, answers 404.
"""

from __future__ import annotations

import logging
import os

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ringback.booking import system_changes
from ringback.db import transaction
from ringback.logs import log_event
from ringback.web import deps_of

log = logging.getLogger(__name__)

router = APIRouter(prefix="/booking-systems", include_in_schema=False)


def _answer(status: int, outcome: str) -> JSONResponse:
    return JSONResponse({"outcome": outcome}, status_code=status)


@router.post("/square/{location_id}")
async def square_webhook(request: Request, location_id: str) -> JSONResponse:
    from ringback.integrations.square import (
        SIGNATURE_HEADER,
        parse_booking_webhook,
        verify_square_signature,
    )

    deps = deps_of(request)
    location = deps.locations.get(location_id)
    if location is None or location.booking_system != "square" or location.square is None:
        return _answer(404, "unknown location")
    body = await request.body()
    key = os.environ.get(location.square.webhook_signature_key_env, "")
    url = deps.public_url + system_changes.hook_path("square", location.id)
    if not verify_square_signature(key, url, body, request.headers.get(SIGNATURE_HEADER)):
        log_event(log, "booking_system.signature_invalid", logging.WARNING, location=location.id)
        return _answer(403, "signature invalid")
    change = parse_booking_webhook(body)
    if change is None:
        return _answer(200, "ignored")
    with transaction(deps.sessions) as session:
        outcome = system_changes.apply_change(session, deps, location, change)
    return _answer(200, outcome or "nothing to do")


@router.post("/google/{location_id}")
async def google_push(request: Request, location_id: str) -> JSONResponse:
    from ringback.integrations.google_calendar import parse_push_notification, push_token_matches

    deps = deps_of(request)
    location = deps.locations.get(location_id)
    if location is None or location.booking_system != "google_calendar":
        return _answer(404, "unknown location")
    push = parse_push_notification(dict(request.headers))
    if push is None:
        return _answer(400, "not a Google Calendar push")
    with deps.sessions() as session:
        channel = system_changes.channel_for_push(session, push.channel_id)
        token = channel.token if channel and channel.location_id == location.id else None
    if token is None or not push_token_matches(push, token):
        log_event(log, "booking_system.push_refused", logging.WARNING, location=location.id)
        return _answer(403, "unknown channel or token")
    if push.resource_state == "sync":
        return _answer(200, "channel open")
    system_changes.changes_due(deps, location.id)
    return _answer(200, "changes due")
