"""The web edge's guards: one ASGI middleware in front of every route.

In order, for each HTTP request:

1. **Who is asking.** ``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only when
   the peer is one of ``RINGBACK_TRUSTED_PROXIES``; then the client is the right-most
   forwarded address that is not itself a trusted proxy. From anyone else the headers
   are ignored, so rotating them cannot dodge the per-address sign-in throttle.
   (``ringback serve`` turns uvicorn's own proxy handling off: it trusts 127.0.0.1.)
2. **What kind of body.** Webhooks and the JSON API take one content type each
   (:data:`BODY_TYPES`); a body of any other type, a ``multipart/form-data`` file part
   above all, is answered 415 before a signature check reads it.
3. **How much body.** At most ``RINGBACK_MAX_BODY_BYTES``, or for a file upload
   (multipart) to the staff pages ``RINGBACK_MAX_UPLOAD_BYTES``: a declared
   ``Content-Length`` over the limit is answered 413 at once, and the bytes are counted
   as they arrive (chunked bodies have no length), so a body is refused exactly when it
   is longer than the limit.
4. **Headers on every answer**: a Content-Security-Policy that allows only this origin's
   own scripts and styles (no inline ones; the templates have none), no framing,
   ``nosniff``, ``Referrer-Policy: same-origin`` (unless the route set a stricter one),
   and ``Cache-Control: no-store`` on everything but ``/static`` (pages, the API and
   feeds carry patient data).
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringback.config import Network
from ringback.logs import log_event

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
# Static files may be cached: they hold no patient data.
CACHEABLE_PREFIXES = ("/static/",)

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART = "multipart/form-data"

# The body each machine-facing route takes, by path prefix (first match wins). ``None``
# in a set: the request may also name no content type (Google's pushes have no body).
BODY_TYPES: tuple[tuple[str, frozenset[str | None]], ...] = (
    ("/twilio/", frozenset({FORM})),
    ("/signalwire/", frozenset({FORM})),
    ("/booking-systems/square/", frozenset({JSON})),
    ("/booking-systems/google/", frozenset({JSON, None})),
    ("/api/", frozenset({JSON})),
)
# Where a file upload (multipart) may be as large as RINGBACK_MAX_UPLOAD_BYTES: the staff
# pages, behind sign-in and CSRF (patient CSV imports).
UPLOAD_PREFIXES = ("/staff/",)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    max_body_bytes: int
    max_upload_bytes: int
    trusted_proxies: tuple[Network, ...] = ()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body grows past its limit (FastAPI passes an
    HTTPException from body parsing through, so the answer is a 413 either way)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"body: larger than the {limit} bytes this address takes")
        self.limit = limit


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _media_type(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return media or None


class Guards:
    """The ASGI middleware (see the module's docstring)."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = self._forwarded(scope)
        send = self._with_headers(scope, send)
        path: str = scope["path"]
        media = _media_type(_header(scope, b"content-type"))
        declared = _header(scope, b"content-length")
        # HTTP/1.1: a request has a body when it is chunked or declares a length above 0
        # (a Content-Type on a GET with no body is judged by nothing).
        has_body = _header(scope, b"transfer-encoding") is not None or (
            declared is not None and declared.strip() not in ("", "0")
        )
        if has_body:
            refused = self._wrong_type(path, media)
            if refused is not None:
                log_event(log, "edge.unsupported_media_type", logging.WARNING, path=path)
                await _answer(send, 415, refused)
                return
        limit = (
            self.limits.max_upload_bytes
            if media == MULTIPART and path.startswith(UPLOAD_PREFIXES)
            else self.limits.max_body_bytes
        )
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            log_event(log, "edge.body_too_large", logging.WARNING, path=path, limit=limit)
            await _answer(send, 413, BodyTooLarge(limit).detail)
            return
        started = False

        async def counting_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, _counting(receive, limit), counting_send)
        except BodyTooLarge as too_large:
            # Raised where nothing turned it into an answer (a mounted app, say).
            log_event(log, "edge.body_too_large", logging.WARNING, path=path, limit=limit)
            if not started:
                await _answer(send, 413, too_large.detail)

    def _wrong_type(self, path: str, media: str | None) -> str | None:
        for prefix, allowed in BODY_TYPES:
            if path.startswith(prefix):
                if media in allowed:
                    return None
                wanted = " or ".join(sorted(t for t in allowed if t is not None))
                return f"Content-Type: expected {wanted}, got {media or 'none'}"
        return None

    def _forwarded(self, scope: Scope) -> Scope:
        trusted = self.limits.trusted_proxies
        client = scope.get("client")
        if not trusted or not client:
            return scope
        peer = _address(str(client[0]))
        if peer is None or not _is_trusted(peer, trusted):
            return scope
        changed = dict(scope)
        forwarded_for = _header(scope, b"x-forwarded-for")
        if forwarded_for:
            hops = [h for h in (_address(p) for p in forwarded_for.split(",")) if h is not None]
            # Right to left: the first hop our trusted proxies did not add is the client.
            chosen = next((h for h in reversed(hops) if not _is_trusted(h, trusted)), None)
            if chosen is None and hops:
                chosen = hops[0]
            if chosen is not None:
                changed["client"] = (str(chosen), 0)
        proto = _header(scope, b"x-forwarded-proto")
        if proto:
            last = proto.split(",")[-1].strip().lower()
            if last in ("http", "https"):
                changed["scheme"] = last
        return changed

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        cacheable = str(scope["path"]).startswith(CACHEABLE_PREFIXES)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                named = {k.lower() for k, _ in headers}
                # A route may be stricter about the referrer (booking links: no-referrer);
                # every other header is this module's to set.
                mine = [
                    (k, v)
                    for k, v in SECURITY_HEADERS
                    if not (k == b"referrer-policy" and k in named)
                ]
                if not cacheable:
                    mine.append((b"cache-control", b"no-store"))
                replaced = {k for k, _ in mine}
                headers = [(k, v) for k, v in headers if k.lower() not in replaced] + mine
                message = {**message, "headers": headers}
            await send(message)

        return sending


def _is_trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: Iterable[Network]
) -> bool:
    return any(address in network for network in networks)


def _counting(receive: Receive, limit: int) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counted


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
