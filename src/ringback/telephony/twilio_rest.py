"""Twilio's REST API, spoken with httpx: Messages (send, list), Lookup v2 line type, and
the account's phone numbers (IncomingPhoneNumbers: list, fetch, set their webhooks).

Kept to the shapes in Twilio's OpenAPI description (``../shared/twilio-openapi``); the
test suite's fake Twilio checks every request we make against it. The Messages half is
shared with SignalWire's compatibility API (:mod:`ringback.telephony.signalwire_rest`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ringback.logs import log_event
from ringback.phones import redact
from ringback.ports import LookupFailed, OutboundSms, SendFailure, SentSms

log = logging.getLogger(__name__)

OPTED_OUT_CODES = frozenset({21610})
NOT_TEXTABLE_CODES = frozenset({21211, 21614, 21612, 21408})
RATE_LIMIT_CODES = frozenset({20429, 14107})


class NumbersApiError(Exception):
    """The provider refused or could not answer a phone-numbers request; says why."""


@dataclass(frozen=True, slots=True)
class IncomingNumber:
    """One of the account's phone numbers and where it sends calls and texts."""

    sid: str
    phone_number: str
    friendly_name: str
    voice_url: str
    voice_method: str
    status_callback: str
    status_callback_method: str
    sms_url: str
    sms_method: str
    voice_application_sid: str
    sms_application_sid: str
    trunk_sid: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> IncomingNumber:
        def text(key: str) -> str:
            value = item.get(key)
            return "" if value is None else str(value)

        return cls(
            sid=text("sid"),
            phone_number=text("phone_number"),
            friendly_name=text("friendly_name"),
            voice_url=text("voice_url"),
            voice_method=text("voice_method"),
            status_callback=text("status_callback"),
            status_callback_method=text("status_callback_method"),
            sms_url=text("sms_url"),
            sms_method=text("sms_method"),
            voice_application_sid=text("voice_application_sid"),
            sms_application_sid=text("sms_application_sid"),
            trunk_sid=text("trunk_sid"),
        )

    def field(self, form_name: str) -> str:
        """The value behind an update's form field name, e.g. ``VoiceUrl``."""
        return str(getattr(self, _SNAKE[form_name]))


_SNAKE = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "VoiceApplicationSid": "voice_application_sid",
    "SmsApplicationSid": "sms_application_sid",
    "TrunkSid": "trunk_sid",
}


class CompatibleMessagesClient:
    """Satisfies :class:`ringback.ports.SmsSender` over a Twilio-shaped Messages API.

    Twilio's own API and SignalWire's compatibility API (same paths under ``/api/laml``,
    same form fields, same JSON) are both spoken through this class; subclasses name the
    provider and the error codes it documents.
    """

    provider_name = "Twilio"
    opted_out_codes: frozenset[int] = OPTED_OUT_CODES
    not_textable_codes: frozenset[int] = NOT_TEXTABLE_CODES

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.account_sid = account_sid
        self._api = api_base_url.rstrip("/")
        self._client = httpx.Client(
            auth=(account_sid, auth_token),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"User-Agent": "ringback/0.1"},
            transport=transport,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._client.close()

    @property
    def _messages_url(self) -> str:
        return f"{self._api}/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def _status_callback(self, sms: OutboundSms) -> str | None:
        return sms.status_callback

    def send(self, sms: OutboundSms) -> SentSms:
        form = {"To": sms.to, "From": sms.from_, "Body": sms.body}
        status_callback = self._status_callback(sms)
        if status_callback:
            form["StatusCallback"] = status_callback
        name = self.provider_name
        try:
            response = self._client.post(self._messages_url, data=form)
        except httpx.ConnectError as exc:
            # The request never reached the provider: safe to send again.
            raise SendFailure("retry", f"cannot connect to {name}: {exc}") from exc
        except httpx.TransportError as exc:
            # Timeouts and dropped connections after the request went out: it may have it.
            raise SendFailure("ambiguous", f"no answer from {name}: {type(exc).__name__}") from exc
        if response.status_code in (200, 201):
            body = response.json()
            return SentSms(sid=str(body["sid"]), status=str(body.get("status") or "queued"))
        raise self._failure(response)

    def find_sent(self, sms: OutboundSms, since: datetime) -> SentSms | None:
        day = (since.astimezone(UTC) - timedelta(days=1)).date().isoformat()
        params = {"To": sms.to, "From": sms.from_, "DateSent>": day, "PageSize": "50"}
        try:
            response = self._client.get(self._messages_url, params=params)
        except httpx.TransportError as exc:
            raise SendFailure("ambiguous", f"cannot list messages: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise self._failure(response)
        for item in response.json().get("messages", []):
            if item.get("body") == sms.body and item.get("status") not in ("failed", "canceled"):
                return SentSms(sid=str(item["sid"]), status=str(item.get("status") or "queued"))
        return None

    def _failure(self, response: httpx.Response) -> SendFailure:
        return _failure(response, self.provider_name, self.opted_out_codes, self.not_textable_codes)

    # The account's phone numbers (IncomingPhoneNumbers), for `ringback twilio connect`.

    @property
    def _numbers_url(self) -> str:
        return f"{self._api}/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers.json"

    def _number_url(self, sid: str) -> str:
        return (
            f"{self._api}/2010-04-01/Accounts/{self.account_sid}/IncomingPhoneNumbers/"
            f"{quote(sid, safe='')}.json"
        )

    def _numbers_call(
        self, method: str, url: str, *, data: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        name = self.provider_name
        try:
            response = self._client.request(method, url, data=data)
        except httpx.TransportError as exc:
            raise NumbersApiError(f"cannot reach {name}: {type(exc).__name__}") from exc
        if response.status_code in (401, 403):
            raise NumbersApiError(
                f"{name} refused the credentials (HTTP {response.status_code}): check the "
                "account id and token"
            )
        if response.status_code != 200:
            raise NumbersApiError(_failure(response, name).detail)
        body = response.json()
        if not isinstance(body, dict):
            raise NumbersApiError(f"{name} answered something other than a JSON object")
        return body

    def list_numbers(self) -> list[IncomingNumber]:
        """Every phone number on the account, following the pages."""
        found: list[IncomingNumber] = []
        url: str | None = f"{self._numbers_url}?PageSize=100"
        while url is not None:
            page = self._numbers_call("GET", url)
            found += [IncomingNumber.from_json(item) for item in page["incoming_phone_numbers"]]
            next_uri = page.get("next_page_uri")
            url = self._absolute(str(next_uri)) if next_uri else None
        return found

    def fetch_number(self, sid: str) -> IncomingNumber:
        return IncomingNumber.from_json(self._numbers_call("GET", self._number_url(sid)))

    def update_number(self, sid: str, fields: Mapping[str, str]) -> IncomingNumber:
        """Change the given fields (form names such as ``VoiceUrl``) of one number."""
        answer = self._numbers_call("POST", self._number_url(sid), data=dict(fields))
        return IncomingNumber.from_json(answer)

    def _absolute(self, uri: str) -> str:
        """A ``next_page_uri`` as an absolute URL (Twilio gives it from the host's root)."""
        parts = urlsplit(self._api)
        return f"{parts.scheme}://{parts.netloc}{uri}"


class TwilioRestClient(CompatibleMessagesClient):
    """Satisfies :class:`ringback.ports.SmsSender` and :class:`ringback.ports.CallerLookup`."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base_url: str = "https://api.twilio.com",
        lookup_base_url: str = "https://lookups.twilio.com",
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            account_sid,
            auth_token,
            api_base_url=api_base_url,
            timeout=timeout,
            transport=transport,
        )
        self._lookup = lookup_base_url.rstrip("/")

    def line_type(self, number: str) -> str | None:
        url = f"{self._lookup}/v2/PhoneNumbers/{quote(number, safe='+')}"
        try:
            response = self._client.get(url, params={"Fields": "line_type_intelligence"})
        except httpx.TransportError as exc:
            raise LookupFailed(f"lookup unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise LookupFailed(f"lookup answered HTTP {response.status_code}")
        info: dict[str, Any] = response.json().get("line_type_intelligence") or {}
        line_type = info.get("type")
        log_event(log, "lookup.done", number=redact(number), line_type=line_type)
        return str(line_type) if line_type else None


def _failure(
    response: httpx.Response,
    provider_name: str = "Twilio",
    opted_out_codes: frozenset[int] = OPTED_OUT_CODES,
    not_textable_codes: frozenset[int] = NOT_TEXTABLE_CODES,
) -> SendFailure:
    try:
        body = response.json()
    except ValueError:
        body = {}
    code = body.get("code") if isinstance(body, dict) else None
    code = int(code) if isinstance(code, int | str) and str(code).isdigit() else None
    message = str(body.get("message", "")) if isinstance(body, dict) else ""
    detail = f"{provider_name} HTTP {response.status_code}" + (f" code {code}" if code else "")
    if message:
        detail += f": {message[:200]}"
    if response.status_code == 429 or code in RATE_LIMIT_CODES:
        retry_after = response.headers.get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
        return SendFailure("retry", detail, code=code, retry_after=seconds)
    if response.status_code >= 500:
        return SendFailure("retry", detail, code=code)
    if code in opted_out_codes:
        return SendFailure("opted_out", detail, code=code)
    if code in not_textable_codes:
        return SendFailure("not_textable", detail, code=code)
    if response.status_code in (401, 403):
        # Bad credentials are an operator problem: keep the text and try again later.
        return SendFailure("retry", detail, code=code)
    return SendFailure("rejected", detail, code=code)
