"""The providers' webhooks: verify, validate, store, enqueue, answer fast.

Each provider has its own set of URLs (``/twilio/*``, ``/signalwire/*``), built by
:func:`make_router` from one set of handlers; SignalWire's compatibility webhooks post
Twilio's fields and take the same XML answers (cXML is TwiML), so only the signature
scheme and the shape of ids differ (:mod:`ringback.telephony.signatures`). The location
is the one whose number is ``To`` (for delivery receipts, ``From``). Order per request:

1. signature over ``RINGBACK_PUBLIC_URL`` + path, with the provider's secret: 403,
   nothing written;
2. the form's fields: 400 naming the field, nothing written;
3. the location, which must use this provider: 404 with an XML-safe body, nothing written;
4. store the event (``provider`` = this one) keyed by the provider's id and enqueue its
   handling after commit;
5. answer with TwiML / cXML computed from configuration only.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.inbox import events
from ringback.inbox.spool import SpooledEvent, SpoolFull, SpoolService
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
from ringback.telephony.signatures import (
    SIGNALWIRE_SIGNATURE_HEADER,
    Provider,
    signalwire_signature_valid,
    twilio_signature_valid,
)
from ringback.web import deps_of

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


@dataclass(frozen=True, slots=True)
class ProviderEdge:
    """What differs between providers at the webhook edge."""

    provider: Provider
    # How the signature headers are checked against (url, form, secret).
    signature_valid: Callable[[Mapping[str, str], str, Any, str], bool]
    signature_header: str
    secret_setting: str

    @property
    def prefix(self) -> str:
        return f"/{self.provider}"


TWILIO = ProviderEdge("twilio", twilio_signature_valid, "X-Twilio-Signature", "TWILIO_AUTH_TOKEN")
SIGNALWIRE = ProviderEdge(
    "signalwire",
    signalwire_signature_valid,
    SIGNALWIRE_SIGNATURE_HEADER,
    "SIGNALWIRE_SIGNING_KEY",
)


def _secret(request: Request, edge: ProviderEdge) -> str:
    secrets: Mapping[str, str] = getattr(request.app.state, "webhook_secrets", {})
    return secrets.get(edge.provider, "")


async def _verified_form(
    request: Request, edge: ProviderEdge, *, voice: bool
) -> tuple[Deps, FormData]:
    deps = deps_of(request)
    form = await request.form()
    url = deps.public_url + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    secret = _secret(request, edge)
    if not secret:
        raise WebhookRejected(403, f"{edge.secret_setting} is not set; cannot verify", voice=voice)
    if not edge.signature_valid(request.headers, url, form, secret):
        log_event(
            log,
            "webhook.signature_invalid",
            logging.WARNING,
            provider=edge.provider,
            path=request.url.path,
            present=any(
                name in request.headers for name in (edge.signature_header, "X-Twilio-Signature")
            ),
        )
        raise WebhookRejected(403, f"{edge.signature_header} is missing or invalid", voice=voice)
    return deps, form


def _fields(form: FormData) -> dict[str, Any]:
    return {key: str(value) for key, value in form.items()}


def _location(deps: Deps, edge: ProviderEdge, number: str, *, voice: bool) -> Location:
    location = deps.locations.by_number(number)
    if location is None or location.provider != edge.provider:
        # A number served by the other provider is, for this one, not a number at all.
        detail = (
            f" ({location.id} uses {location.provider}, not {edge.provider})"
            if location is not None
            else ""
        )
        raise WebhookRejected(
            404,
            f"no location is configured for {number}{detail}",
            voice=voice,
            spoken="Sorry, this number is not set up yet. Goodbye." if voice else None,
        )
    return location


async def _store(
    request: Request,
    deps: Deps,
    edge: ProviderEdge,
    kind: str,
    location: Location,
    payload: dict[str, Any],
) -> None:
    spool: SpoolService | None = getattr(request.app.state, "spool", None)
    if spool is None:
        await run_in_threadpool(_store_sync, deps, edge.provider, kind, location, payload)
        return
    # Stored within the budget, or spooled (fsync'd) and stored by the drainer: either
    # way the caller gets the answer it would have got.
    event = SpooledEvent(edge.provider, kind, location.id, payload, deps.clock())
    try:
        await spool.store.store(event)
    except SpoolFull as full:
        log_event(log, "spool.full", logging.ERROR, kind=kind, location=location.id)
        raise WebhookRejected(
            503,
            str(full),
            voice=kind != "sms" and kind != "sms_status",
            spoken="Sorry, we cannot take your call right now. Please call again soon."
            if kind in ("voice", "dial_result")
            else None,
        ) from None


def _store_sync(
    deps: Deps, provider: str, kind: str, location: Location, payload: dict[str, Any]
) -> int | None:
    with transaction(deps.sessions) as session:
        return events.record(
            session,
            deps,
            provider=provider,
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


def make_router(edge: ProviderEdge) -> APIRouter:
    """The five webhooks of one provider, under ``/{provider}``."""
    router = APIRouter(prefix=edge.prefix, tags=[edge.provider])
    provider = edge.provider

    @router.post("/voice", response_class=Response)
    @_rejecting(voice=True)
    async def voice(request: Request) -> Response:
        """Incoming call: ring the front desk, or (forwarded-only, after hours) greet and text."""
        deps, form = await _verified_form(request, edge, voice=True)
        data = _fields(form)
        parsed = parse_form(VoiceForm, data, provider=provider)
        location = _location(deps, edge, parsed.To, voice=True)
        mode = call_mode(location, deps.clock())
        payload = {**data, "To": parsed.To, "_ringback_mode": mode}
        await _store(request, deps, edge, "voice", location, payload)
        if mode == "ring":
            action = f"{deps.public_url}{edge.prefix}/voice/dial-result"
            body = twiml.ring_front_desk(location, action)
        else:
            body = twiml.greeting(location, after_hours=mode == "after_hours")
        return Response(body, media_type=XML)

    @router.post("/voice/dial-result", response_class=Response)
    @_rejecting(voice=True)
    async def dial_result(request: Request) -> Response:
        """The front desk's ring ended: no-answer, busy, failed or canceled is a miss."""
        deps, form = await _verified_form(request, edge, voice=True)
        data = _fields(form)
        parsed = parse_form(DialResultForm, data, provider=provider)
        location = _location(deps, edge, parsed.To, voice=True)
        await _store(request, deps, edge, "dial_result", location, {**data, "To": parsed.To})
        if parsed.DialCallStatus in DIAL_MISSES:
            body = twiml.greeting(location, after_hours=not location.is_open(deps.clock()))
        else:
            body = twiml.hang_up()
        return Response(body, media_type=XML)

    @router.post("/voice/status", response_class=Response)
    @_rejecting(voice=True)
    async def call_status(request: Request) -> Response:
        """The number's status callback: the backstop for calls that ended with no outcome."""
        deps, form = await _verified_form(request, edge, voice=True)
        data = _fields(form)
        parsed = parse_form(CallStatusForm, data, provider=provider)
        location = _location(deps, edge, parsed.To, voice=True)
        await _store(request, deps, edge, "call_status", location, {**data, "To": parsed.To})
        return Response(status_code=204)

    @router.post("/sms", response_class=Response)
    @_rejecting(voice=False)
    async def sms(request: Request) -> Response:
        """Inbound text from a patient."""
        deps, form = await _verified_form(request, edge, voice=False)
        data = _fields(form)
        parsed = parse_form(SmsForm, data, provider=provider)
        location = _location(deps, edge, parsed.To, voice=False)
        await _store(request, deps, edge, "sms", location, {**data, "To": parsed.To})
        return Response(twiml.empty_messaging(), media_type=XML)

    @router.post("/sms/status", response_class=Response)
    @_rejecting(voice=False)
    async def sms_status(request: Request) -> Response:
        """Delivery receipt for a text we sent (``MessageStatus``, ``ErrorCode``)."""
        deps, form = await _verified_form(request, edge, voice=False)
        data = _fields(form)
        parsed = parse_form(SmsStatusForm, data, provider=provider)
        location = _location(deps, edge, parsed.From, voice=False)
        await _store(request, deps, edge, "sms_status", location, {**data, "From": parsed.From})
        return Response(status_code=204)

    return router


twilio_router = make_router(TWILIO)
signalwire_router = make_router(SIGNALWIRE)
# The name the app has always imported.
router = twilio_router
