"""Connect phone numbers from the settings page: list the account's numbers (the fake
holds IncomingPhoneNumbers to Twilio's contract), preview the changes, apply, verify.
SignalWire the same way. Owners only; CSRF; bad choices change nothing."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from ringback.db import transaction
from ringback.models import StaffUser
from ringback.staff import auth
from ringback.web import SESSION_COOKIE
from tests.conftest import Service
from tests.staff.conftest import add_user, page_csrf, sign_in

PAGE = "/staff/settings/phone-numbers"
PUBLIC = "https://spa.example.com"
DOWNTOWN = "+13105550100"
WESTSIDE = "+13105550200"
STRANGER = "+13105550999"
DEMO_VOICE = "https://demo.twilio.com/welcome/voice/"


def session_for(service: Service, email: str) -> httpx.Client:
    """Signed in without the sign-in form: with an https public URL the cookie is Secure,
    which a test client talking plain http to 127.0.0.1 would not send back."""
    with transaction(service.runtime.deps.sessions) as session:
        user = auth.find_user(session, email)
        assert isinstance(user, StaffUser)
        token = auth.start_session(session, user, datetime.now(UTC)).token
    client = httpx.Client(base_url=service.url, timeout=10)
    client.cookies.set(SESSION_COOKIE, token)
    return client


def post(client: httpx.Client, path: str, data: dict[str, Any]) -> httpx.Response:
    return client.post(path, data={"csrf_token": page_csrf(client, PAGE), **data})


def text(response: httpx.Response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", response.text))


def test_an_owner_previews_connects_and_verifies(make_service: Callable[..., Service]) -> None:
    service = make_service(public_url=PUBLIC)
    downtown = service.twilio.add_number(DOWNTOWN)
    westside = service.twilio.add_number(WESTSIDE, voice_application_sid="AP" + "0" * 32)
    stranger = service.twilio.add_number(STRANGER)
    add_user(service, "owner@glow.example")
    owner = session_for(service, "owner@glow.example")

    listed = owner.get(PAGE)
    assert listed.status_code == 200
    shown = text(listed)
    assert "Glow Med Spa" in shown
    assert "not in the locations file" in shown  # the stranger
    assert "voice application AP" in shown  # westside cannot be connected by URL
    assert f'name="number" value="{DOWNTOWN}"' in listed.text
    assert f'name="number" value="{STRANGER}"' not in listed.text
    assert f"{PUBLIC}/twilio/voice" in shown

    planned = post(owner, PAGE + "/plan", {"provider": "twilio", "number": [DOWNTOWN]})
    assert planned.status_code == 200
    preview = text(planned)
    assert "Planned changes" in preview
    assert "would change (dry run)" in preview
    assert DEMO_VOICE in preview
    assert f"{PUBLIC}/twilio/voice/status" in preview
    assert service.twilio.number(downtown)["voice_url"] == DEMO_VOICE  # type: ignore[index]

    applied = post(owner, PAGE + "/connect", {"provider": "twilio", "number": [DOWNTOWN]})
    assert applied.status_code == 200
    assert "changed and verified" in text(applied)
    number = service.twilio.number(downtown)
    assert number is not None
    assert number["voice_url"] == f"{PUBLIC}/twilio/voice"
    assert number["status_callback"] == f"{PUBLIC}/twilio/voice/status"
    assert number["sms_url"] == f"{PUBLIC}/twilio/sms"
    assert service.twilio.number(westside)["voice_url"] == DEMO_VOICE  # type: ignore[index]
    assert service.twilio.number(stranger)["voice_url"] == DEMO_VOICE  # type: ignore[index]
    assert "points here" in text(owner.get(PAGE))
    again = post(owner, PAGE + "/connect", {"provider": "twilio", "number": [DOWNTOWN]})
    assert "already points here" in text(again)
    updates = [r for r in service.twilio.requests if r.operation == "update_number"]
    assert len(updates) == 1


def test_bad_choices_change_nothing(make_service: Callable[..., Service]) -> None:
    service = make_service(public_url=PUBLIC)
    downtown = service.twilio.add_number(DOWNTOWN)
    stranger = service.twilio.add_number(STRANGER)
    add_user(service, "owner@glow.example")
    owner = session_for(service, "owner@glow.example")
    cases = [
        ({"provider": "twilio"}, "choose at least one number"),
        ({"provider": "twilio", "number": STRANGER}, "is not the number of a twilio location"),
        ({"provider": "twilio", "number": "+13105550177"}, "is not on this Twilio account"),
        ({"provider": "twilio", "number": "call me"}, "expected a phone number"),
        ({"provider": "nexmo", "number": DOWNTOWN}, "expected twilio or signalwire"),
    ]
    for data, message in cases:
        refused = post(owner, PAGE + "/connect", data)
        assert refused.status_code == 400, data
        assert message in text(refused), data
    no_csrf = owner.post(PAGE + "/connect", data={"provider": "twilio", "number": DOWNTOWN})
    assert no_csrf.status_code == 403
    for sid in (downtown, stranger):
        assert service.twilio.number(sid)["voice_url"] == DEMO_VOICE  # type: ignore[index]
    assert not [r for r in service.twilio.requests if r.operation == "update_number"]


def test_a_loopback_url_needs_confirming_and_staff_are_refused(service: Service) -> None:
    downtown = service.twilio.add_number(DOWNTOWN)
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    owner = sign_in(service, "owner@glow.example")
    assert "a loopback address" in text(owner.get(PAGE))
    refused = post(owner, PAGE + "/connect", {"provider": "twilio", "number": DOWNTOWN})
    assert refused.status_code == 409
    assert service.twilio.number(downtown)["voice_url"] == DEMO_VOICE  # type: ignore[index]
    forced = post(
        owner, PAGE + "/connect", {"provider": "twilio", "number": DOWNTOWN, "allow_insecure": "1"}
    )
    assert "changed and verified" in text(forced)
    assert service.twilio.number(downtown)["voice_url"] == f"{service.public_url}/twilio/voice"  # type: ignore[index]

    desk = sign_in(service, "desk@glow.example")
    assert desk.get(PAGE).status_code == 403
    csrf = page_csrf(desk, "/staff")
    assert (
        desk.post(
            PAGE + "/connect", data={"csrf_token": csrf, "provider": "twilio", "number": DOWNTOWN}
        ).status_code
        == 403
    )
    # SignalWire is not configured here: the page says which settings are missing.
    missing = owner.get(PAGE, params={"provider": "signalwire"})
    assert missing.status_code == 200
    assert "SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE_URL" in text(missing)


def test_signalwire_numbers_connect_the_same_way(make_service: Callable[..., Service]) -> None:
    def westside_on_signalwire(config: dict[str, Any]) -> None:
        config["locations"][1]["provider"] = "signalwire"

    service = make_service(public_url=PUBLIC, signalwire=True, edit=westside_on_signalwire)
    assert service.signalwire is not None
    sid = service.signalwire.add_number(WESTSIDE)
    service.signalwire.add_number(DOWNTOWN)
    add_user(service, "owner@glow.example")
    owner = session_for(service, "owner@glow.example")
    listed = owner.get(PAGE, params={"provider": "signalwire"})
    assert f'name="number" value="{WESTSIDE}"' in listed.text
    assert f'name="number" value="{DOWNTOWN}"' not in listed.text  # a Twilio location's
    applied = post(owner, PAGE + "/connect", {"provider": "signalwire", "number": WESTSIDE})
    assert "changed and verified" in text(applied)
    number = service.signalwire.number(sid)
    assert number is not None
    assert number["voice_url"] == f"{PUBLIC}/signalwire/voice"
    assert number["sms_url"] == f"{PUBLIC}/signalwire/sms"
