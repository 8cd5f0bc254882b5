"""Google Calendar (API v3) as a :class:`~ringback.ports.BookingSystem`, over httpx.

Google Calendar only knows busy time: it has no services, no staff and no slots, and it
never refuses an overlapping event. So, per provider calendar:

* ``busy``: ``POST /freeBusy`` (``freebusy.query``) for the provider calendars.
* ``create``: idempotent twice over. The event id is derived from the appointment's
  ``ringback_id`` (Google accepts client ids in base32hex), so a retried insert answers
  409 ``duplicate`` instead of adding a second event; and the event carries
  ``extendedProperties.private.ringbackId``, looked up first with
  ``events.list?privateExtendedProperty=ringbackId=...``, because Google warns that it
  cannot guarantee to detect id collisions at creation time. Before inserting, freebusy
  must show the slot free (else :class:`~ringback.ports.BookingConflict`); after, the
  events overlapping the slot are read back and the earliest created one keeps it
  (:mod:`ringback.integrations.slot_claims`): a later one of ours is deleted again and
  reported as a conflict. Twenty concurrent writers end with one event.
* ``reschedule``: ``events.patch`` of start, end, summary and note, after checking the new
  time holds no one else's event; ``cancel``: ``events.delete`` (404 and 410: already gone).
* ``changes``: ``events.list`` with the ``syncToken`` of the previous call (the first call
  is a full read from a day ago and returns the first token). A 410 GONE means Google
  dropped the token: the calendar is read in full again.
* ``watch`` / ``stop_channel``: push channels (``events.watch``, ``channels.stop``), with
  :func:`channel_needs_renewal` and :func:`parse_push_notification` for the receiving end.

An :class:`~ringback.ports.ExternalBookingRef` names ``{calendarId}/{eventId}``: Google
needs both to address an event. Failures raise
:class:`~ringback.ports.BookingSystemUnavailable`: a 401 first renews the access token once
(``retry=False`` if that fails); 429, 5xx, Google's 403 rate-limit reasons and timeouts
are ``retry=True``. Details never hold tokens or event text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import httpx

from ringback.integrations.slot_claims import Claim, first_claim_wins
from ringback.logs import log_event
from ringback.ports import (
    BookingConflict,
    BookingSystemCapabilities,
    BookingSystemUnavailable,
    BusyTime,
    ExternalBooking,
    ExternalBookingRef,
    ExternalChange,
    ExternalChangeKind,
    ExternalSlot,
)

logger = logging.getLogger(__name__)

GOOGLE_API_BASE = "https://www.googleapis.com/calendar/v3"
GOOGLE_AUTH_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Least privilege: read and write events, and read free/busy. ``calendar.events`` does not
# cover ``freebusy.query`` (its discovery entry lists only calendar, calendar.readonly,
# calendar.freebusy and calendar.events.freebusy); the broad ``calendar`` scope would also
# let us delete calendars and change their sharing, which Ringback never needs.
EVENTS_SCOPE = "https://www.googleapis.com/auth/calendar.events"
FREEBUSY_SCOPE = "https://www.googleapis.com/auth/calendar.freebusy"
DEFAULT_SCOPES = (EVENTS_SCOPE, FREEBUSY_SCOPE)
RINGBACK_ID_PROPERTY = "ringbackId"
USER_AGENT = "Ringback-GoogleCalendar/1"
# Renew an access token this long before Google says it expires.
TOKEN_EXPIRY_MARGIN = timedelta(seconds=60)
# Google's own reasons for "slow down", sent with 403 as well as 429.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
# A full read of a calendar starts this far back: older events cannot hold a slot.
FULL_SYNC_LOOKBACK = timedelta(days=1)


class AccessTokenProvider(Protocol):
    """Gives a Google access token; ``force_refresh`` after Google refused the last one.

    Raises :class:`~ringback.ports.BookingSystemUnavailable` when no token can be had.
    """

    def __call__(self, *, force_refresh: bool = False) -> str: ...


@dataclass(frozen=True, slots=True)
class StaticAccessToken:
    """A token that cannot be renewed (tests, or a token the caller renews elsewhere)."""

    token: str

    def __call__(self, *, force_refresh: bool = False) -> str:
        if force_refresh:
            raise BookingSystemUnavailable("google: access token refused", retry=False)
        return self.token


@dataclass(frozen=True, slots=True)
class OAuthTokens:
    """What Google's token endpoint answered. ``refresh_token`` only on the first consent."""

    access_token: str
    expires_at: datetime
    refresh_token: str | None
    scopes: tuple[str, ...]


class _TokenEndpoint:
    """Posts a grant to Google's token endpoint and reads the answer."""

    def __init__(
        self,
        token_url: str,
        client: httpx.Client | None,
        timeout: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.token_url = token_url
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)
        self._clock = clock

    def post(self, form: Mapping[str, str]) -> OAuthTokens:
        try:
            response = self._client.post(
                self.token_url, data=dict(form), headers={"User-Agent": USER_AGENT}
            )
        except httpx.TimeoutException as exc:
            raise BookingSystemUnavailable("google: token endpoint timed out") from exc
        except httpx.HTTPError as exc:
            raise BookingSystemUnavailable(
                f"google: token endpoint unreachable ({type(exc).__name__})"
            ) from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise BookingSystemUnavailable(
                f"google: token endpoint answered {response.status_code}"
            )
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code != 200 or "access_token" not in answer:
            error = answer.get("error", "unknown") if isinstance(answer, dict) else "unknown"
            log_event(logger, "google.oauth.refused", logging.WARNING, error=error)
            raise BookingSystemUnavailable(
                f"google: token endpoint refused the grant ({error}); reconnect Google Calendar",
                retry=False,
            )
        return OAuthTokens(
            access_token=str(answer["access_token"]),
            expires_at=self._clock() + timedelta(seconds=int(answer.get("expires_in", 3600))),
            refresh_token=answer.get("refresh_token"),
            scopes=tuple(str(answer.get("scope", "")).split()),
        )

    def close(self) -> None:
        if self._own_client:
            self._client.close()


class _CachingProvider:
    """An :class:`AccessTokenProvider` that keeps a token until shortly before it expires."""

    def __init__(self, fetch: Callable[[], OAuthTokens], clock: Callable[[], datetime]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: OAuthTokens | None = None

    def __call__(self, *, force_refresh: bool = False) -> str:
        with self._lock:
            tokens = self._tokens
            if (
                force_refresh
                or tokens is None
                or tokens.expires_at - TOKEN_EXPIRY_MARGIN <= self._clock()
            ):
                tokens = self._fetch()
                self._tokens = tokens
            return tokens.access_token


class GoogleOAuth:
    """The authorization-code flow for one OAuth client (web application type).

    ``consent_url`` sends the clinic's admin to Google with ``access_type=offline`` and
    ``prompt=consent`` (so Google issues a refresh token even on a second connect) and a
    ``state`` the caller checks on return (CSRF). ``exchange_code`` turns the returned code
    into tokens; ``provider`` keeps an access token fresh from the stored refresh token.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        *,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        auth_url: str = GOOGLE_AUTH_URL,
        token_url: str = GOOGLE_TOKEN_URL,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = tuple(scopes)
        self.auth_url = auth_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self._endpoint = _TokenEndpoint(token_url, client, timeout, self._clock)

    @staticmethod
    def new_state() -> str:
        """A fresh unguessable ``state`` to store in the admin's session before redirecting."""
        return secrets.token_urlsafe(24)

    def consent_url(self, state: str) -> str:
        parameters = {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scopes),
            "access_type": "offline",
            "prompt": "consent",
            "include_granted_scopes": "true",
            "state": state,
        }
        return f"{self.auth_url}?{urlencode(parameters)}"

    def exchange_code(self, code: str) -> OAuthTokens:
        """Trade the code from the redirect for tokens (keep ``refresh_token`` sealed)."""
        tokens = self._endpoint.post(
            {
                "grant_type": "authorization_code",
                "code": code,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
                "redirect_uri": self.redirect_uri,
            }
        )
        missing = set(self.scopes) - set(tokens.scopes)
        if tokens.scopes and missing:
            # The consent screen lets the admin untick scopes; say which one is missing.
            raise BookingSystemUnavailable(
                f"google: consent did not grant {', '.join(sorted(missing))}", retry=False
            )
        return tokens

    def refresh(self, refresh_token: str) -> OAuthTokens:
        return self._endpoint.post(
            {
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
                "client_secret": self._client_secret,
            }
        )

    def provider(self, refresh_token: str) -> AccessTokenProvider:
        """An access-token provider renewing from ``refresh_token`` as needed."""
        return _CachingProvider(lambda: self.refresh(refresh_token), self._clock)

    def close(self) -> None:
        self._endpoint.close()


# Signs the JWT's signing input with the service account's private key (RS256, i.e.
# RSASSA-PKCS1-v1_5 with SHA-256), returning the raw signature bytes.
JwtSigner = Callable[[bytes], bytes]


class ServiceAccountCredentials:
    """The service-account flow (RFC 7523 JWT bearer grant), for Workspace clinics.

    RS256 needs an RSA implementation, which the standard library lacks; the signature comes
    from ``signer`` (:func:`ringback.booking.systems.rsa_signer` signs with the key file's
    private key through ``cryptography``), so a cloud KMS can sign instead. ``subject``
    impersonates a Workspace user (domain-wide delegation).
    """

    def __init__(
        self,
        email: str,
        signer: JwtSigner,
        *,
        scopes: Sequence[str] = DEFAULT_SCOPES,
        subject: str | None = None,
        key_id: str | None = None,
        token_url: str = GOOGLE_TOKEN_URL,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.email = email
        self._signer = signer
        self.scopes = tuple(scopes)
        self.subject = subject
        self.key_id = key_id
        self._clock = clock or (lambda: datetime.now(UTC))
        self._endpoint = _TokenEndpoint(token_url, client, timeout, self._clock)

    def assertion(self) -> str:
        """The signed JWT: header ``{alg: RS256}``, claims iss/scope/aud/iat/exp(+1h)/sub."""
        issued = int(self._clock().timestamp())
        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if self.key_id is not None:
            header["kid"] = self.key_id
        claims: dict[str, str | int] = {
            "iss": self.email,
            "scope": " ".join(self.scopes),
            "aud": self._endpoint.token_url,
            "iat": issued,
            "exp": issued + 3600,
        }
        if self.subject is not None:
            claims["sub"] = self.subject
        signing_input = f"{_b64url(_compact(header))}.{_b64url(_compact(claims))}"
        signature = self._signer(signing_input.encode())
        return f"{signing_input}.{_b64url(signature)}"

    def fetch(self) -> OAuthTokens:
        return self._endpoint.post({"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion()})

    def provider(self) -> AccessTokenProvider:
        return _CachingProvider(self.fetch, self._clock)

    def close(self) -> None:
        self._endpoint.close()


def _compact(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


# --- push channels ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchChannel:
    """A push channel Google opened: stop it with ``id`` and ``resource_id``."""

    id: str
    resource_id: str
    calendar_id: str
    expiration: datetime


@dataclass(frozen=True, slots=True)
class PushNotification:
    """Google's ``X-Goog-*`` headers on a push: which channel, and what happened.

    ``resource_state`` is ``sync`` (the channel was just opened), ``exists`` (something
    changed: call ``changes``) or ``not_exists``. The push says nothing else.
    """

    channel_id: str
    resource_id: str
    resource_state: str
    message_number: int | None
    channel_token: str | None
    expiration: datetime | None


def parse_push_notification(headers: Mapping[str, str]) -> PushNotification | None:
    """Read a push's headers (any case); ``None`` if it is not a Calendar push."""
    lowered = {name.lower(): value for name, value in headers.items()}
    channel_id = lowered.get("x-goog-channel-id")
    resource_id = lowered.get("x-goog-resource-id")
    state = lowered.get("x-goog-resource-state")
    if not channel_id or not resource_id or not state:
        return None
    number = lowered.get("x-goog-message-number", "")
    expiration: datetime | None = None
    if "x-goog-channel-expiration" in lowered:
        try:
            expiration = parsedate_to_datetime(lowered["x-goog-channel-expiration"])
        except (TypeError, ValueError):
            expiration = None
    return PushNotification(
        channel_id=channel_id,
        resource_id=resource_id,
        resource_state=state,
        message_number=int(number) if number.isdigit() else None,
        channel_token=lowered.get("x-goog-channel-token"),
        expiration=expiration,
    )


def push_token_matches(push: PushNotification, expected_token: str) -> bool:
    """True when the push carries the token we gave the channel (constant-time compare)."""
    return push.channel_token is not None and hmac.compare_digest(
        push.channel_token.encode(), expected_token.encode()
    )


def channel_needs_renewal(
    channel: WatchChannel, now: datetime, *, margin: timedelta = timedelta(hours=12)
) -> bool:
    """Open a new channel (then stop the old) once ``now`` is within ``margin`` of expiry.

    Channels end at their expiration without warning; a day's margin on a week's channel
    gives a failed renewal several more tries.
    """
    return now >= channel.expiration - margin


# --- the adapter -----------------------------------------------------------------------------


def event_id_for(ringback_id: str) -> str:
    """The Google event id for an appointment: base32hex (a-v, 0-9) of a hash, 32 long."""
    digest = hashlib.sha256(f"ringback:{ringback_id}".encode()).digest()[:20]
    return base64.b32hexencode(digest).decode().lower()


def split_ref(ref: ExternalBookingRef) -> tuple[str, str]:
    """``(calendar_id, event_id)`` from a ref's ``{calendarId}/{eventId}``."""
    calendar_id, separator, event_id = ref.external_id.rpartition("/")
    if not separator or not calendar_id or not event_id:
        raise ValueError(f"not a Google Calendar booking ref: {ref.external_id!r}")
    return calendar_id, event_id


class GoogleCalendarBookingSystem:
    """One clinic's Google calendars as a booking system (busy-only).

    ``provider_ref`` is a calendar id (the provider's calendar, or a shared one); when a
    booking has none, ``default_calendar`` is used. ``sync_calendars`` are the calendars
    :meth:`changes` reads (default: the default calendar). ``client`` lets the caller share
    a connection pool; this class then does not close it.
    """

    def __init__(
        self,
        tokens: AccessTokenProvider,
        *,
        default_calendar: str = "primary",
        sync_calendars: Sequence[str] | None = None,
        api_base: str = GOOGLE_API_BASE,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
        page_size: int = 250,
    ) -> None:
        self._tokens = tokens
        self.page_size = page_size
        self.default_calendar = default_calendar
        self.sync_calendars = tuple(sync_calendars or (default_calendar,))
        self.api_base = api_base.rstrip("/")
        self._timeout = httpx.Timeout(timeout)
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._clock = clock or (lambda: datetime.now(UTC))

    @property
    def capabilities(self) -> BookingSystemCapabilities:
        return BookingSystemCapabilities(
            knows_services=False,
            knows_staff=False,
            offers_availability=False,
            push_notifications=True,
            incremental_sync=True,
        )

    # --- reading --------------------------------------------------------------------------

    def busy(self, start: datetime, end: datetime, provider_refs: list[str]) -> list[BusyTime]:
        """Busy stretches per calendar from ``freebusy.query``; ``uid`` is the calendar id.

        Free/busy does not say which event is busy, so our own events count too.
        """
        calendars = list(provider_refs) or [self.default_calendar]
        answer = self._json(
            "POST",
            "/freeBusy",
            body={
                "timeMin": _rfc3339(start),
                "timeMax": _rfc3339(end),
                "items": [{"id": calendar} for calendar in calendars],
            },
        )
        found: list[BusyTime] = []
        for calendar in calendars:
            entry = answer.get("calendars", {}).get(calendar, {})
            errors = entry.get("errors") or []
            if errors:
                reason = errors[0].get("reason", "unknown")
                raise BookingSystemUnavailable(
                    f"google: free/busy of a calendar failed ({reason})",
                    retry=reason in ("backendError", "internalError"),
                )
            for period in entry.get("busy", []):
                found.append(
                    BusyTime(calendar, _parse_time(period["start"]), _parse_time(period["end"]))
                )
        return sorted(found, key=lambda busy: (busy.start, busy.end))

    def availability(
        self, start: datetime, end: datetime, service_ref: str, provider_refs: list[str]
    ) -> list[ExternalSlot]:
        """Google computes no slots; Ringback computes them from :meth:`busy`."""
        raise NotImplementedError("Google Calendar is busy-only; compute slots from busy()")

    # --- writing --------------------------------------------------------------------------

    def create(self, booking: ExternalBooking) -> ExternalBookingRef:
        calendar = booking.provider_ref or self.default_calendar
        existing = self._find_own(calendar, booking.ringback_id)
        if existing is not None:
            # An earlier try got this far; it may not have lived to check the slot.
            self._keep_if_first(calendar, existing, booking)
            return self._ref(calendar, existing)
        event_id = event_id_for(booking.ringback_id)
        if self.busy(booking.start, booking.end, [calendar]) and self._others_overlapping(
            calendar, booking, event_id
        ):
            log_event(logger, "google.booking.slot_taken", calendar_hash=_hash(calendar))
            raise BookingConflict("google: the calendar is busy at that time")
        body = {"id": event_id, **_event_body(booking)}
        response = self._request(
            "POST",
            f"/calendars/{_quote(calendar)}/events",
            params={"sendUpdates": "none"},
            body=body,
        )
        claimed_at: datetime | None = None
        if response.status_code == 409:
            event, revived = self._revive(calendar, event_id, booking)
            if revived:
                # A restored event claims the slot now, not when it was first created.
                claimed_at = _parse_time(str(event["updated"]))
        else:
            event = self._expect_json(response, "insert the event")
        self._keep_if_first(calendar, event, booking, claimed_at=claimed_at)
        log_event(logger, "google.booking.created", calendar_hash=_hash(calendar))
        return self._ref(calendar, event)

    def reschedule(self, ref: ExternalBookingRef, booking: ExternalBooking) -> ExternalBookingRef:
        """Move the event; moving it to another calendar is not supported (cancel, create)."""
        calendar, event_id = split_ref(ref)
        if booking.provider_ref not in (None, calendar):
            raise ValueError("google: cannot move an event to another calendar; cancel and create")
        others = [
            event
            for event in self._events_overlapping(calendar, booking.start, booking.end)
            if event.get("id") != event_id
        ]
        if others:
            raise BookingConflict("google: the calendar is busy at the new time")
        event = self._expect_json(
            self._request(
                "PATCH",
                f"/calendars/{_quote(calendar)}/events/{_quote(event_id)}",
                params={"sendUpdates": "none"},
                body=_event_body(booking, include_ringback_id=False),
            ),
            "move the event",
        )
        return self._ref(calendar, event)

    def cancel(self, ref: ExternalBookingRef) -> None:
        calendar, event_id = split_ref(ref)
        self._delete(calendar, event_id)

    # --- changes and push -----------------------------------------------------------------

    def changes(self, cursor: str | None) -> tuple[list[ExternalChange], str]:
        """Incremental read of every sync calendar; the cursor holds one token per calendar."""
        tokens: dict[str, str] = _read_cursor(cursor)
        found: list[ExternalChange] = []
        for calendar in self.sync_calendars:
            items, tokens[calendar], full_read = self._sync_calendar(calendar, tokens.get(calendar))
            found += [_change(calendar, item, full_read=full_read) for item in items]
        return found, _write_cursor(tokens)

    def watch(
        self,
        channel_id: str,
        address: str,
        token: str,
        ttl: timedelta,
        *,
        calendar: str | None = None,
    ) -> WatchChannel:
        """Ask Google to POST to ``address`` when the calendar changes, for up to ``ttl``."""
        calendar = calendar or self.default_calendar
        expiration = self._clock() + ttl
        answer = self._json(
            "POST",
            f"/calendars/{_quote(calendar)}/events/watch",
            body={
                "id": channel_id,
                "type": "web_hook",
                "address": address,
                "token": token,
                "expiration": str(int(expiration.timestamp() * 1000)),
            },
        )
        expires_ms = int(answer.get("expiration", int(expiration.timestamp() * 1000)))
        return WatchChannel(
            id=str(answer["id"]),
            resource_id=str(answer["resourceId"]),
            calendar_id=calendar,
            expiration=datetime.fromtimestamp(expires_ms / 1000, UTC),
        )

    def stop_channel(self, channel: WatchChannel) -> None:
        """Stop a channel; one Google no longer knows (404) is already stopped."""
        response = self._request(
            "POST", "/channels/stop", body={"id": channel.id, "resourceId": channel.resource_id}
        )
        if response.status_code not in (200, 204, 404):
            raise _failure(response, "stop the push channel")

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    # --- internals ------------------------------------------------------------------------

    def _find_own(self, calendar: str, ringback_id: str) -> dict[str, Any] | None:
        answer = self._json(
            "GET",
            f"/calendars/{_quote(calendar)}/events",
            params={"privateExtendedProperty": f"{RINGBACK_ID_PROPERTY}={ringback_id}"},
        )
        live = [item for item in answer.get("items", []) if item.get("status") != "cancelled"]
        return live[0] if live else None

    def _others_overlapping(
        self, calendar: str, booking: ExternalBooking, event_id: str
    ) -> list[dict[str, Any]]:
        """Events other than this appointment's own that make the slot busy.

        Free/busy cannot tell whose event is busy; an event of ours the lookup by
        ``ringbackId`` missed (an earlier try, written without it) must not block itself.
        """
        return [
            event
            for event in self._events_overlapping(calendar, booking.start, booking.end)
            if event.get("id") != event_id and _ringback_id_of(event) != booking.ringback_id
        ]

    def _revive(
        self, calendar: str, event_id: str, booking: ExternalBooking
    ) -> tuple[dict[str, Any], bool]:
        """The id exists: an earlier try inserted it (return it), or it was deleted since
        (a cancelled appointment booked again: restore it at the new time). Says which."""
        event = self._expect_json(
            self._request("GET", f"/calendars/{_quote(calendar)}/events/{_quote(event_id)}"),
            "read the existing event",
        )
        if event.get("status") != "cancelled":
            return event, False
        restored = self._expect_json(
            self._request(
                "PATCH",
                f"/calendars/{_quote(calendar)}/events/{_quote(event_id)}",
                params={"sendUpdates": "none"},
                body={"status": "confirmed", **_event_body(booking)},
            ),
            "restore the event",
        )
        return restored, True

    def _keep_if_first(
        self,
        calendar: str,
        event: Mapping[str, Any],
        booking: ExternalBooking,
        *,
        claimed_at: datetime | None = None,
    ) -> None:
        own = Claim(str(event["id"]), claimed_at or _parse_time(str(event["created"])))
        others = [
            Claim(str(item["id"]), _parse_time(str(item["created"])))
            for item in self._events_overlapping(calendar, booking.start, booking.end)
            if item.get("id") != own.external_id and "created" in item
        ]
        if first_claim_wins(own, others):
            return
        self._delete(calendar, own.external_id)
        log_event(logger, "google.booking.lost_race", calendar_hash=_hash(calendar))
        raise BookingConflict("google: another booking took the slot first")

    def _events_overlapping(
        self, calendar: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]]:
        """Busy-making events overlapping [start, end): not cancelled, not transparent."""
        items: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            params = {
                "timeMin": _rfc3339(start),
                "timeMax": _rfc3339(end),
                "singleEvents": "true",
                "maxResults": str(self.page_size),
            }
            if page_token is not None:
                params["pageToken"] = page_token
            answer = self._json("GET", f"/calendars/{_quote(calendar)}/events", params=params)
            items += answer.get("items", [])
            page_token = answer.get("nextPageToken")
            if page_token is None:
                break
        return [
            item
            for item in items
            if item.get("status") != "cancelled" and item.get("transparency") != "transparent"
        ]

    def _sync_calendar(
        self, calendar: str, token: str | None
    ) -> tuple[list[dict[str, Any]], str, bool]:
        """One calendar's changes since ``token``: the items, the next token, and whether
        this was a full read (no token yet, or Google dropped it with 410 GONE)."""
        if token is not None:
            found = self._list_pages(calendar, {"syncToken": token})
            if found is not None:
                return found[0], found[1], False
            log_event(logger, "google.sync.token_expired", calendar_hash=_hash(calendar))
        since = {"timeMin": _rfc3339(self._clock() - FULL_SYNC_LOOKBACK)}
        full = self._list_pages(calendar, since)
        if full is None:
            raise BookingSystemUnavailable("google: a full read answered 410 GONE")
        return full[0], full[1], True

    def _list_pages(
        self, calendar: str, filters: Mapping[str, str]
    ) -> tuple[list[dict[str, Any]], str] | None:
        """Every page of ``events.list`` and the final ``nextSyncToken``; ``None`` on 410."""
        items: list[dict[str, Any]] = []
        page_token: str | None = None
        while True:
            params = {**filters, "maxResults": str(self.page_size)}
            if page_token is not None:
                params["pageToken"] = page_token
            response = self._request("GET", f"/calendars/{_quote(calendar)}/events", params=params)
            if response.status_code == 410:
                return None
            answer = self._expect_json(response, "list changed events")
            items += answer.get("items", [])
            page_token = answer.get("nextPageToken")
            if page_token is None:
                next_token = answer.get("nextSyncToken")
                if not next_token:
                    raise BookingSystemUnavailable("google: events.list gave no sync token")
                return items, str(next_token)

    def _delete(self, calendar: str, event_id: str) -> None:
        response = self._request(
            "DELETE",
            f"/calendars/{_quote(calendar)}/events/{_quote(event_id)}",
            params={"sendUpdates": "none"},
        )
        if response.status_code not in (200, 204, 404, 410):
            raise _failure(response, "delete the event")

    def _ref(self, calendar: str, event: Mapping[str, Any]) -> ExternalBookingRef:
        etag = event.get("etag")
        return ExternalBookingRef(f"{calendar}/{event['id']}", str(etag) if etag else None)

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = self._request(method, path, params=params, body=body)
        return self._expect_json(response, f"{method} {path.split('/')[-1]}")

    def _expect_json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise _failure(response, what)
        try:
            answer = response.json()
        except ValueError as exc:
            raise BookingSystemUnavailable(f"google: answer to '{what}' was not JSON") from exc
        if not isinstance(answer, dict):
            raise BookingSystemUnavailable(f"google: answer to '{what}' was not an object")
        return answer

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        """One call, renewing the access token once on 401; transient failures raise."""
        refreshed = False
        while True:
            token = self._tokens(force_refresh=refreshed)
            try:
                response = self._client.request(
                    method,
                    self.api_base + path,
                    params=dict(params or {}),
                    json=dict(body) if body is not None else None,
                    headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
                    timeout=self._timeout,
                )
            except httpx.TimeoutException as exc:
                raise BookingSystemUnavailable(f"google: {method} timed out") from exc
            except httpx.HTTPError as exc:
                raise BookingSystemUnavailable(
                    f"google: {method} failed ({type(exc).__name__})"
                ) from exc
            if response.status_code == 401 and not refreshed:
                refreshed = True
                continue
            if response.status_code == 401:
                raise BookingSystemUnavailable(
                    "google: access refused after renewing the token; reconnect Google Calendar",
                    retry=False,
                )
            if _is_transient(response):
                raise _failure(response, f"{method} {path.split('/')[-1]}")
            return response


def _is_transient(response: httpx.Response) -> bool:
    if response.status_code == 429 or response.status_code >= 500:
        return True
    return response.status_code == 403 and _reason(response) in _RATE_LIMIT_REASONS


def _reason(response: httpx.Response) -> str | None:
    try:
        errors = response.json()["error"]["errors"]
        return str(errors[0]["reason"])
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def _failure(response: httpx.Response, what: str) -> BookingSystemUnavailable:
    status = response.status_code
    reason = _reason(response) or "unknown"
    retry = _is_transient(response)
    retry_after = _retry_after(response.headers.get("retry-after"))
    log_event(
        logger,
        "google.request.failed",
        logging.WARNING,
        status=status,
        reason=reason,
        retry=retry,
    )
    return BookingSystemUnavailable(
        f"google: could not {what}: HTTP {status} ({reason})", retry=retry, retry_after=retry_after
    )


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _event_body(booking: ExternalBooking, *, include_ringback_id: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "summary": booking.summary,
        "description": booking.note,
        "start": {"dateTime": _rfc3339(booking.start)},
        "end": {"dateTime": _rfc3339(booking.end)},
    }
    if include_ringback_id:
        body["extendedProperties"] = {"private": {RINGBACK_ID_PROPERTY: booking.ringback_id}}
        body["transparency"] = "opaque"
    return body


def _ringback_id_of(event: Mapping[str, Any]) -> str | None:
    value = event.get("extendedProperties", {}).get("private", {}).get(RINGBACK_ID_PROPERTY)
    return str(value) if value is not None else None


def _change(calendar: str, item: Mapping[str, Any], *, full_read: bool) -> ExternalChange:
    ringback_id = _ringback_id_of(item)
    start = _event_time(item.get("start"))
    end = _event_time(item.get("end"))
    kind: ExternalChangeKind
    if item.get("status") == "cancelled":
        kind = "cancelled"
    elif not full_read and item.get("created") and item.get("created") == item.get("updated"):
        kind = "created"
    else:
        kind = "updated"
    return ExternalChange(
        external_id=f"{calendar}/{item['id']}",
        ringback_id=ringback_id,
        kind=kind,
        start=start,
        end=end,
    )


def _event_time(value: Any) -> datetime | None:
    if not isinstance(value, dict):
        return None
    if "dateTime" in value:
        return _parse_time(str(value["dateTime"]))
    if "date" in value:
        return datetime.fromisoformat(str(value["date"])).replace(tzinfo=UTC)
    return None


def _read_cursor(cursor: str | None) -> dict[str, str]:
    if not cursor:
        return {}
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise ValueError("google: not a cursor this adapter wrote") from exc
    if not isinstance(decoded, dict):
        raise ValueError("google: not a cursor this adapter wrote")
    return {str(k): str(v) for k, v in decoded.items()}


def _write_cursor(tokens: Mapping[str, str]) -> str:
    return _b64url(_compact(tokens))


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("google: times must be timezone-aware")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _quote(segment: str) -> str:
    return quote(segment, safe="@.")


def _hash(value: str) -> str:
    """A short stable label for logs: calendar ids are email addresses."""
    return hashlib.sha256(value.encode()).hexdigest()[:12]
