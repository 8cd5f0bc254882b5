"""Twilio's webhooks: verify, validate, store, enqueue, answer fast.

One set of URLs serves every location; the location is the one whose number is ``To``
(for delivery receipts, ``From``). Order per request, by design:

1. signature (``X-Twilio-Signature`` over ``RINGBACK_PUBLIC_URL`` + path): 403, nothing written;
2. the form's fields: 400 naming the field, nothing written;
3. the location: 404 with TwiML-safe body, nothing written;
4. store the event keyed by the provider's id and enqueue its handling after commit;
5. answer with TwiML computed from configuration only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator, get_signature_algorithm

from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.inbox import events
from ringback.logs import log_event
from ringback.missed_calls.service import DIAL_MISSES, call_mode
from ringback.telephony import twiml
from ringback.telephony.forms import (
    CallStatusForm,
    DialResultForm,
    FormError,
    SmsForm,
    SmsStatusForm,
    VoiceForm,
    parse_form,
)

log = logging.getLogger(__name__)
XML = "application/xml"


class WebhookRejected(Exception):
    def __init__(self, status: int, message: str, *, voice: bool, spoken: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.voice = voice
        self.spoken = spoken

    def response(self) -> Response:
        body = (
            twiml.error_voice(self.message, self.spoken)
            if self.voice
            else twiml.error_messaging(self.message)
        )
        return Response(body, status_code=self.status, media_type=XML)


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.deps
    return deps


async def _verified_form(request: Request, *, voice: bool) -> tuple[Deps, FormData]:
    deps = _deps(request)
    form = await request.form()
    signature = request.headers.get("X-Twilio-Signature")
    url = deps.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    token: str = request.app.state.auth_token
    if not token:
        raise WebhookRejected(403, "TWILIO_AUTH_TOKEN is not set; cannot verify", voice=voice)
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    if not signature or not RequestValidator(token).validate(url, form, signature, algorithm):
        log_event(
            log,
            "webhook.signature_invalid",
            logging.WARNING,
            path=request.url.path,
            present=bool(signature),
        )
        raise WebhookRejected(403, "X-Twilio-Signature is missing or invalid", voice=voice)
    return deps, form


def _fields(form: FormData) -> dict[str, Any]:
    return {key: str(value) for key, value in form.items()}


def _location(deps: Deps, number: str, *, voice: bool) -> Location:
    location = deps.locations.by_number(number)
    if location is None:
        raise WebhookRejected(
            404,
            f"no location is configured for {number}",
            voice=voice,
            spoken="Sorry, this number is not set up yet. Goodbye." if voice else None,
        )
    return location


async def _store(deps: Deps, kind: str, location: Location, payload: dict[str, Any]) -> None:
    await run_in_threadpool(_store_sync, deps, kind, location, payload)


def _store_sync(deps: Deps, kind: str, location: Location, payload: dict[str, Any]) -> int | None:
    with transaction(deps.sessions) as session:
        return events.record(
            session,
            deps,
            provider="twilio",
            kind=kind,
            location_id=location.id,
            payload=payload,
            received_at=deps.clock(),
        )


Handler = Callable[[Request], Awaitable[Response]]


def _rejecting(voice: bool) -> Callable[[Handler], Handler]:
    """Turn expected rejections into their answers; anything else is a bug (a 500)."""

    def wrap(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except WebhookRejected as rejected:
                return rejected.response()
            except FormError as error:
                log_event(
                    log,
                    "webhook.invalid",
                    logging.WARNING,
                    path=request.url.path,
                    field=error.field,
                )
                return WebhookRejected(400, str(error), voice=voice).response()
            return response

        endpoint.__name__ = handler.__name__
        endpoint.__doc__ = handler.__doc__
        return endpoint

    return wrap


router = APIRouter(prefix="/twilio", tags=["twilio"])


@router.post("/voice", response_class=Response)
@_rejecting(voice=True)
async def voice(request: Request) -> Response:
    """Incoming call: ring the front desk, or (forwarded-only, after hours) greet and text."""
    deps, form = await _verified_form(request, voice=True)
    data = _fields(form)
    parsed = parse_form(VoiceForm, data)
    location = _location(deps, parsed.To, voice=True)
    mode = call_mode(location, deps.clock())
    await _store(deps, "voice", location, {**data, "To": parsed.To, "_ringback_mode": mode})
    if mode == "ring":
        body = twiml.ring_front_desk(location, f"{deps.public_url}/twilio/voice/dial-result")
    else:
        body = twiml.greeting(location, after_hours=mode == "after_hours")
    return Response(body, media_type=XML)


@router.post("/voice/dial-result", response_class=Response)
@_rejecting(voice=True)
async def dial_result(request: Request) -> Response:
    """The front desk's ring ended: no-answer, busy, failed or canceled is a miss."""
    deps, form = await _verified_form(request, voice=True)
    data = _fields(form)
    parsed = parse_form(DialResultForm, data)
    location = _location(deps, parsed.To, voice=True)
    await _store(deps, "dial_result", location, {**data, "To": parsed.To})
    if parsed.DialCallStatus in DIAL_MISSES:
        body = twiml.greeting(location, after_hours=not location.is_open(deps.clock()))
    else:
        body = twiml.hang_up()
    return Response(body, media_type=XML)


@router.post("/voice/status", response_class=Response)
@_rejecting(voice=True)
async def call_status(request: Request) -> Response:
    """The number's status callback: the backstop for calls that ended with no outcome."""
    deps, form = await _verified_form(request, voice=True)
    data = _fields(form)
    parsed = parse_form(CallStatusForm, data)
    location = _location(deps, parsed.To, voice=True)
    await _store(deps, "call_status", location, {**data, "To": parsed.To})
    return Response(status_code=204)


@router.post("/sms", response_class=Response)
@_rejecting(voice=False)
async def sms(request: Request) -> Response:
    """Inbound text from a patient."""
    deps, form = await _verified_form(request, voice=False)
    data = _fields(form)
    parsed = parse_form(SmsForm, data)
    location = _location(deps, parsed.To, voice=False)
    await _store(deps, "sms", location, {**data, "To": parsed.To})
    return Response(twiml.empty_messaging(), media_type=XML)


@router.post("/sms/status", response_class=Response)
@_rejecting(voice=False)
async def sms_status(request: Request) -> Response:
    """Delivery receipt for a text we sent (``MessageStatus``, ``ErrorCode``)."""
    deps, form = await _verified_form(request, voice=False)
    data = _fields(form)
    parsed = parse_form(SmsStatusForm, data)
    location = _location(deps, parsed.From, voice=False)
    await _store(deps, "sms_status", location, {**data, "From": parsed.From})
    return Response(status_code=204)
