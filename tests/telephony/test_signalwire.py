"""SignalWire's adapters on their own: the REST sender against the fake Space (held to
Twilio's contract, with SignalWire's paths, ids and auth), the signature scheme, the
per-location router and the settings it needs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers
from twilio.request_validator import RequestValidator

from ringback.config import (
    ConfigError,
    Locations,
    Settings,
    check_provider_settings,
    load_locations,
    load_settings,
)
from ringback.fakes.twilio import FakeTwilio, FakeTwilioServer
from ringback.ports import OutboundSms, SendFailure, SentSms
from ringback.telephony.senders import ProviderRoutedSms, build_telephony
from ringback.telephony.signalwire_rest import SignalWireRestClient
from ringback.telephony.signatures import (
    signalwire_signature,
    signalwire_signature_valid,
    twilio_signature_valid,
)

PROJECT = "0f4c2a1e-7d3b-4e5f-9a8b-1c2d3e4f5a6b"
TOKEN = "PT0123456789abcdef"
SIGNING_KEY = "PSK_abcdef0123456789"
CALLBACK = "https://rb.example/signalwire/sms/status"
SPA = "+13105550200"
CALLER = "+12135550301"
UUID_SHAPE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


@pytest.fixture
def space() -> Iterator[FakeTwilioServer]:
    """A fake SignalWire Space that must see no contract violation."""
    state = FakeTwilio.signalwire(project_id=PROJECT, api_token=TOKEN, signing_key=SIGNING_KEY)
    with FakeTwilioServer(state) as server:
        yield server
    assert state.violations == []


@pytest.fixture
def loose_space() -> Iterator[FakeTwilioServer]:
    """A fake Space for requests that are meant to break the contract."""
    state = FakeTwilio.signalwire(project_id=PROJECT, api_token=TOKEN, signing_key=SIGNING_KEY)
    with FakeTwilioServer(state) as server:
        yield server


def client(server: FakeTwilioServer, **kwargs: str) -> SignalWireRestClient:
    return SignalWireRestClient(
        kwargs.get("project_id", PROJECT),
        kwargs.get("api_token", TOKEN),
        api_base_url=server.url + "/api/laml",
        status_callback_url=CALLBACK,
        timeout=2.0,
    )


def sms(body: str = "Hi from Glow", *, to: str = CALLER, callback: str | None = "x") -> OutboundSms:
    return OutboundSms(to=to, from_=SPA, body=body, status_callback=callback)


# --- REST --------------------------------------------------------------------------------


def test_send_speaks_the_compatibility_api_with_project_credentials(
    space: FakeTwilioServer,
) -> None:
    sender = client(space)
    sent = sender.send(sms(callback="https://rb.example/twilio/sms/status"))
    sender.close()
    assert sent.status == "queued"
    assert sent.sid == space.state.messages[0].sid
    message = space.state.messages[0]
    assert message.account_sid == PROJECT
    assert (message.to, message.from_, message.body) == (CALLER, SPA, "Hi from Glow")
    # Receipts are asked for at SignalWire's own route, whatever the domain passed.
    assert message.status_callback == CALLBACK
    request = space.state.requests[0]
    assert request.path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json"
    assert request.operation == "create_message"
    assert re.match(UUID_SHAPE, sent.sid)


def test_no_receipt_asked_for_when_the_domain_asks_none(space: FakeTwilioServer) -> None:
    sender = client(space)
    sender.send(sms(callback=None))
    sender.close()
    assert space.state.messages[0].status_callback is None


def test_find_sent_lists_the_projects_messages(space: FakeTwilioServer) -> None:
    sender = client(space)
    since = datetime.now(UTC)
    sent = sender.send(sms("the one"))
    assert sender.find_sent(sms("the one"), since) == SentSms(sent.sid, "queued")
    assert sender.find_sent(sms("another"), since) is None
    sender.close()


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (21610, None, "opted_out"),
        (21217, 400, "not_textable"),
        (21211, None, "not_textable"),
        (20429, 429, "retry"),
        (20500, 500, "retry"),
        (21212, 400, "rejected"),
    ],
)
def test_errors_map_to_failure_kinds(
    space: FakeTwilioServer, code: int, status: int | None, kind: str
) -> None:
    space.state.fail_for(CALLER, code, status=status)
    sender = client(space)
    with pytest.raises(SendFailure) as failure:
        sender.send(sms())
    sender.close()
    assert failure.value.kind == kind
    assert failure.value.code == code
    assert failure.value.detail.startswith("SignalWire HTTP")


def test_string_error_codes_are_read_too() -> None:
    # SignalWire documents error codes as strings in places; both forms are understood.
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": "21610", "message": "unsubscribed"})

    sender = SignalWireRestClient(
        PROJECT,
        TOKEN,
        api_base_url="https://space.example/api/laml",
        status_callback_url=CALLBACK,
        transport=httpx.MockTransport(answer),
    )
    with pytest.raises(SendFailure) as failure:
        sender.send(sms())
    assert (failure.value.kind, failure.value.code) == ("opted_out", 21610)


# --- the fake holds requests to the contract ---------------------------------------------


def post(server: FakeTwilioServer, path: str, form: dict[str, str], auth: tuple[str, str]) -> int:
    response = httpx.post(server.url + path, data=form, auth=auth, timeout=5)
    return response.status_code


MESSAGES = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages.json"
GOOD_FORM = {"To": CALLER, "From": SPA, "Body": "hi"}


@pytest.mark.parametrize(
    ("path", "form", "auth", "expected_status", "expected_violation"),
    [
        (
            MESSAGES,
            {**GOOD_FORM, "StatusCalback": CALLBACK},
            (PROJECT, TOKEN),
            400,
            "StatusCalback",
        ),
        (MESSAGES, {**GOOD_FORM, "From": "3105550200"}, (PROJECT, TOKEN), 400, "'From'"),
        (MESSAGES, {"To": CALLER, "From": SPA}, (PROJECT, TOKEN), 400, "'Body'"),
        (MESSAGES, GOOD_FORM, (PROJECT, "wrong-token"), 401, "auth token"),
        (MESSAGES, GOOD_FORM, ("AC" + "a1" * 16, TOKEN), 401, "Account SID"),
        (
            f"/2010-04-01/Accounts/{PROJECT}/Messages.json",
            GOOD_FORM,
            (PROJECT, TOKEN),
            404,
            "under /api/laml",
        ),
        (
            "/api/laml/2010-04-01/Accounts/AC" + "a1" * 16 + "/Messages.json",
            GOOD_FORM,
            ("AC" + "a1" * 16, TOKEN),
            401,
            "'AccountSid' = 'ACa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1' does not match ^[0-9a-fA-F]{8}",
        ),
    ],
)
def test_contract_violations_are_refused_and_recorded(
    loose_space: FakeTwilioServer,
    path: str,
    form: dict[str, str],
    auth: tuple[str, str],
    expected_status: int,
    expected_violation: str,
) -> None:
    assert post(loose_space, path, form, auth) == expected_status
    violations = loose_space.state.violations
    assert violations, "the fake accepted a request SignalWire would refuse"
    assert any(expected_violation in violation for violation in violations), violations
    assert loose_space.state.messages == []


def test_signalwire_fake_serves_no_twilio_lookup(loose_space: FakeTwilioServer) -> None:
    response = httpx.get(
        loose_space.url + "/v2/PhoneNumbers/+12135550301", auth=(PROJECT, TOKEN), timeout=5
    )
    assert response.status_code == 404
    assert loose_space.state.violations


def test_fake_answers_in_signalwires_shape(space: FakeTwilioServer) -> None:
    response = httpx.post(space.url + MESSAGES, data=GOOD_FORM, auth=(PROJECT, TOKEN), timeout=5)
    assert response.status_code == 201
    body = response.json()
    assert body["account_sid"] == PROJECT
    assert body["uri"] == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{body['sid']}"
    fetched = httpx.get(
        space.url + f"/api/laml/2010-04-01/Accounts/{PROJECT}/Messages/{body['sid']}.json",
        auth=(PROJECT, TOKEN),
        timeout=5,
    )
    assert fetched.status_code == 200
    assert fetched.json()["sid"] == body["sid"]


# --- signatures --------------------------------------------------------------------------

URL = "https://rb.example/signalwire/voice"
PARAMS = {"CallSid": str(uuid.uuid4()), "From": CALLER, "To": SPA, "AccountSid": PROJECT}


def test_signalwire_signature_uses_the_signing_key_in_its_header() -> None:
    signature = signalwire_signature(SIGNING_KEY, URL, PARAMS)
    # Twilio's construction, keyed with the signing key.
    assert signature == RequestValidator(SIGNING_KEY).compute_signature(URL, PARAMS)
    headers = Headers({"X-SignalWire-Signature": signature})
    assert signalwire_signature_valid(headers, URL, PARAMS, SIGNING_KEY)
    assert signalwire_signature_valid(
        Headers({"X-Twilio-Signature": signature}), URL, PARAMS, SIGNING_KEY
    )
    assert not signalwire_signature_valid(headers, URL, PARAMS, TOKEN)
    assert not signalwire_signature_valid(Headers({}), URL, PARAMS, SIGNING_KEY)
    assert not signalwire_signature_valid(headers, URL, {**PARAMS, "To": CALLER}, SIGNING_KEY)
    # Nor does a SignalWire signature pass as Twilio's.
    assert not twilio_signature_valid(
        Headers({"X-Twilio-Signature": signature}), URL, PARAMS, "twilio-token"
    )


@pytest.mark.parametrize("signed_url", [URL, "https://rb.example:443/signalwire/voice"])
def test_signalwire_signature_port_variants(signed_url: str) -> None:
    signature = signalwire_signature(SIGNING_KEY, signed_url, PARAMS)
    headers = Headers({"X-SignalWire-Signature": signature})
    assert signalwire_signature_valid(headers, URL, PARAMS, SIGNING_KEY)


# --- routing and settings ----------------------------------------------------------------


def write_locations(tmp_path: Path, westside_provider: str = "signalwire") -> Locations:
    path = tmp_path / "locations.yaml"
    path.write_text(
        "locations:\n"
        "  - {id: downtown, name: Downtown, phone_number: '+13105550100'}\n"
        f"  - {{id: westside, name: Westside, phone_number: '{SPA}',"
        f" provider: {westside_provider}}}\n"
    )
    return load_locations(path)


class Recording:
    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[OutboundSms] = []

    def send(self, sms: OutboundSms) -> SentSms:
        self.sent.append(sms)
        return SentSms(self.name, "queued")

    def find_sent(self, sms: OutboundSms, since: datetime) -> SentSms | None:
        return SentSms(self.name, "sent")


def test_router_sends_through_the_provider_of_the_from_numbers_location(tmp_path: Path) -> None:
    twilio, signalwire = Recording("twilio"), Recording("signalwire")
    router = ProviderRoutedSms(
        write_locations(tmp_path), {"twilio": twilio, "signalwire": signalwire}
    )
    assert router.send(sms()).sid == "signalwire"
    assert router.send(OutboundSms(CALLER, "+13105550100", "hi")).sid == "twilio"
    # A number that is no location's goes through the default (Twilio).
    assert router.send(OutboundSms(CALLER, "+14155550199", "hi")).sid == "twilio"
    assert router.find_sent(sms(), datetime.now(UTC)) == SentSms("signalwire", "sent")
    assert [m.from_ for m in signalwire.sent] == [SPA]


def test_router_without_the_providers_sender_keeps_the_text_for_later(tmp_path: Path) -> None:
    router = ProviderRoutedSms(write_locations(tmp_path), {"twilio": Recording("twilio")})
    with pytest.raises(SendFailure) as failure:
        router.send(sms())
    assert failure.value.kind == "retry"
    assert "no signalwire sender" in failure.value.detail


def signalwire_settings(**values: str) -> Settings:
    base = {
        "SIGNALWIRE_PROJECT_ID": PROJECT,
        "SIGNALWIRE_API_TOKEN": TOKEN,
        "SIGNALWIRE_SPACE_URL": "example.signalwire.com",
        "SIGNALWIRE_SIGNING_KEY": SIGNING_KEY,
    }
    base.update(values)
    return load_settings(**{k: v for k, v in base.items() if v})


def test_missing_signalwire_settings_are_named(tmp_path: Path) -> None:
    locations = write_locations(tmp_path)
    settings = signalwire_settings(SIGNALWIRE_API_TOKEN="", SIGNALWIRE_SIGNING_KEY="")
    with pytest.raises(ConfigError) as error:
        check_provider_settings(settings, locations)
    message = str(error.value)
    assert "SIGNALWIRE_API_TOKEN, SIGNALWIRE_SIGNING_KEY not set" in message
    assert "westside use provider signalwire" in message
    with pytest.raises(ConfigError):
        build_telephony(settings, locations)
    # Twilio-only configurations need none of them.
    check_provider_settings(load_settings(), write_locations(tmp_path, "twilio"))


def test_space_url_and_secrets(tmp_path: Path) -> None:
    settings = signalwire_settings()
    assert settings.signalwire_api_base_url == "https://example.signalwire.com/api/laml"
    local = signalwire_settings(SIGNALWIRE_SPACE_URL="http://127.0.0.1:8765/")
    assert local.signalwire_api_base_url == "http://127.0.0.1:8765/api/laml"
    assert TOKEN not in repr(settings)
    assert SIGNING_KEY not in repr(settings)
    with pytest.raises(ConfigError) as error:
        signalwire_settings(SIGNALWIRE_PROJECT_ID="not-a-uuid")
    assert "SIGNALWIRE_PROJECT_ID" in str(error.value)
    with pytest.raises(ConfigError) as error:
        signalwire_settings(SIGNALWIRE_SPACE_URL="https://example.signalwire.com/api/laml")
    assert "SIGNALWIRE_SPACE_URL" in str(error.value)


def test_build_telephony_routes_only_when_a_location_uses_signalwire(tmp_path: Path) -> None:
    twilio_only = build_telephony(load_settings(), write_locations(tmp_path, "twilio"))
    assert not isinstance(twilio_only.sms, ProviderRoutedSms)
    assert twilio_only.lookup is None  # no Twilio credentials: screening goes without
    twilio_only.close()
    mixed = build_telephony(signalwire_settings(), write_locations(tmp_path))
    assert isinstance(mixed.sms, ProviderRoutedSms)
    assert mixed.sms.provider_for(SPA) == "signalwire"
    mixed.close()
