"""The demo's simulated phone network: plays Twilio's part towards Ringback.

A person on the demo page "owns" a phone number. Placing a call makes the network send
Ringback the same signed webhooks Twilio would (incoming call, then the front desk's
ring running out, then the call's final status); a text from the phone becomes a signed
inbound-SMS webhook. Texts Ringback sends arrive through the fake Twilio REST API that
``ringback demo`` mounts, which also posts signed delivery receipts back.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from twilio.request_validator import RequestValidator

from ringback.config import Locations
from ringback.fakes.twilio import FakeTwilio

log = logging.getLogger(__name__)


@dataclass
class SimulatedCall:
    sid: str
    caller: str
    to: str
    state: str = "dialing"  # dialing | ringing | greeting | ended
    detail: str = ""
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ring_seconds: int = 0
    hung_up: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class PhoneText:
    phone: str  # the demo phone this text belongs to
    direction: str  # in (to the phone) | out (from the phone)
    other: str
    body: str
    at: datetime
    status: str


class PhoneNetwork:
    """Sends Twilio-shaped, signed webhooks to Ringback for the demo phone."""

    def __init__(
        self,
        base_url: str,
        auth_token: str,
        account_sid: str,
        twilio: FakeTwilio,
        locations: Locations,
    ) -> None:
        self.base_url = base_url
        self.validator = RequestValidator(auth_token)
        self.account_sid = account_sid
        self.twilio = twilio
        self.locations = locations
        self.calls: dict[str, SimulatedCall] = {}
        self.sent: list[PhoneText] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def _post(self, path: str, params: dict[str, str]) -> httpx.Response:
        url = self.base_url + path
        signature = self.validator.compute_signature(url, params)
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(url, data=params, headers={"X-Twilio-Signature": signature})

    def _call_params(self, call: SimulatedCall, **extra: str) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": call.sid,
            "From": call.caller,
            "Caller": call.caller,
            "To": call.to,
            "Called": call.to,
            "Direction": "inbound",
            **extra,
        }

    def place_call(self, caller: str, to: str) -> SimulatedCall:
        call = SimulatedCall(sid="CA" + uuid.uuid4().hex, caller=caller, to=to)
        self.calls[call.sid] = call
        task = asyncio.get_running_loop().create_task(self._run_call(call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return call

    def hang_up(self, sid: str) -> bool:
        call = self.calls.get(sid)
        if call is None or call.state == "ended":
            return False
        call.hung_up.set()
        return True

    async def _run_call(self, call: SimulatedCall) -> None:
        try:
            response = await self._post(
                "/twilio/voice", self._call_params(call, CallStatus="ringing")
            )
            twiml = response.text
            dial = re.search(r'<Dial[^>]*timeout="(\d+)"', twiml)
            if dial:
                call.state, call.ring_seconds = "ringing", int(dial.group(1))
                call.detail = "Ringing the front desk…"
                try:
                    await asyncio.wait_for(call.hung_up.wait(), timeout=call.ring_seconds)
                    status = "canceled"
                    call.detail = "You hung up while it rang."
                except TimeoutError:
                    status = "no-answer"
                    call.detail = "Nobody picked up."
                response = await self._post(
                    "/twilio/voice/dial-result",
                    self._call_params(
                        call,
                        CallStatus="in-progress",
                        DialCallStatus=status,
                        DialCallSid="CA" + uuid.uuid4().hex,
                        DialCallDuration="0",
                    ),
                )
                twiml = response.text
            say = re.search(r"<Say>(.*?)</Say>", twiml, re.S)
            if say and not call.hung_up.is_set():
                call.state, call.detail = "greeting", say.group(1)
                await asyncio.sleep(2.5)
            await self._post(
                "/twilio/voice/status", self._call_params(call, CallStatus="completed")
            )
        except httpx.HTTPError as exc:
            call.detail = f"network error: {exc}"
            log.warning("demo.call_failed", extra={"fields": {"error": str(exc)}})
        finally:
            call.state = "ended"

    async def send_text(self, sender: str, to: str, body: str) -> int:
        params = {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "MessageSid": "SM" + uuid.uuid4().hex,
            "From": sender,
            "To": to,
            "Body": body,
            "NumMedia": "0",
            "NumSegments": "1",
            "SmsStatus": "received",
        }
        sent_at = datetime.now(UTC)  # before the post: the answer may arrive while it runs
        response = await self._post("/twilio/sms", params)
        status = "sent" if response.status_code == 200 else f"refused ({response.status_code})"
        self.sent.append(PhoneText(sender, "out", to, body, sent_at, status))
        return response.status_code

    def phone_state(self, number: str) -> dict[str, Any]:
        mine = [t for t in self.sent if t.phone == number]
        received = [
            PhoneText(number, "in", m.from_ or "", m.body, m.received_at, m.status)
            for m in self.twilio.messages
            if m.to == number
        ]
        thread = sorted(mine + received, key=lambda t: t.at)
        calls = [c for c in self.calls.values() if c.caller == number]
        return {
            "number": number,
            "texts": [
                {
                    "direction": t.direction,
                    "other": t.other,
                    "body": t.body,
                    "at": t.at.isoformat(),
                    "status": t.status,
                }
                for t in thread
            ],
            "calls": [
                {
                    "sid": c.sid,
                    "to": c.to,
                    "state": c.state,
                    "detail": c.detail,
                    "ring_seconds": c.ring_seconds,
                    "started_at": c.started_at.isoformat(),
                }
                for c in calls[-5:]
            ],
        }
