"""A fake Google Calendar API v3 (and Google's OAuth token endpoint) for tests.

It keeps calendars of events in memory (extended properties, status, etags, created and
updated stamps), answers ``freebusy.query`` from them, logs every change so
``events.list`` with a ``syncToken`` returns what changed (and 410 GONE for a token it
has dropped), runs watch channels that POST Google's ``X-Goog-*`` push notifications,
and issues and refreshes OAuth tokens. Every request under ``/calendar/v3`` is checked
against Google's discovery document (:mod:`ringback.fakes.discovery`) and the bearer
token's scopes; violations are recorded and answered with Google's error shape.

Typical use::

    state = FakeGoogleCalendar()
    with FakeGoogleCalendarServer(state) as server:
        ...  # point the adapter's api_base and token_url at server.url
    assert state.violations == []

Two behaviours follow Google, not intuition: Google does not refuse overlapping events
(a calendar happily double-books; Ringback checks), and an inserted event with an id that
already exists (even a deleted one) is refused with 409 ``duplicate``.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ringback.fakes.contract import ApiContract, Operation, bearer_token, parse_rfc3339
from ringback.fakes.discovery import google_calendar_contract
from ringback.fakes.scripting import (
    BackgroundTasks,
    RecordedRequest,
    ScriptedError,
    TrafficLog,
)
from ringback.fakes.twilio import BackgroundServer

logger = logging.getLogger(__name__)

TOKEN_PATH = "/token"  # noqa: S105 (a URL path, not a secret)
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
EVENTS_SCOPE = "https://www.googleapis.com/auth/calendar.events"
FREEBUSY_SCOPE = "https://www.googleapis.com/auth/calendar.freebusy"
ACCESS_TOKEN_SECONDS = 3600
# Google's canonical reason phrases, by the reasons tests script most.
_STATUS_NAMES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "ALREADY_EXISTS",
    410: "GONE",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_DEFAULT_REASONS: Mapping[int, str] = {
    400: "badRequest",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    405: "methodNotAllowed",
    409: "duplicate",
    410: "deleted",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}

ResourceState = Literal["sync", "exists", "not_exists"]


def google_error(
    status: int,
    message: str,
    *,
    reason: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ScriptedError:
    """An error in Google's JSON shape: ``{"error": {"code", "message", "errors", "status"}}``."""
    reason = reason or _DEFAULT_REASONS.get(status, "backendError")
    domain = "usageLimits" if "RateLimit" in reason or "rateLimit" in reason else "global"
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"domain": domain, "reason": reason, "message": message}],
            "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
    }
    return ScriptedError(status, body, dict(headers or {}))


def _respond(error: ScriptedError) -> JSONResponse:
    return JSONResponse(dict(error.body), status_code=error.status, headers=dict(error.headers))


@dataclass(slots=True)
class _StoredEvent:
    calendar_id: str
    body: dict[str, Any]
    sequence_number: int  # position in the change log when last changed

    @property
    def cancelled(self) -> bool:
        return self.body.get("status") == "cancelled"


@dataclass(frozen=True, slots=True)
class WatchChannel:
    """A watch channel the fake holds: where it posts, until when, and for which calendar."""

    id: str
    resource_id: str
    calendar_id: str
    address: str
    token: str | None
    expiration: datetime


@dataclass(frozen=True, slots=True)
class PushAttempt:
    """One push notification the fake POSTed, and what the receiver answered."""

    channel_id: str
    address: str
    headers: Mapping[str, str]
    response_status: int | None
    error: str | None


@dataclass(frozen=True, slots=True)
class _Grant:
    scopes: frozenset[str]
    client_id: str


# Checks a service account's JWT signature: (signing input, signature) -> valid?
SignatureVerifier = Callable[[bytes, bytes], bool]


class FakeGoogleCalendar:
    """Calendars, OAuth clients and tokens, scripted failures and recorded traffic.

    ``calendar_ids`` are the calendars the signed-in user can write; ``"primary"`` names
    the first. Tokens: :meth:`issue_access_token` for a test that skips OAuth, or the
    token endpoint (authorization code, refresh token, service-account JWT).
    """

    def __init__(
        self,
        *,
        calendar_ids: tuple[str, ...] = ("clinic@example.com",),
        client_id: str = "ringback-test.apps.googleusercontent.com",
        client_secret: str | None = None,
        contract: ApiContract | None = None,
        service_account_email: str = "ringback@project.iam.gserviceaccount.com",
        service_account_verifier: SignatureVerifier | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.calendar_ids = calendar_ids
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_hex(16)
        self.contract = contract if contract is not None else google_calendar_contract()
        self.service_account_email = service_account_email
        self.service_account_verifier = service_account_verifier
        self.clock = clock or (lambda: datetime.now(UTC))
        self.traffic = TrafficLog()
        self._events: dict[str, dict[str, _StoredEvent]] = {cid: {} for cid in calendar_ids}
        self._sequence = 0
        self._sync_generation = 0
        self._last_created = datetime.min.replace(tzinfo=UTC)
        self._access_tokens: dict[str, tuple[_Grant, datetime]] = {}
        self._refresh_tokens: dict[str, _Grant] = {}
        self._codes: dict[str, tuple[_Grant, str]] = {}
        self._channels: dict[str, WatchChannel] = {}
        self._pushes: list[PushAttempt] = []
        self._message_numbers: dict[str, int] = {}
        # Calendars changed from outside the server; their pushes go out on its next turn.
        self._pending_notifications: set[str] = set()

    # --- tokens -----------------------------------------------------------------------

    def issue_access_token(self, scopes: tuple[str, ...] = (EVENTS_SCOPE, FREEBUSY_SCOPE)) -> str:
        """A valid access token for ``scopes``, as if OAuth had run."""
        token = "ya29.fake-" + secrets.token_urlsafe(24)
        expires = self.clock() + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        with self.traffic.lock:
            self._access_tokens[token] = (_Grant(frozenset(scopes), self.client_id), expires)
        return token

    def authorize(self, redirect_uri: str, scopes: tuple[str, ...]) -> str:
        """The code Google would put on ``redirect_uri`` after the user said yes."""
        code = "4/fake-" + secrets.token_urlsafe(16)
        with self.traffic.lock:
            self._codes[code] = (_Grant(frozenset(scopes), self.client_id), redirect_uri)
        return code

    def expire_access_tokens(self) -> None:
        """Every access token issued so far answers 401 from now on (refresh still works)."""
        with self.traffic.lock:
            self._access_tokens.clear()

    def revoke_refresh_tokens(self) -> None:
        """The user removed our access: refreshing answers ``invalid_grant``."""
        with self.traffic.lock:
            self._refresh_tokens.clear()
            self._access_tokens.clear()

    # --- calendars --------------------------------------------------------------------

    def add_event(
        self,
        start: datetime,
        end: datetime,
        *,
        calendar_id: str | None = None,
        summary: str = "Busy",
        transparent: bool = False,
    ) -> str:
        """An event someone else put on the calendar (front desk, the provider's phone)."""
        calendar = calendar_id or self.calendar_ids[0]
        body: dict[str, Any] = {
            "summary": summary,
            "start": {"dateTime": start.astimezone(UTC).isoformat()},
            "end": {"dateTime": end.astimezone(UTC).isoformat()},
        }
        if transparent:
            body["transparency"] = "transparent"
        with self.traffic.lock:
            stored = self._insert(calendar, body)
        self._notify_later(calendar)
        return str(stored.body["id"])

    def events(
        self, calendar_id: str | None = None, *, include_cancelled: bool = False
    ) -> list[dict[str, Any]]:
        """Snapshots of the calendar's events, oldest first."""
        calendar = self._resolve(calendar_id or self.calendar_ids[0]) or ""
        with self.traffic.lock:
            return [
                copy.deepcopy(stored.body)
                for stored in self._events.get(calendar, {}).values()
                if include_cancelled or not stored.cancelled
            ]

    def expire_sync_tokens(self) -> None:
        """Every sync token issued so far answers 410 GONE (Google dropped them)."""
        with self.traffic.lock:
            self._sync_generation += 1

    @property
    def channels(self) -> list[WatchChannel]:
        with self.traffic.lock:
            return list(self._channels.values())

    @property
    def pushes(self) -> list[PushAttempt]:
        with self.traffic.lock:
            return list(self._pushes)

    def wait_for_pushes(self, count: int, timeout: float = 5.0) -> list[PushAttempt]:
        with self.traffic.changed:
            if not self.traffic.changed.wait_for(lambda: len(self._pushes) >= count, timeout):
                raise TimeoutError(f"the fake made {len(self._pushes)} of {count} pushes")
            return list(self._pushes)

    # --- scripting --------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        reason: str | None = None,
        message: str = "Backend Error",
        operation: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        """Answer the next ``count`` requests (for ``operation``, e.g.
        ``calendar.events.insert``; ``None``: any) with a Google error."""
        headers = {"Retry-After": str(retry_after_seconds)} if retry_after_seconds else {}
        error = google_error(status, message, reason=reason, headers=headers)
        self.traffic.script(error, count, operation)

    def rate_limit_next(self, count: int = 1, *, operation: str | None = None) -> None:
        self.fail_next(
            count,
            status=429,
            reason="rateLimitExceeded",
            message="Rate Limit Exceeded",
            operation=operation,
        )

    def hold_next(
        self, count: int = 1, *, seconds: float | None = None, operation: str | None = None
    ) -> None:
        """Do the next ``count`` requests' work, then hold the answer (a client timeout)."""
        self.traffic.hold(count, seconds, operation)

    @property
    def violations(self) -> list[str]:
        return self.traffic.violations

    @property
    def requests(self) -> list[RecordedRequest]:
        return self.traffic.requests

    # --- the model (call with the lock held) ------------------------------------------

    def _resolve(self, calendar_id: str) -> str | None:
        if calendar_id == "primary":
            return self.calendar_ids[0]
        return calendar_id if calendar_id in self._events else None

    def _next_sequence(self) -> int:
        self._sequence += 1
        return self._sequence

    def _stamp(self) -> datetime:
        # Strictly increasing creation stamps: "who booked first" must have one answer.
        now = self.clock().astimezone(UTC)
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if now <= self._last_created:
            now = self._last_created + timedelta(milliseconds=1)
        self._last_created = now
        return now

    def _insert(self, calendar_id: str, body: dict[str, Any]) -> _StoredEvent:
        event_id = str(body.get("id") or uuid.uuid4().hex[:26].translate(_BASE32HEX))
        stamp = _google_time(self._stamp())
        stored_body: dict[str, Any] = {
            "kind": "calendar#event",
            **copy.deepcopy(body),
            "id": event_id,
            "status": body.get("status", "confirmed"),
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": stamp,
            "updated": stamp,
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "creator": {"email": calendar_id, "self": True},
            "organizer": {"email": calendar_id, "self": True},
        }
        stored = _StoredEvent(calendar_id, stored_body, self._next_sequence())
        _set_etag(stored)
        self._events[calendar_id][event_id] = stored
        return stored

    def _change(self, stored: _StoredEvent) -> None:
        stored.sequence_number = self._next_sequence()
        stored.body["updated"] = _google_time(self._stamp())
        _set_etag(stored)

    def _busy(
        self, calendar_id: str, low: datetime, high: datetime
    ) -> list[tuple[datetime, datetime]]:
        spans = []
        for stored in self._events[calendar_id].values():
            if stored.cancelled or stored.body.get("transparency") == "transparent":
                continue
            start, end = _event_span(stored.body)
            if start is not None and end is not None and start < high and end > low:
                spans.append((max(start, low), min(end, high)))
        spans.sort()
        merged: list[tuple[datetime, datetime]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    # --- push -------------------------------------------------------------------------

    def _notify_later(self, calendar_id: str) -> None:
        with self.traffic.lock:
            self._pending_notifications.add(calendar_id)

    def _channels_for(self, calendar_id: str) -> list[WatchChannel]:
        now = self.clock()
        return [
            channel
            for channel in self._channels.values()
            if channel.calendar_id == calendar_id and channel.expiration > now
        ]

    def _push_headers(self, channel: WatchChannel, state: ResourceState) -> dict[str, str]:
        number = self._message_numbers.get(channel.id, 0) + 1
        self._message_numbers[channel.id] = number
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(channel.expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": (
                f"https://www.googleapis.com/calendar/v3/calendars/{channel.calendar_id}/events"
                "?alt=json"
            ),
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(number),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        return headers

    def _record_push(self, attempt: PushAttempt) -> None:
        with self.traffic.changed:
            self._pushes.append(attempt)
            self.traffic.changed.notify_all()


_BASE32HEX = str.maketrans("wxyz", "0123")


def _set_etag(stored: _StoredEvent) -> None:
    digest = hashlib.sha256(f"{stored.body['id']}:{stored.sequence_number}".encode()).hexdigest()
    stored.body["etag"] = f'"{int(digest[:15], 16)}"'


def _google_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event_span(body: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    return _moment(body.get("start")), _moment(body.get("end"))


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, dict):
        return None
    if "dateTime" in value:
        return parse_rfc3339(str(value["dateTime"]))
    if "date" in value:
        # All-day: midnight UTC is near enough for a fake.
        return datetime.fromisoformat(str(value["date"])).replace(tzinfo=UTC)
    return None


def _merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    """Patch semantics: objects merge field by field, everything else is replaced."""
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(name), dict):
            _merge(target[name], value)
        elif value is None:
            target.pop(name, None)
        else:
            target[name] = copy.deepcopy(value)


@dataclass(frozen=True, slots=True)
class _Call:
    operation: str
    path_values: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: Any


def create_fake_google_calendar_app(state: FakeGoogleCalendar) -> Starlette:
    """The fake as an ASGI app: ``/token`` and ``/calendar/v3/...``."""
    background = BackgroundTasks()
    push_client: dict[str, httpx.AsyncClient] = {}

    def notify(calendar_id: str, resource_state: ResourceState = "exists") -> None:
        with state.traffic.lock:
            pending = [
                (channel, state._push_headers(channel, resource_state))
                for channel in state._channels_for(calendar_id)
            ]
        for channel, headers in pending:
            background.spawn(post_push(channel, headers))

    async def post_push(channel: WatchChannel, headers: dict[str, str]) -> None:
        client = push_client["client"]
        status: int | None = None
        error: str | None = None
        try:
            response = await client.post(channel.address, headers=headers, content=b"")
            status = response.status_code
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        state._record_push(PushAttempt(channel.id, channel.address, headers, status, error))

    def flush_pending() -> None:
        with state.traffic.lock:
            pending = list(state._pending_notifications)
            state._pending_notifications.clear()
        for calendar_id in pending:
            notify(calendar_id)

    async def front_door(request: Request) -> Response:
        received = time.monotonic()
        raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?", 1)[0]
        raw_path = raw_path or request.url.path
        query = parse_qs(request.url.query, keep_blank_values=True)
        body = await request.body()
        flush_pending()

        def record(operation: str | None, status: int | None, parsed: Any = None) -> None:
            state.traffic.record(
                RecordedRequest(
                    request.method,
                    raw_path,
                    {name: tuple(values) for name, values in query.items()},
                    parsed,
                    operation,
                    status,
                    received,
                )
            )

        if raw_path == TOKEN_PATH:
            response = _token_endpoint(state, request.method, body)
            record("oauth.token", response.status_code)
            return response
        checked = state.contract.check(
            request.method, raw_path, query, request.headers.get("content-type"), body
        )
        operation = checked.operation.operation_id if checked.operation else None
        auth_error = _auth_error(state, request.headers.get("authorization"), checked.operation)
        if auth_error is not None:
            record(operation, auth_error.status, checked.body)
            return _respond(auth_error)
        if checked.violations:
            messages = [violation.message for violation in checked.violations]
            state.traffic.record_violations(messages)
            for message in messages:
                logger.warning("fake_google_calendar.contract_violation %s", message)
            first = checked.violations[0]
            error = google_error(first.http_status, "; ".join(messages))
            record(operation, error.status, checked.body)
            return _respond(error)
        assert checked.operation is not None
        assert operation is not None
        scripted = state.traffic.take_error(operation)
        if scripted is not None:
            record(operation, scripted.status, checked.body)
            return _respond(scripted)
        handler = _HANDLERS.get(operation)
        if handler is None:
            message = f"{operation}: the fake Google Calendar does not implement this method"
            state.traffic.record_violations([message])
            record(operation, 501, checked.body)
            return _respond(google_error(501, message, reason="notImplemented"))
        call = _Call(operation, checked.path_values, query, checked.body)
        response, changed = handler(state, call)
        for calendar_id, resource_state in changed:
            notify(calendar_id, resource_state)
        hold, seconds = state.traffic.take_hold(operation)
        if hold:
            await state.traffic.hold_answer(seconds)
            if await request.is_disconnected():
                record(operation, None, checked.body)
                return response
        record(operation, response.status_code, checked.body)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=5.0) as client:
            push_client["client"] = client
            yield
            await background.cancel_all()

    return Starlette(
        routes=[
            Route("/{path:path}", front_door, methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
        ],
        lifespan=lifespan,
    )


def _auth_error(
    state: FakeGoogleCalendar, authorization: str | None, operation: Operation | None
) -> ScriptedError | None:
    token, problem = bearer_token(authorization)
    if token is None:
        message = f"Request is missing required authentication credential: {problem}"
        state.traffic.record_violations([message])
        return google_error(401, message, reason="required")
    with state.traffic.lock:
        grant_and_expiry = state._access_tokens.get(token)
    if grant_and_expiry is None or grant_and_expiry[1] <= state.clock():
        return google_error(401, "Invalid Credentials", reason="authError")
    grant = grant_and_expiry[0]
    if operation is not None and operation.scopes and not grant.scopes & set(operation.scopes):
        message = "Request had insufficient authentication scopes."
        state.traffic.record_violations([f"{operation.operation_id}: {message}"])
        return google_error(403, message, reason="insufficientPermissions")
    return None


# --- OAuth token endpoint ------------------------------------------------------------------


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _token_endpoint(state: FakeGoogleCalendar, method: str, body: bytes) -> Response:
    if method != "POST":
        return _oauth_error(405, "invalid_request", "the token endpoint takes POST")
    form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
    grant_type = form.get("grant_type")
    if grant_type == JWT_BEARER_GRANT:
        return _jwt_grant(state, form.get("assertion", ""))
    if form.get("client_id") != state.client_id or form.get("client_secret") != state.client_secret:
        return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
    with state.traffic.lock:
        if grant_type == "authorization_code":
            found = state._codes.pop(form.get("code", ""), None)
            if found is None:
                return _oauth_error(400, "invalid_grant", "Malformed auth code.")
            grant, redirect_uri = found
            if form.get("redirect_uri") != redirect_uri:
                return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            refresh = "1//fake-" + secrets.token_urlsafe(24)
            state._refresh_tokens[refresh] = grant
            return JSONResponse(_token_answer(state, grant) | {"refresh_token": refresh})
        if grant_type == "refresh_token":
            grant_or_none = state._refresh_tokens.get(form.get("refresh_token", ""))
            if grant_or_none is None:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            return JSONResponse(_token_answer(state, grant_or_none))
    return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def _token_answer(state: FakeGoogleCalendar, grant: _Grant) -> dict[str, Any]:
    token = "ya29.fake-" + secrets.token_urlsafe(24)
    state._access_tokens[token] = (grant, state.clock() + timedelta(seconds=ACCESS_TOKEN_SECONDS))
    return {
        "access_token": token,
        "expires_in": ACCESS_TOKEN_SECONDS,
        "scope": " ".join(sorted(grant.scopes)),
        "token_type": "Bearer",
    }


def _jwt_grant(state: FakeGoogleCalendar, assertion: str) -> Response:
    """RFC 7523: a JWT signed by the service account's key (checked by the verifier)."""
    parts = assertion.split(".")
    if len(parts) != 3:
        return _oauth_error(400, "invalid_grant", "Invalid JWT: not three parts")
    try:
        header = json.loads(_b64decode(parts[0]))
        claims = json.loads(_b64decode(parts[1]))
        signature = _b64decode(parts[2])
    except ValueError:
        return _oauth_error(400, "invalid_grant", "Invalid JWT: not base64url JSON")
    now = state.clock().timestamp()
    problem = None
    if header.get("alg") != "RS256":
        problem = "alg must be RS256"
    elif claims.get("iss") != state.service_account_email:
        problem = "Invalid issuer"
    elif not str(claims.get("aud", "")).endswith(TOKEN_PATH):
        problem = "Invalid JWT: aud is not the token endpoint"
    elif not isinstance(claims.get("iat"), int) or not isinstance(claims.get("exp"), int):
        problem = "Invalid JWT: iat and exp must be integers"
    elif claims["exp"] - claims["iat"] > 3600 or claims["exp"] < now or claims["iat"] > now + 300:
        problem = "Invalid JWT: Token must be a short-lived token (60 minutes)"
    elif not claims.get("scope"):
        problem = "Invalid JWT: no scope"
    verifier = state.service_account_verifier
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    if problem is None and (verifier is None or not verifier(signing_input, signature)):
        problem = "Invalid JWT Signature."
    if problem is not None:
        return _oauth_error(400, "invalid_grant", problem)
    grant = _Grant(frozenset(str(claims["scope"]).split()), state.service_account_email)
    with state.traffic.lock:
        return JSONResponse(_token_answer(state, grant))


def _b64decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("not base64url") from exc


# --- Calendar methods ----------------------------------------------------------------------

_Changed = list[tuple[str, ResourceState]]
_Handler = Callable[[FakeGoogleCalendar, _Call], tuple[Response, _Changed]]


def _calendar(state: FakeGoogleCalendar, call: _Call) -> str | None:
    return state._resolve(call.path_values.get("calendarId", ""))


def _not_found(what: str) -> tuple[Response, _Changed]:
    return _respond(google_error(404, f"Not Found: no such {what}")), []


def _events_insert(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    if calendar is None:
        return _not_found("calendar")
    with state.traffic.lock:
        event_id = call.body.get("id")
        if event_id is not None and event_id in state._events[calendar]:
            message = "The requested identifier already exists."
            return _respond(google_error(409, message, reason="duplicate")), []
        stored = state._insert(calendar, call.body)
        answer = copy.deepcopy(stored.body)
    return JSONResponse(answer), [(calendar, "exists")]


def _events_get(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    with state.traffic.lock:
        stored = state._events.get(calendar or "", {}).get(call.path_values["eventId"])
        if stored is None:
            return _not_found("event")
        # ``get`` returns cancelled (deleted) events too.
        return JSONResponse(copy.deepcopy(stored.body)), []


def _events_patch(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    with state.traffic.lock:
        stored = state._events.get(calendar or "", {}).get(call.path_values["eventId"])
        if stored is None or calendar is None:
            return _not_found("event")
        patch = {k: v for k, v in call.body.items() if k not in ("id", "created", "etag")}
        _merge(stored.body, patch)
        stored.body["sequence"] = int(stored.body.get("sequence", 0)) + 1
        state._change(stored)
        answer = copy.deepcopy(stored.body)
    return JSONResponse(answer), [(calendar, "exists")]


def _events_delete(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    with state.traffic.lock:
        stored = state._events.get(calendar or "", {}).get(call.path_values["eventId"])
        if stored is None or calendar is None:
            return _not_found("event")
        if stored.cancelled:
            return _respond(google_error(410, "Resource has been deleted", reason="deleted")), []
        stored.body["status"] = "cancelled"
        state._change(stored)
    return Response(status_code=204), [(calendar, "exists")]


def _events_list(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    if calendar is None:
        return _not_found("calendar")
    query = call.query

    def first(name: str) -> str | None:
        return query[name][0] if name in query else None

    with state.traffic.lock:
        sync_token = first("syncToken")
        since: int | None = None
        if sync_token is not None:
            since = _read_sync_token(sync_token, calendar, state._sync_generation)
            if since is None:
                message = "Sync token is no longer valid, a full sync is required."
                return _respond(google_error(410, message, reason="fullSyncRequired")), []
        show_deleted = since is not None or first("showDeleted") == "true"
        low = parse_rfc3339(first("timeMin") or "") if "timeMin" in query else None
        high = parse_rfc3339(first("timeMax") or "") if "timeMax" in query else None
        wanted = [
            tuple(constraint.split("=", 1))
            for constraint in query.get("privateExtendedProperty", [])
        ]
        items = []
        for stored in state._events[calendar].values():
            if since is not None and stored.sequence_number <= since:
                continue
            if stored.cancelled and not show_deleted:
                continue
            start, end = _event_span(stored.body)
            if low is not None and (end is None or end <= low):
                continue
            if high is not None and (start is None or start >= high):
                continue
            private = stored.body.get("extendedProperties", {}).get("private", {})
            if any(len(pair) != 2 or private.get(pair[0]) != pair[1] for pair in wanted):
                continue
            items.append(copy.deepcopy(stored.body))
        if first("orderBy") == "startTime":
            items.sort(key=lambda item: _event_span(item)[0] or datetime.min.replace(tzinfo=UTC))
        # Pages: the token holds the offset and the change-log position of the first page,
        # which the last page's sync token carries (later changes come with the next sync).
        page_size = min(int(first("maxResults") or 250), 2500)
        offset, snapshot = 0, state._sequence
        if "pageToken" in query:
            try:
                offset_text, snapshot_text = _b64decode(query["pageToken"][0]).decode().split("|")
                offset, snapshot = int(offset_text), int(snapshot_text)
            except ValueError:
                return _respond(google_error(400, "Invalid page token", reason="invalid")), []
        answer: dict[str, Any] = {
            "kind": "calendar#events",
            "etag": f'"{state._sequence}"',
            "summary": calendar,
            "updated": _google_time(state.clock()),
            "timeZone": "UTC",
            "accessRole": "owner",
            "defaultReminders": [],
            "items": items[offset : offset + page_size],
        }
        if offset + page_size < len(items):
            raw = f"{offset + page_size}|{snapshot}".encode()
            answer["nextPageToken"] = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        else:
            answer["nextSyncToken"] = _sync_token(snapshot, calendar, state._sync_generation)
    return JSONResponse(answer), []


def _sync_token(sequence: int, calendar: str, generation: int) -> str:
    raw = f"{calendar}|{generation}|{sequence}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_sync_token(token: str, calendar: str, generation: int) -> int | None:
    """The change-log position in ``token``; ``None`` if dropped or not this calendar's."""
    try:
        owner, token_generation, sequence = _b64decode(token).decode().rsplit("|", 2)
        if owner != calendar or int(token_generation) != generation:
            return None
        return int(sequence)
    except (ValueError, UnicodeDecodeError):
        return None


def _freebusy(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    low = parse_rfc3339(call.body["timeMin"])
    high = parse_rfc3339(call.body["timeMax"])
    assert low is not None
    assert high is not None
    calendars: dict[str, Any] = {}
    with state.traffic.lock:
        for item in call.body["items"]:
            requested = str(item.get("id", ""))
            calendar = state._resolve(requested)
            if calendar is None:
                calendars[requested] = {
                    "busy": [],
                    "errors": [{"domain": "global", "reason": "notFound"}],
                }
                continue
            calendars[requested] = {
                "busy": [
                    {"start": _google_time(start), "end": _google_time(end)}
                    for start, end in state._busy(calendar, low, high)
                ]
            }
    answer = {
        "kind": "calendar#freeBusy",
        "timeMin": _google_time(low),
        "timeMax": _google_time(high),
        "calendars": calendars,
    }
    return JSONResponse(answer), []


def _events_watch(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    calendar = _calendar(state, call)
    if calendar is None:
        return _not_found("calendar")
    body = call.body
    address = str(body["address"])
    host = urlsplit(address).hostname or ""
    if not address.startswith("https://") and host not in ("127.0.0.1", "localhost", "::1"):
        # Google only posts to https; the fake lets loopback tests use plain http.
        message = f"WebHook callback must be HTTPS: {address}"
        state.traffic.record_violations([f"calendar.events.watch: {message}"])
        return _respond(google_error(400, message, reason="push.webhookUrlNotHttps")), []
    with state.traffic.lock:
        if body["id"] in state._channels:
            message = f"Channel id {body['id']} not unique"
            return _respond(google_error(400, message, reason="channelIdNotUnique")), []
        now = state.clock()
        requested = body.get("expiration")
        # Google's default and maximum for events: one week.
        longest = now + timedelta(days=7)
        expiration = longest
        if requested is not None:
            expiration = min(longest, datetime.fromtimestamp(int(requested) / 1000, UTC))
        channel = WatchChannel(
            id=str(body["id"]),
            resource_id=secrets.token_urlsafe(18),
            calendar_id=calendar,
            address=address,
            token=body.get("token"),
            expiration=expiration,
        )
        state._channels[channel.id] = channel
    answer = {
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{calendar}/events?alt=json",
        "expiration": str(int(expiration.timestamp() * 1000)),
    }
    if channel.token is not None:
        answer["token"] = channel.token
    return JSONResponse(answer), [(calendar, "sync")]


def _channels_stop(state: FakeGoogleCalendar, call: _Call) -> tuple[Response, _Changed]:
    with state.traffic.lock:
        channel = state._channels.get(str(call.body["id"]))
        if channel is None or channel.resource_id != call.body["resourceId"]:
            message = f"Channel '{call.body['id']}' not found for project"
            return _respond(google_error(404, message, reason="notFound")), []
        del state._channels[channel.id]
    return Response(status_code=204), []


_HANDLERS: Mapping[str, _Handler] = {
    "calendar.events.insert": _events_insert,
    "calendar.events.get": _events_get,
    "calendar.events.patch": _events_patch,
    "calendar.events.delete": _events_delete,
    "calendar.events.list": _events_list,
    "calendar.events.watch": _events_watch,
    "calendar.freebusy.query": _freebusy,
    "calendar.channels.stop": _channels_stop,
}


class FakeGoogleCalendarServer(BackgroundServer):
    """A :class:`FakeGoogleCalendar` over real HTTP; the API is ``{url}/calendar/v3``."""

    def __init__(self, state: FakeGoogleCalendar | None = None, *, startup_timeout: float = 10.0):
        self.state = state if state is not None else FakeGoogleCalendar()
        super().__init__(
            create_fake_google_calendar_app(self.state), startup_timeout=startup_timeout
        )

    @property
    def api_base(self) -> str:
        return f"{self.url}/calendar/v3"

    @property
    def token_url(self) -> str:
        return f"{self.url}{TOKEN_PATH}"

    def start(self) -> Self:
        self.state.traffic.rearm()
        return super().start()

    def stop(self) -> None:
        self.state.traffic.release_held_answers()
        super().stop()
