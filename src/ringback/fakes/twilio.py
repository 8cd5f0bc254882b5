"""A fake Twilio REST API for tests, benchmarks and the product's demo mode.

It serves the parts of Twilio that Ringback talks to (Messages create / list / fetch,
Lookup v2 line type intelligence, and IncomingPhoneNumbers list / fetch / update) over
real HTTP, checks every request against Twilio's OpenAPI contract
(:mod:`ringback.fakes.twilio_contract`) when given one, records what it accepted, and
can be scripted to fail the ways Twilio fails: server errors, rate limits, permanent
per-number errors, slowness, and "accepted, but the answer never came".

Typical use::

    state = FakeTwilio.checked_against_spec()
    with FakeTwilioServer(state) as server:
        ...  # point the Twilio base URLs at server.url
    assert state.violations == []

The same fake also plays SignalWire (:meth:`FakeTwilio.signalwire`): SignalWire's
compatibility REST API is Twilio's API v2010 under ``https://{space}/api/laml`` with the
Project ID and an API token for basic auth, UUIDs for ids, and status callbacks signed
with the project's signing key in ``X-SignalWire-Signature``. Requests are held to the
same Twilio OpenAPI contract, with only the id rules swapped for UUIDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Literal, Self
from urllib.parse import parse_qs, urlencode

import httpx
import phonenumbers
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from twilio.request_validator import RequestValidator

from ringback.fakes.twilio_contract import (
    FORM_MEDIA_TYPE,
    ContractViolation,
    TwilioContract,
    ValueRule,
    basic_auth_problem,
    parse_twilio_datetime,
)
from ringback.messaging.segments import Encoding, message_segments

logger = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# Twilio's error code for a request that is malformed in a way with no dedicated code.
GENERIC_BAD_REQUEST_CODE = 70002

FakeOperation = Literal[
    "create_message",
    "list_messages",
    "fetch_message",
    "lookup",
    "list_numbers",
    "fetch_number",
    "update_number",
]
# Which provider the fake plays: Twilio itself, or SignalWire's compatibility API.
Dialect = Literal["twilio", "signalwire"]
SIGNALWIRE_API_PREFIX = "/api/laml"
_UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# SignalWire's ids in Twilio's path templates: the project (AccountSid) and message (Sid).
_SIGNALWIRE_PATH_RULES: Mapping[str, ValueRule] = {
    "AccountSid": ValueRule(type="string", pattern=re.compile(_UUID_PATTERN)),
    "Sid": ValueRule(type="string", pattern=re.compile(_UUID_PATTERN)),
}
FinalDeliveryStatus = Literal["delivered", "undelivered", "failed"]

# What Twilio answers for the errors tests script most, as (HTTP status, message).
TWILIO_ERRORS: Mapping[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "An internal server error has occurred"),
    20503: (503, "Service is unavailable. Please try again"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21408: (400, "Permission to send an SMS has not been enabled for the region indicated"),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS"),
    21614: (400, "'To' number is not a valid mobile number"),
}

# A carrier per Lookup v2 line type, so answers look like Twilio's.
_CARRIERS: Mapping[str, str] = {
    "mobile": "T-Mobile USA, Inc.",
    "landline": "AT&T Services, Inc.",
    "fixedVoip": "Comcast Phone, LLC",
    "nonFixedVoip": "Twilio - SMS/MMS-SVR",
    "tollFree": "Toll Free",
}

_MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages\.json$")
_MESSAGE_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/Messages/(?P<message_sid>[^/]+)\.json$"
)
_LOOKUP_PATH = re.compile(r"^/v2/PhoneNumbers/(?P<phone_number>[^/]+)$")
_NUMBERS_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/IncomingPhoneNumbers\.json$"
)
_NUMBER_PATH = re.compile(
    r"^/2010-04-01/Accounts/(?P<account_sid>[^/]+)/IncomingPhoneNumbers/(?P<number_sid>[^/]+)\.json$"
)
# The IncomingPhoneNumber fields an update may change (form name → resource key).
_NUMBER_FIELDS: Mapping[str, str] = {
    name: re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    for name in (
        "FriendlyName",
        "VoiceUrl",
        "VoiceMethod",
        "VoiceFallbackUrl",
        "VoiceFallbackMethod",
        "StatusCallback",
        "StatusCallbackMethod",
        "SmsUrl",
        "SmsMethod",
        "SmsFallbackUrl",
        "SmsFallbackMethod",
        "VoiceApplicationSid",
        "SmsApplicationSid",
        "TrunkSid",
    )
}
_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass(frozen=True, slots=True)
class TwilioError:
    """An error answer in Twilio's shape: ``{"code", "message", "more_info", "status"}``."""

    http_status: int
    code: int
    message: str
    retry_after_seconds: int | None = None

    @classmethod
    def for_code(cls, code: int, *, http_status: int | None = None) -> TwilioError:
        """The error Twilio answers for ``code`` (see :data:`TWILIO_ERRORS`)."""
        known_status, message = TWILIO_ERRORS.get(code, (400, f"Twilio error {code}"))
        return cls(http_status or known_status, code, message)

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.http_status,
        }

    def response(self) -> JSONResponse:
        headers = {}
        if self.retry_after_seconds is not None:
            headers["Retry-After"] = str(self.retry_after_seconds)
        return JSONResponse(self.body(), status_code=self.http_status, headers=headers)


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """A message the fake accepted, as Twilio would hold it, plus when it arrived."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    media_urls: tuple[str, ...]
    status_callback: str | None
    form: Mapping[str, tuple[str, ...]]
    encoding: Encoding
    num_segments: int
    status: str
    error_code: int | None
    date_created: datetime
    date_updated: datetime
    # When the request reached the fake: wall clock (UTC) and ``time.monotonic()``.
    received_at: datetime
    received_monotonic: float
    dialect: Dialect = "twilio"

    @property
    def date_sent(self) -> datetime:
        # Twilio's own create example sets date_sent at creation, while still ``queued``.
        return self.date_created

    @property
    def uri(self) -> str:
        if self.dialect == "signalwire":
            # As in SignalWire's sample Message object: under /api/laml, no ".json".
            path = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}"
            return SIGNALWIRE_API_PREFIX + path
        return f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json"

    def to_twilio_json(self) -> dict[str, object]:
        """The ``api.v2010.account.message`` resource Twilio would return."""
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_sent),
            "date_updated": format_datetime(self.date_updated),
            "direction": "outbound-api",
            # SignalWire documents error_code as a string.
            "error_code": (
                str(self.error_code)
                if self.dialect == "signalwire" and self.error_code is not None
                else self.error_code
            ),
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_urls)),
            "num_segments": str(self.num_segments),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": self.uri.removesuffix(".json") + "/Media.json"},
            "to": self.to,
            "uri": self.uri,
        }


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake answered (or dropped), for asserting on retries and timing."""

    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, tuple[str, ...]] | None
    operation: FakeOperation | None
    # The status the fake answered, or ``None`` when the client had gone before it could.
    status_code: int | None
    received_monotonic: float


@dataclass(frozen=True, slots=True)
class StatusCallbackAttempt:
    """One status callback the fake POSTed, signed as Twilio signs it, and how it went."""

    message_sid: str
    url: str
    status: str
    params: Mapping[str, str]
    signature: str
    response_status: int | None
    error: str | None


@dataclass(slots=True)
class _ScriptedFailure:
    error: TwilioError
    remaining: int
    operation: FakeOperation | None


@dataclass(frozen=True, slots=True)
class _DeliveryOutcome:
    status: FinalDeliveryStatus
    error_code: int | None


@dataclass(slots=True)
class _Holds:
    remaining: int
    seconds: float | None


class FakeTwilio:
    """Configuration, scripted behaviour and recorded traffic of one fake Twilio account.

    The server's event loop writes and tests read from their own thread, so every
    recorded list is returned as a snapshot taken under a lock. ``on_message`` runs on the
    server's event loop and must be quick.
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        contract: TwilioContract | None = None,
        lookup_contract: TwilioContract | None = None,
        simulate_delivery: bool = False,
        delivery_step_seconds: float = 0.05,
        delay_seconds: float = 0.0,
        on_message: Callable[[RecordedMessage], None] | None = None,
        dialect: Dialect = "twilio",
        signing_key: str | None = None,
    ) -> None:
        self.dialect: Dialect = dialect
        if dialect == "signalwire":
            # The Project ID and an API token; ``signing_key`` signs status callbacks.
            self.account_sid = account_sid or str(uuid.uuid4())
        else:
            self.account_sid = account_sid or "AC" + secrets.token_hex(16)
        self.auth_token = auth_token or secrets.token_hex(16)
        self.signing_key = signing_key or secrets.token_hex(16)
        self.contract = contract
        self.lookup_contract = lookup_contract
        # After accepting a message, move it to sent then delivered (or the scripted
        # outcome) and POST a signed status callback at each step if it asked for them.
        self.simulate_delivery = simulate_delivery
        self.delivery_step_seconds = delivery_step_seconds
        # Slowness before Twilio takes the request in; a client that gives up first is
        # treated as never having reached Twilio (see ``hang_after_accepting`` otherwise).
        self.delay_seconds = delay_seconds
        # Slowness of one operation only (see :meth:`slow_down`), added to ``delay_seconds``.
        self.operation_delays: dict[FakeOperation, float] = {}
        # Answers held after they were computed (see :meth:`answer_late`).
        self.late_answers: dict[FakeOperation, float] = {}
        self.on_message = on_message
        # Lookup v2 line type per E.164 number: "mobile" (the default), "landline",
        # "fixedVoip", "nonFixedVoip", "tollFree", ...
        self.line_types: dict[str, str] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._released = threading.Event()
        self._messages: dict[str, RecordedMessage] = {}
        self._violations: list[str] = []
        self._requests: list[RecordedRequest] = []
        self._callbacks: list[StatusCallbackAttempt] = []
        self._scripted: deque[_ScriptedFailure] = deque()
        self._permanent_failures: dict[str, TwilioError] = {}
        self._delivery_outcomes: dict[str, _DeliveryOutcome] = {}
        self._holds = _Holds(remaining=0, seconds=None)
        self._lookup_failures = 0
        self._lookups: list[str] = []
        # The account's phone numbers (IncomingPhoneNumbers), by sid, in the order added.
        self._numbers: dict[str, dict[str, object]] = {}

    @classmethod
    def checked_against_spec(
        cls,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        simulate_delivery: bool = False,
        on_message: Callable[[RecordedMessage], None] | None = None,
    ) -> FakeTwilio:
        """A fake that checks every request against Twilio's published OpenAPI files."""
        return cls(
            account_sid=account_sid,
            auth_token=auth_token,
            contract=TwilioContract.api_v2010(),
            lookup_contract=TwilioContract.lookups_v2(),
            simulate_delivery=simulate_delivery,
            on_message=on_message,
        )

    @classmethod
    def signalwire(
        cls,
        *,
        project_id: str | None = None,
        api_token: str | None = None,
        signing_key: str | None = None,
        simulate_delivery: bool = False,
        on_message: Callable[[RecordedMessage], None] | None = None,
    ) -> FakeTwilio:
        """A fake SignalWire Space, checking requests against Twilio's API v2010 contract.

        It serves ``/api/laml/2010-04-01/Accounts/{ProjectID}/Messages...`` only (no
        Lookup: SignalWire has no Twilio-compatible one); point the Space URL at ``url``.
        """
        return cls(
            account_sid=project_id,
            auth_token=api_token,
            contract=TwilioContract.api_v2010(),
            simulate_delivery=simulate_delivery,
            on_message=on_message,
            dialect="signalwire",
            signing_key=signing_key,
        )

    # --- scripting -------------------------------------------------------------------

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        code: int = 20500,
        message: str | None = None,
        retry_after_seconds: int | None = None,
        operation: FakeOperation | None = "create_message",
    ) -> None:
        """Answer the next ``count`` requests for ``operation`` (``None``: any) with an error."""
        default_message = TWILIO_ERRORS.get(code, (status, f"Twilio error {code}"))[1]
        error = TwilioError(status, code, message or default_message, retry_after_seconds)
        with self._lock:
            self._scripted.append(_ScriptedFailure(error, count, operation))

    def rate_limit_next(self, count: int = 1, *, retry_after_seconds: int | None = None) -> None:
        """Answer the next ``count`` message sends with 429 / 20429 Too Many Requests."""
        self.fail_next(count, status=429, code=20429, retry_after_seconds=retry_after_seconds)

    def fail_for(self, to_number: str, code: int = 21610, *, status: int | None = None) -> None:
        """Refuse every message to ``to_number`` with Twilio error ``code`` from now on.

        21610 (unsubscribed), 21211 (invalid To) and 21614 (not a mobile) answer HTTP 400.
        """
        with self._lock:
            self._permanent_failures[to_number] = TwilioError.for_code(code, http_status=status)

    @property
    def lookup_failures(self) -> int:
        """How many of the next lookups answer 500 / 20500; assign to script them."""
        with self._lock:
            return self._lookup_failures

    @lookup_failures.setter
    def lookup_failures(self, count: int) -> None:
        with self._lock:
            self._lookup_failures = count

    def slow_down(self, operation: FakeOperation, seconds: float) -> None:
        """Answer every ``operation`` request ``seconds`` late (0: on time again), e.g. a
        Messages list that takes a while under load."""
        with self._lock:
            self.operation_delays[operation] = seconds

    def answer_late(self, operation: FakeOperation, seconds: float) -> None:
        """Compute every ``operation`` answer at once but send it ``seconds`` later (0: at
        once again): a Messages list that, when it arrives, is that old."""
        with self._lock:
            self.late_answers[operation] = seconds

    def hang_after_accepting(self, count: int = 1, *, seconds: float | None = None) -> None:
        """Accept and record the next ``count`` messages, then hold the answer.

        ``seconds=None`` holds it until the server stops: "Twilio got it, but our worker
        never heard back".
        """
        with self._lock:
            self._holds = _Holds(remaining=count, seconds=seconds)

    def set_delivery_outcome(
        self, to_number: str, status: FinalDeliveryStatus, *, error_code: int | None = None
    ) -> None:
        """How simulated delivery ends for ``to_number`` (default: ``delivered``).

        ``undelivered`` goes through ``sent`` first, ``failed`` does not; both carry
        ``ErrorCode`` (30003 unreachable handset if none is given).
        """
        if status != "delivered" and error_code is None:
            error_code = 30003
        with self._lock:
            self._delivery_outcomes[to_number] = _DeliveryOutcome(status, error_code)

    def clear_scripts(self) -> None:
        """Forget every scripted failure, hold and delivery outcome."""
        with self._lock:
            self._scripted.clear()
            self._permanent_failures.clear()
            self._delivery_outcomes.clear()
            self._holds = _Holds(remaining=0, seconds=None)
            self._lookup_failures = 0

    def release_held_answers(self) -> None:
        """Let every held answer go now (the server calls this when it stops)."""
        self._released.set()

    # --- what happened ---------------------------------------------------------------

    def add_number(
        self,
        phone_number: str,
        *,
        friendly_name: str | None = None,
        voice_url: str = "https://demo.twilio.com/welcome/voice/",
        sms_url: str = "https://demo.twilio.com/welcome/sms/reply/",
        voice_application_sid: str | None = None,
    ) -> str:
        """Give the account a phone number, configured as Twilio configures a new one."""
        sid = str(uuid.uuid4()) if self.dialect == "signalwire" else "PN" + secrets.token_hex(16)
        now = format_datetime(datetime.now(UTC))
        prefix = SIGNALWIRE_API_PREFIX if self.dialect == "signalwire" else ""
        resource: dict[str, object] = {
            "account_sid": self.account_sid,
            "address_requirements": "none",
            "address_sid": None,
            "api_version": API_VERSION,
            "beta": False,
            "bundle_sid": None,
            "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
            "date_created": now,
            "date_updated": now,
            "emergency_address_sid": None,
            "emergency_address_status": "unregistered",
            "emergency_status": "Inactive",
            "friendly_name": friendly_name or phone_number,
            "identity_sid": None,
            "origin": "twilio",
            "phone_number": phone_number,
            "sid": sid,
            "sms_application_sid": "",
            "sms_fallback_method": "POST",
            "sms_fallback_url": "",
            "sms_method": "POST",
            "sms_url": sms_url,
            "status": "in-use",
            "status_callback": "",
            "status_callback_method": "POST",
            "trunk_sid": None,
            "type": "local",
            "uri": f"{prefix}/{API_VERSION}/Accounts/{self.account_sid}"
            f"/IncomingPhoneNumbers/{sid}.json",
            "voice_application_sid": voice_application_sid or "",
            "voice_caller_id_lookup": False,
            "voice_fallback_method": "POST",
            "voice_fallback_url": "",
            "voice_method": "POST",
            "voice_receive_mode": "voice",
            "voice_url": voice_url,
        }
        with self._lock:
            self._numbers[sid] = resource
        return sid

    def number(self, sid: str) -> dict[str, object] | None:
        """A snapshot of one of the account's numbers, as the API would return it."""
        with self._lock:
            found = self._numbers.get(sid)
            return dict(found) if found is not None else None

    @property
    def numbers(self) -> list[dict[str, object]]:
        with self._lock:
            return [dict(resource) for resource in self._numbers.values()]

    @property
    def messages(self) -> list[RecordedMessage]:
        """Accepted messages, oldest first."""
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> RecordedMessage | None:
        with self._lock:
            return self._messages.get(sid)

    @property
    def violations(self) -> list[str]:
        """Contract violations (and requests the fake cannot serve), oldest first."""
        with self._lock:
            return list(self._violations)

    @property
    def lookups(self) -> list[str]:
        """Every number looked up, in E.164 where it parses, oldest first."""
        with self._lock:
            return list(self._lookups)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def status_callbacks(self) -> list[StatusCallbackAttempt]:
        with self._lock:
            return list(self._callbacks)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[RecordedMessage]:
        """Block until at least ``count`` messages were accepted; raise ``TimeoutError``."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"fake Twilio got {len(self._messages)} of {count} messages")
            return list(self._messages.values())

    def wait_for_status_callbacks(
        self, count: int, timeout: float = 5.0
    ) -> list[StatusCallbackAttempt]:
        """Block until at least ``count`` status callbacks were attempted."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._callbacks) >= count, timeout):
                raise TimeoutError(
                    f"fake Twilio made {len(self._callbacks)} of {count} status callbacks"
                )
            return list(self._callbacks)

    # --- used by the app -------------------------------------------------------------

    def _take_failure(self, operation: FakeOperation, to_number: str | None) -> TwilioError | None:
        with self._lock:
            if operation == "lookup" and self._lookup_failures > 0:
                self._lookup_failures -= 1
                return TwilioError.for_code(20500)
            for scripted in self._scripted:
                if scripted.operation in (None, operation):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        self._scripted.remove(scripted)
                    return scripted.error
            if operation == "create_message" and to_number is not None:
                return self._permanent_failures.get(to_number)
            return None

    def _take_hold(self) -> tuple[bool, float | None]:
        with self._lock:
            if self._holds.remaining <= 0:
                return False, None
            self._holds.remaining -= 1
            return True, self._holds.seconds

    def _delivery_outcome(self, to_number: str) -> _DeliveryOutcome:
        with self._lock:
            return self._delivery_outcomes.get(to_number, _DeliveryOutcome("delivered", None))

    def _record_violations(self, violations: Iterable[str]) -> None:
        with self._changed:
            self._violations.extend(violations)
            self._changed.notify_all()

    def _record_lookup(self, number: str, region: str | None) -> None:
        e164 = _as_e164(number, region)
        with self._changed:
            self._lookups.append(e164 or number)
            self._changed.notify_all()

    def _record_request(self, request: RecordedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def _store_message(self, message: RecordedMessage) -> None:
        with self._changed:
            self._messages[message.sid] = message
            self._changed.notify_all()

    def _set_status(self, sid: str, status: str, error_code: int | None) -> RecordedMessage:
        with self._changed:
            updated = replace(
                self._messages[sid],
                status=status,
                error_code=error_code,
                date_updated=_now_to_the_second(),
            )
            self._messages[sid] = updated
            self._changed.notify_all()
            return updated

    def _record_callback(self, attempt: StatusCallbackAttempt) -> None:
        with self._changed:
            self._callbacks.append(attempt)
            self._changed.notify_all()

    async def _hold(self, seconds: float | None) -> None:
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._released.is_set():
            remaining = 0.05 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.05, remaining))

    def _rearm(self) -> None:
        self._released.clear()


@dataclass(frozen=True, slots=True)
class _Call:
    """One request as the handlers see it, after the contract check."""

    request: Request
    # The path below the fake's root, and the root's absolute URL: the fake may be mounted
    # under a prefix (the demo serves it at ``/demo/network``).
    path: str
    base_url: str
    path_values: Mapping[str, str]
    query: Mapping[str, str]
    form: Mapping[str, list[str]]
    received_at: datetime
    received_monotonic: float


_Handler = Callable[[FakeTwilio, _Call], Awaitable[Response]]


@dataclass
class _Background:
    """Status-callback tasks still running, kept so they are neither collected nor leaked."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def create_fake_twilio_app(state: FakeTwilio) -> Starlette:
    """The fake as an ASGI app: Messages and Lookup v2, behind the contract check.

    Playing SignalWire, it serves Messages under ``/api/laml`` and no Lookup.
    """
    background = _Background()

    async def create_message(state: FakeTwilio, call: _Call) -> Response:
        return await _create_message(state, call, background)

    handlers: list[tuple[str, re.Pattern[str], FakeOperation, _Handler]] = [
        ("POST", _MESSAGES_PATH, "create_message", create_message),
        ("GET", _MESSAGES_PATH, "list_messages", _list_messages),
        ("GET", _MESSAGE_PATH, "fetch_message", _fetch_message),
    ]
    handlers += [
        ("GET", _NUMBERS_PATH, "list_numbers", _list_numbers),
        ("GET", _NUMBER_PATH, "fetch_number", _fetch_number),
        ("POST", _NUMBER_PATH, "update_number", _update_number),
    ]
    if state.dialect == "twilio":
        handlers.append(("GET", _LOOKUP_PATH, "lookup", _lookup))

    async def front_door(request: Request) -> Response:
        received_monotonic = time.monotonic()
        received_at = datetime.now(UTC)
        method = request.method
        path = "/" + str(request.path_params["path"])
        full_path: str = request.scope["path"]
        mount_prefix = full_path.removesuffix(path) if full_path.endswith(path) else ""
        base_url = f"{request.url.scheme}://{request.url.netloc}{mount_prefix}"
        query = dict(request.query_params)
        body = await request.body()
        is_form = request.headers.get("content-type", "").startswith(FORM_MEDIA_TYPE)
        text = body.decode("utf-8", errors="replace")
        form = parse_qs(text, keep_blank_values=True) if is_form else None

        def record(operation: FakeOperation | None, status_code: int | None) -> None:
            frozen_form = {name: tuple(values) for name, values in (form or {}).items()}
            state._record_request(
                RecordedRequest(
                    method,
                    path,
                    query,
                    frozen_form if form is not None else None,
                    operation,
                    status_code,
                    received_monotonic,
                )
            )

        api_path = _api_path(state, path)
        refusal = _refusal(state, request, path, api_path, query, form, body, is_form)
        if refusal is not None:
            record(None, refusal.http_status)
            return refusal.response()
        routed = _route(handlers, method, api_path or path)
        if routed is None:
            message = f"{method} {path}: the fake {state.dialect} does not implement this endpoint"
            state._record_violations([message])
            record(None, 404)
            return TwilioError(404, 20404, message).response()
        operation, handler, path_values = routed
        if operation == "lookup":
            state._record_lookup(path_values["phone_number"], query.get("CountryCode"))

        delay = state.delay_seconds + state.operation_delays.get(operation, 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
            if await request.is_disconnected():
                # The client gave up before Twilio took the request in: nothing happened.
                record(operation, None)
                return Response(status_code=499)
        call = _Call(
            request,
            path,
            base_url,
            path_values,
            query,
            form or {},
            received_at,
            received_monotonic,
        )
        to_number = call.form.get("To", [None])[0] if operation == "create_message" else None
        failure = state._take_failure(operation, to_number)
        if failure is not None:
            record(operation, failure.http_status)
            return failure.response()
        response = await handler(state, call)
        late = state.late_answers.get(operation, 0.0)
        if late > 0:
            await asyncio.sleep(late)
        record(operation, response.status_code)
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await background.cancel_all()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[Route("/{path:path}", front_door, methods=methods)],
        lifespan=lifespan,
    )


def _route(
    handlers: Iterable[tuple[str, re.Pattern[str], FakeOperation, _Handler]],
    method: str,
    path: str,
) -> tuple[FakeOperation, _Handler, dict[str, str]] | None:
    for handler_method, pattern, operation, handler in handlers:
        matched = pattern.match(path)
        if handler_method == method and matched is not None:
            return operation, handler, matched.groupdict()
    return None


def _api_path(state: FakeTwilio, path: str) -> str | None:
    """The path in Twilio's terms; ``None`` for a SignalWire path outside ``/api/laml``."""
    if state.dialect == "twilio":
        return path
    if path.startswith(SIGNALWIRE_API_PREFIX + "/"):
        return path.removeprefix(SIGNALWIRE_API_PREFIX)
    return None


def _refusal(
    state: FakeTwilio,
    request: Request,
    path: str,
    api_path: str | None,
    query: Mapping[str, str],
    form: Mapping[str, list[str]] | None,
    body: bytes,
    is_form: bool,
) -> TwilioError | None:
    """Check the request against the contract (or, without one, just the credentials)."""
    authorization = request.headers.get("authorization")
    violations: list[ContractViolation] = []
    if api_path is None:
        violations.append(
            ContractViolation(
                "unknown_path",
                f"{request.method} {path}: SignalWire serves its compatibility API "
                f"under {SIGNALWIRE_API_PREFIX}/{API_VERSION}/...",
                twilio_code=20404,
            )
        )
        api_path = path
    contract = state.lookup_contract if api_path.startswith("/v2/") else state.contract
    if body and not is_form:
        content_type = request.headers.get("content-type", "none")
        violations.append(
            ContractViolation(
                "body",
                f"{request.method} {path}: body sent as {content_type}; "
                f"Twilio takes {FORM_MEDIA_TYPE}",
            )
        )
    if contract is not None:
        violations += contract.check_request(
            request.method,
            api_path,
            query,
            form,
            authorization,
            state.account_sid,
            state.auth_token,
            path_rules=_SIGNALWIRE_PATH_RULES if state.dialect == "signalwire" else None,
        )
    else:
        problem = basic_auth_problem(authorization, state.account_sid, state.auth_token)
        if problem is not None:
            return TwilioError.for_code(20003)
    if not violations:
        return None
    state._record_violations(violation.message for violation in violations)
    for violation in violations:
        logger.warning("fake_twilio.contract_violation %s", violation.message)
    first = violations[0]
    code = next(
        (v.twilio_code for v in violations if v.twilio_code is not None),
        GENERIC_BAD_REQUEST_CODE,
    )
    return TwilioError(first.http_status, code, "; ".join(v.message for v in violations))


async def _create_message(state: FakeTwilio, call: _Call, background: _Background) -> Response:
    form = call.form

    def first(name: str) -> str | None:
        values = form.get(name)
        return values[0] if values else None

    if call.path_values["account_sid"] != state.account_sid:
        return TwilioError.for_code(20003).response()
    to_number = first("To")
    if not to_number:
        return TwilioError(400, 21604, "A 'To' phone number is required.").response()
    body = first("Body") or ""
    encoding, segments = message_segments(body)
    media_urls = tuple(form.get("MediaUrl", []))
    accepted_at = _now_to_the_second()
    message = RecordedMessage(
        sid=(
            str(uuid.uuid4())
            if state.dialect == "signalwire"
            else ("MM" if media_urls else "SM") + uuid.uuid4().hex
        ),
        account_sid=state.account_sid,
        to=to_number,
        from_=first("From"),
        messaging_service_sid=first("MessagingServiceSid"),
        body=body,
        media_urls=media_urls,
        status_callback=first("StatusCallback"),
        form={name: tuple(values) for name, values in form.items()},
        encoding=encoding,
        num_segments=segments,
        status="queued",
        error_code=None,
        date_created=accepted_at,
        date_updated=accepted_at,
        received_at=call.received_at,
        received_monotonic=call.received_monotonic,
        dialect=state.dialect,
    )
    state._store_message(message)
    if state.on_message is not None:
        try:
            state.on_message(message)
        except Exception:
            logger.exception("fake_twilio.on_message_failed")
    if state.simulate_delivery:
        background.spawn(_simulate_delivery(state, message))
    hold, hold_seconds = state._take_hold()
    if hold:
        await state._hold(hold_seconds)
    return JSONResponse(message.to_twilio_json(), status_code=201)


async def _fetch_message(state: FakeTwilio, call: _Call) -> Response:
    message = state.message(call.path_values["message_sid"])
    if message is None or call.path_values["account_sid"] != state.account_sid:
        return TwilioError(
            404, 20404, f"The requested resource {call.path} was not found"
        ).response()
    return JSONResponse(message.to_twilio_json())


async def _list_messages(state: FakeTwilio, call: _Call) -> Response:
    query = call.query
    try:
        date_filters = [
            _date_sent_filter(name, query[name])
            for name in ("DateSent", "DateSent<", "DateSent>")
            if name in query
        ]
        page_size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        page = int(query.get("Page", "0"))
    except ValueError as exc:
        return TwilioError(400, GENERIC_BAD_REQUEST_CODE, str(exc)).response()
    if page_size < 1 or page < 0:
        message = f"PageSize must be 1 to {MAX_PAGE_SIZE} and Page 0 or more"
        return TwilioError(400, GENERIC_BAD_REQUEST_CODE, message).response()
    # Newest first, as Twilio lists them; among equal seconds, the later arrival first.
    matching = [
        message
        for message in reversed(state.messages)
        if message.account_sid == call.path_values["account_sid"]
        and ("To" not in query or message.to == query["To"])
        and ("From" not in query or message.from_ == query["From"])
        and all(accepts(message.date_sent) for accepts in date_filters)
    ]
    matching.sort(key=lambda message: message.date_sent, reverse=True)
    start = page * page_size
    token = query.get("PageToken")
    if token is not None and token.startswith("PA"):
        sids = [message.sid for message in matching]
        if token[2:] in sids:
            start = sids.index(token[2:]) + 1
    messages = matching[start : start + page_size]
    path = call.path
    filters = {
        name: query[name]
        for name in ("To", "From", "DateSent", "DateSent<", "DateSent>")
        if name in query
    }

    def page_uri(page_number: int, page_token: str | None = None) -> str:
        parameters = {**filters, "PageSize": str(page_size), "Page": str(page_number)}
        if page_token is not None:
            parameters["PageToken"] = page_token
        return f"{path}?{urlencode(parameters)}"

    has_more = start + page_size < len(matching)
    return JSONResponse(
        {
            "messages": [message.to_twilio_json() for message in messages],
            "end": start + max(len(messages) - 1, 0),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1, "PA" + messages[-1].sid) if has_more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page, token),
        }
    )


async def _list_numbers(state: FakeTwilio, call: _Call) -> Response:
    query = call.query
    try:
        page_size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        page = int(query.get("Page", "0"))
    except ValueError as exc:
        return TwilioError(400, GENERIC_BAD_REQUEST_CODE, str(exc)).response()
    if page_size < 1 or page < 0:
        message = f"PageSize must be 1 to {MAX_PAGE_SIZE} and Page 0 or more"
        return TwilioError(400, GENERIC_BAD_REQUEST_CODE, message).response()
    wanted = query.get("PhoneNumber")
    matching = [
        resource
        for resource in state.numbers
        if resource["account_sid"] == call.path_values["account_sid"]
        and (wanted is None or resource["phone_number"] == wanted)
    ]
    start = page * page_size
    chosen = matching[start : start + page_size]
    prefix = SIGNALWIRE_API_PREFIX if state.dialect == "signalwire" else ""
    filters = {"PhoneNumber": wanted} if wanted is not None else {}

    def page_uri(page_number: int) -> str:
        parameters = {**filters, "PageSize": str(page_size), "Page": str(page_number)}
        return f"{prefix}{call.path}?{urlencode(parameters)}"

    has_more = start + page_size < len(matching)
    return JSONResponse(
        {
            "incoming_phone_numbers": chosen,
            "end": start + max(len(chosen) - 1, 0),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if has_more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
            "start": start,
            "uri": page_uri(page),
        }
    )


def _number_or_404(state: FakeTwilio, call: _Call) -> dict[str, object] | Response:
    found = state.number(call.path_values["number_sid"])
    if found is None or call.path_values["account_sid"] != state.account_sid:
        return TwilioError(
            404, 20404, f"The requested resource {call.path} was not found"
        ).response()
    return found


async def _fetch_number(state: FakeTwilio, call: _Call) -> Response:
    found = _number_or_404(state, call)
    return found if isinstance(found, Response) else JSONResponse(found)


async def _update_number(state: FakeTwilio, call: _Call) -> Response:
    found = _number_or_404(state, call)
    if isinstance(found, Response):
        return found
    sid = str(found["sid"])
    with state._lock:
        resource = state._numbers[sid]
        for name, values in call.form.items():
            key = _NUMBER_FIELDS.get(name)
            if key is not None and values:
                resource[key] = values[-1]
        resource["date_updated"] = format_datetime(datetime.now(UTC))
        answer = dict(resource)
    return JSONResponse(answer)


def _date_sent_filter(name: str, value: str) -> Callable[[datetime], bool]:
    """Twilio's ``DateSent`` filters: a GMT day, or an instant; ``<`` and ``>`` include it."""
    if _ISO_DATE.match(value):
        day = date.fromisoformat(value)
        if name == "DateSent<":
            return lambda sent: sent.astimezone(UTC).date() <= day
        if name == "DateSent>":
            return lambda sent: sent.astimezone(UTC).date() >= day
        return lambda sent: sent.astimezone(UTC).date() == day
    instant = parse_twilio_datetime(value) or _parse_slashed_datetime(value)
    if name == "DateSent<":
        return lambda sent: sent <= instant
    if name == "DateSent>":
        return lambda sent: sent >= instant
    return lambda sent: sent.astimezone(UTC).date() == instant.astimezone(UTC).date()


def _parse_slashed_datetime(value: str) -> datetime:
    # Twilio's spec shows ``06/11/2019 22:05:25 MST``; the zone name is read as GMT here.
    for layout in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"):
        with contextlib.suppress(ValueError):
            return datetime.strptime(value[: len(layout) + 2], layout).replace(tzinfo=UTC)
    raise ValueError(f"DateSent filter {value!r} is not a date Twilio understands")


async def _lookup(state: FakeTwilio, call: _Call) -> Response:
    raw_number = call.path_values["phone_number"]
    region = call.query.get("CountryCode", "US")
    fields = {name.strip() for name in call.query.get("Fields", "").split(",") if name.strip()}
    base_url = call.base_url
    answer: dict[str, object] = {
        "calling_country_code": None,
        "country_code": None,
        "phone_number": raw_number,
        "national_format": None,
        "valid": False,
        "validation_errors": None,
        "caller_name": None,
        "sim_swap": None,
        "call_forwarding": None,
        "line_status": None,
        "line_type_intelligence": None,
        "identity_match": None,
        "reassigned_number": None,
        "sms_pumping_risk": None,
        "phone_number_quality_score": None,
        "pre_fill": None,
        "url": f"{base_url}/v2/PhoneNumbers/{raw_number}",
    }
    try:
        parsed = phonenumbers.parse(raw_number, None if raw_number.startswith("+") else region)
    except phonenumbers.NumberParseException:
        answer["validation_errors"] = ["NOT_A_NUMBER"]
        return JSONResponse(answer)
    e164 = str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    answer.update(
        {
            "calling_country_code": str(parsed.country_code),
            "country_code": phonenumbers.region_code_for_number(parsed),
            "phone_number": e164,
            "national_format": phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.NATIONAL
            ),
            "url": f"{base_url}/v2/PhoneNumbers/{e164}",
        }
    )
    if not phonenumbers.is_valid_number(parsed):
        answer["validation_errors"] = [_validation_error(parsed)]
        return JSONResponse(answer)
    answer["valid"] = True
    if "line_type_intelligence" in fields:
        line_type = state.line_types.get(e164, "mobile")
        is_mobile = line_type == "mobile"
        answer["line_type_intelligence"] = {
            "carrier_name": _CARRIERS.get(line_type, "Unknown carrier"),
            "error_code": None,
            "mobile_country_code": "310" if is_mobile else None,
            "mobile_network_code": "260" if is_mobile else None,
            "type": line_type,
        }
    return JSONResponse(answer)


def _as_e164(number: str, region: str | None) -> str | None:
    try:
        parsed = phonenumbers.parse(number, None if number.startswith("+") else region or "US")
    except phonenumbers.NumberParseException:
        return None
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def _validation_error(parsed: phonenumbers.PhoneNumber) -> str:
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    reasons = phonenumbers.ValidationResult
    return {
        reasons.TOO_SHORT: "TOO_SHORT",
        reasons.TOO_LONG: "TOO_LONG",
        reasons.INVALID_COUNTRY_CODE: "INVALID_COUNTRY_CODE",
        reasons.INVALID_LENGTH: "INVALID_LENGTH",
    }.get(reason, "INVALID_BUT_POSSIBLE")


async def _simulate_delivery(state: FakeTwilio, message: RecordedMessage) -> None:
    outcome = state._delivery_outcome(message.to)
    steps: list[tuple[str, int | None]] = (
        [("failed", outcome.error_code)]
        if outcome.status == "failed"
        else [("sent", None), (outcome.status, outcome.error_code)]
    )
    async with httpx.AsyncClient(timeout=5.0) as client:
        for status, error_code in steps:
            await asyncio.sleep(state.delivery_step_seconds)
            updated = state._set_status(message.sid, status, error_code)
            if updated.status_callback is not None:
                await _post_status_callback(state, client, updated)


async def _post_status_callback(
    state: FakeTwilio, client: httpx.AsyncClient, message: RecordedMessage
) -> None:
    url = message.status_callback
    assert url is not None
    params = {
        "AccountSid": message.account_sid,
        "ApiVersion": API_VERSION,
        "From": message.from_ or "",
        "MessageSid": message.sid,
        "MessageStatus": message.status,
        "SmsSid": message.sid,
        "SmsStatus": message.status,
        "To": message.to,
    }
    if message.messaging_service_sid is not None:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.error_code is not None:
        params["ErrorCode"] = str(message.error_code)
    if state.dialect == "signalwire":
        # SignalWire signs with the project's signing key, in its own header.
        key, header, agent = state.signing_key, "X-SignalWire-Signature", "SignalWire"
    else:
        key, header, agent = state.auth_token, "X-Twilio-Signature", "TwilioProxy/1.1"
    signature = str(RequestValidator(key).compute_signature(url, params))
    response_status: int | None = None
    error: str | None = None
    try:
        response = await client.post(
            url,
            data=params,
            headers={header: signature, "User-Agent": agent},
        )
        response_status = response.status_code
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
        logger.warning("fake_twilio.status_callback_failed %s %s", url, error)
    state._record_callback(
        StatusCallbackAttempt(
            message.sid, url, message.status, params, signature, response_status, error
        )
    )


def _now_to_the_second() -> datetime:
    # Twilio's timestamps are RFC 2822, so whole seconds.
    return datetime.now(UTC).replace(microsecond=0)


class BackgroundServer:
    """Runs an ASGI app under uvicorn on 127.0.0.1 and a free port, in a daemon thread.

    ``start`` returns once the port accepts connections; ``stop`` (or leaving the
    ``with`` block) shuts it down. The access log is off.
    """

    def __init__(self, app: ASGIApp, *, host: str = "127.0.0.1", startup_timeout: float = 10.0):
        self._app = app
        self._host = host
        self._startup_timeout = startup_timeout
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:53127`` (no trailing slash)."""
        if self._port is None:
            raise RuntimeError("the server is not running; call start() first")
        return f"http://{self._host}:{self._port}"

    def start(self) -> Self:
        if self._thread is not None:
            return self
        # Bind here, so the port is ours before uvicorn starts: no race for a free port.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind((self._host, 0))
        self._socket = listener
        port: int = listener.getsockname()[1]
        self._port = port
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [listener]},
            name=f"uvicorn-{port}",
            daemon=True,
        )
        self._thread.start()
        self._wait_until_accepting(server, self._thread, port)
        return self

    def _wait_until_accepting(
        self, server: uvicorn.Server, thread: threading.Thread, port: int
    ) -> None:
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not thread.is_alive():
                self.stop()
                raise RuntimeError(f"the server on port {port} failed to start")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the server on port {port} did not start in time")
            time.sleep(0.005)
        with socket.create_connection((self._host, port), self._startup_timeout):
            pass

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close_socket()
        self._server = None
        self._thread = None

    def _close_socket(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class FakeTwilioServer(BackgroundServer):
    """A :class:`FakeTwilio` served over real HTTP; point both Twilio base URLs at ``url``."""

    def __init__(self, state: FakeTwilio | None = None, *, startup_timeout: float = 10.0):
        self.state = state if state is not None else FakeTwilio.checked_against_spec()
        super().__init__(create_fake_twilio_app(self.state), startup_timeout=startup_timeout)

    def start(self) -> Self:
        self.state._rearm()
        return super().start()

    def stop(self) -> None:
        # Held answers would otherwise keep uvicorn's graceful shutdown waiting.
        self.state.release_held_answers()
        super().stop()
