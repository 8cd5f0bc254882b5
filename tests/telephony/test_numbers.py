"""Connecting the account's phone numbers: the fake's IncomingPhoneNumbers held to
Twilio's contract, and ``ringback twilio|signalwire connect`` through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from ringback.fakes.twilio import FakeTwilio, FakeTwilioServer
from ringback.fakes.twilio_contract import API_V2010_SPEC, default_openapi_dir
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SIGNALWIRE_API_TOKEN,
    SIGNALWIRE_PROJECT_ID,
    SIGNALWIRE_SIGNING_KEY,
)
from tests.support.cli import ringback

DOWNTOWN = "+13105550100"  # glow-downtown, provider twilio in the demo file
WESTSIDE = "+13105550200"  # glow-westside
STRANGER = "+13105550999"  # on the account, in no location
PUBLIC = "https://spa.example.com"


@pytest.fixture
def fake() -> Iterator[FakeTwilioServer]:
    state = FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    with FakeTwilioServer(state) as server:
        yield server
    assert state.violations == [], f"requests Twilio would refuse: {state.violations}"


def env_for(server: FakeTwilioServer, **extra: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": server.url,
        "RINGBACK_PUBLIC_URL": PUBLIC,
        **extra,
    }


def test_the_number_resource_has_exactly_the_fields_of_the_spec(fake: FakeTwilioServer) -> None:
    spec = json.loads((default_openapi_dir() / API_V2010_SPEC).read_text())
    schema = spec["components"]["schemas"]["api.v2010.account.incoming_phone_number"]
    sid = fake.state.add_number(DOWNTOWN)
    with httpx.Client(base_url=fake.url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
        listed = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers.json")
        fetched = http.get(f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{sid}.json")
    assert listed.status_code == 200
    assert fetched.status_code == 200
    (item,) = listed.json()["incoming_phone_numbers"]
    assert set(item) == set(schema["properties"])
    assert fetched.json() == item


def test_an_update_breaking_the_contract_is_refused_and_changes_nothing() -> None:
    state = FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    with FakeTwilioServer(state) as server:
        sid = state.add_number(DOWNTOWN)
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers/{sid}.json"
        with httpx.Client(base_url=server.url, auth=(ACCOUNT_SID, AUTH_TOKEN)) as http:
            misspelt = http.post(path, data={"VoiceURL": f"{PUBLIC}/twilio/voice"})
            bad_method = http.post(path, data={"VoiceUrl": f"{PUBLIC}/x", "VoiceMethod": "PUT"})
    assert misspelt.status_code == 400
    assert bad_method.status_code == 400
    assert any("VoiceURL" in v for v in state.violations)
    assert any("VoiceMethod" in v for v in state.violations)
    assert state.number(sid)["voice_url"] == "https://demo.twilio.com/welcome/voice/"  # type: ignore[index]


def test_connect_points_the_locations_numbers_here_and_verifies(fake: FakeTwilioServer) -> None:
    state = fake.state
    downtown = state.add_number(DOWNTOWN)
    westside = state.add_number(WESTSIDE, voice_application_sid="AP" + "0" * 32)
    stranger = state.add_number(STRANGER)
    env = env_for(fake)

    before = ringback("twilio", "numbers", env=env)
    assert before.returncode == 0, before.stderr
    assert (
        f"{DOWNTOWN}\t{downtown}\tglow-downtown\tvoice URL https://demo.twilio.com" in before.stdout
    )
    assert f"{STRANGER}\t{stranger}\t-\t" in before.stdout

    dry = ringback("twilio", "connect", "--dry-run", env=env)
    assert dry.returncode == 1, dry.stderr  # the westside number cannot be connected
    assert f"{DOWNTOWN} (glow-downtown): would change (dry run)" in dry.stdout
    assert state.number(downtown)["voice_url"] == "https://demo.twilio.com/welcome/voice/"  # type: ignore[index]

    result = ringback("twilio", "connect", env=env)
    assert result.returncode == 1, result.stderr
    # An attached application makes Twilio ignore the number's URLs; the contract gives no
    # way to detach it, so the number is reported and left alone.
    assert f"{WESTSIDE} (glow-westside): not changed: voice application AP" in result.stdout
    assert state.number(westside)["voice_url"] == "https://demo.twilio.com/welcome/voice/"  # type: ignore[index]
    assert f"{DOWNTOWN} (glow-downtown): changed and verified" in result.stdout
    assert (
        f"  VoiceUrl: https://demo.twilio.com/welcome/voice/ -> {PUBLIC}/twilio/voice"
        in result.stdout
    )
    number = state.number(downtown)
    assert number is not None
    assert number["voice_url"] == f"{PUBLIC}/twilio/voice"
    assert number["status_callback"] == f"{PUBLIC}/twilio/voice/status"
    assert number["sms_url"] == f"{PUBLIC}/twilio/sms"
    assert number["voice_method"] == number["sms_method"] == "POST"
    assert state.number(stranger)["voice_url"] == "https://demo.twilio.com/welcome/voice/"  # type: ignore[index]

    again = ringback("twilio", "connect", "--number", DOWNTOWN, env=env)
    assert again.returncode == 0, again.stderr
    assert f"{DOWNTOWN} (glow-downtown): already points here" in again.stdout
    updates = [r for r in state.requests if r.operation == "update_number"]
    assert len(updates) == 1
    listed = ringback("twilio", "numbers", env=env)
    assert f"{DOWNTOWN}\t{downtown}\tglow-downtown\tpoints here" in listed.stdout


def test_connect_refuses_what_would_not_work(fake: FakeTwilioServer) -> None:
    fake.state.add_number(DOWNTOWN)
    stranger = fake.state.add_number(STRANGER)
    env = env_for(fake)

    not_a_location = ringback("twilio", "connect", "--number", STRANGER, env=env)
    assert not_a_location.returncode == 2
    assert f"{STRANGER} is not the number of a twilio location" in not_a_location.stderr
    not_on_account = ringback("twilio", "connect", "--number", "+13105550177", env=env)
    assert not_on_account.returncode == 2
    assert "+13105550177 is not on this Twilio account" in not_on_account.stderr
    loopback = ringback(
        "twilio", "connect", env=env_for(fake, RINGBACK_PUBLIC_URL="http://127.0.0.1:8000")
    )
    assert loopback.returncode == 2
    assert "a loopback address" in loopback.stderr
    wrong_token = ringback("twilio", "connect", env=env_for(fake, TWILIO_AUTH_TOKEN="nope"))
    assert wrong_token.returncode == 2
    assert "Twilio refused the credentials (HTTP 401)" in wrong_token.stderr
    assert "Traceback" not in wrong_token.stderr
    no_credentials = ringback("twilio", "numbers", env=env_for(fake, TWILIO_AUTH_TOKEN=""))
    assert no_credentials.returncode == 2
    assert "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set" in no_credentials.stderr
    assert fake.state.number(stranger)["voice_url"] == "https://demo.twilio.com/welcome/voice/"  # type: ignore[index]
    # The refused credentials were an auth failure the fake records, not our contract error.
    fake.state._violations.clear()


def test_signalwire_numbers_connect_the_same_way(tmp_path: pytest.TempPathFactory) -> None:
    import yaml

    from tests.support.cli import DEMO

    state = FakeTwilio.signalwire(
        project_id=SIGNALWIRE_PROJECT_ID,
        api_token=SIGNALWIRE_API_TOKEN,
        signing_key=SIGNALWIRE_SIGNING_KEY,
    )
    config = yaml.safe_load(DEMO.read_text())
    config["locations"][1]["provider"] = "signalwire"
    path = tmp_path / "locations.yaml"  # type: ignore[operator]
    path.write_text(yaml.safe_dump(config))
    with FakeTwilioServer(state) as server:
        sid = state.add_number(WESTSIDE)
        state.add_number(DOWNTOWN)
        result = ringback(
            "signalwire",
            "connect",
            env={
                "RINGBACK_CONFIG": str(path),
                "SIGNALWIRE_PROJECT_ID": SIGNALWIRE_PROJECT_ID,
                "SIGNALWIRE_API_TOKEN": SIGNALWIRE_API_TOKEN,
                "SIGNALWIRE_SPACE_URL": server.url,
                "SIGNALWIRE_SIGNING_KEY": SIGNALWIRE_SIGNING_KEY,
                "RINGBACK_PUBLIC_URL": PUBLIC,
            },
        )
    assert result.returncode == 0, result.stderr
    assert f"{WESTSIDE} (glow-westside): changed and verified" in result.stdout
    assert DOWNTOWN not in result.stdout  # a Twilio location's number is not touched
    number = state.number(sid)
    assert number is not None
    assert number["voice_url"] == f"{PUBLIC}/signalwire/voice"
    assert number["sms_url"] == f"{PUBLIC}/signalwire/sms"
    assert state.violations == []
