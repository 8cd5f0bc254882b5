"""``POST /api/v1/missed-calls`` over HTTP: any phone system's missed call gets the same
screening and text-back as Twilio's, once per event id, and only with a token that may see
the location."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ringback.db import transaction
from ringback.models import Call, Message, ProviderEvent
from ringback.staff import auth
from tests.conftest import Service, settle, wait_for
from tests.staff.conftest import add_user
from tests.support.phone import texts_to
from tests.twilio_payloads import caller_number

DOWNTOWN = "+13105550100"
WESTSIDE = "+13105550200"


def token_for(
    service: Service, email: str, role: str = "owner", locations: list[str] | None = None
) -> str:
    add_user(service, email, role=role, locations=locations)
    with transaction(service.runtime.deps.sessions) as session:
        user = auth.find_user(session, email)
        assert user is not None
        return auth.create_api_token(session, user, "phone system", datetime.now(UTC)).token


@pytest.fixture
def owner_token(service: Service) -> str:
    return token_for(service, "owner@glow.example")


def report(service: Service, token: str | None, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return service.http.post(f"{service.url}/api/v1/missed-calls", json=body, headers=headers)


def a_miss(caller: str, event_id: str = "rc-1", **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "location_id": "glow-downtown", "from": caller, **extra}


def problem_fields(response: httpx.Response) -> list[str]:
    return [str(error["loc"][-1]) for error in response.json()["detail"]]


def test_a_reported_miss_is_texted_back_once_however_often_it_is_sent(
    service: Service, owner_token: str
) -> None:
    caller = caller_number(950)
    body = a_miss(caller, "dialpad-5551", reason="staff_busy")
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda _: report(service, owner_token, body), range(5)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 200, 202]
    accepted = next(a for a in answers if a.status_code == 202).json()
    assert accepted == {
        "event_id": "dialpad-5551",
        "location_id": "glow-downtown",
        "status": "accepted",
        "call_id": None,
        "screening": None,
    }
    text = wait_for(lambda: texts_to(service, caller), what="the text-back")[0]
    assert text.from_ == DOWNTOWN
    assert text.body.startswith("Hi, this is Glow Med Spa - sorry we missed your call!")
    call = service.scalar(select(Call))
    assert (call.provider, call.call_sid, call.mode) == (
        "api",
        "glow-downtown:dialpad-5551",
        "reported",
    )
    assert (call.outcome, call.miss_reason, call.screening) == ("missed", "staff_busy", "texted")
    message = service.scalar(select(Message).where(Message.kind == "textback"))
    assert message.call_id == call.id
    assert message.conversation_id == call.conversation_id

    again = report(service, owner_token, body)
    assert again.status_code == 200
    assert again.json() == {
        "event_id": "dialpad-5551",
        "location_id": "glow-downtown",
        "status": "duplicate",
        "call_id": call.id,
        "screening": "texted",
    }
    settle()
    assert len(texts_to(service, caller)) == 1
    assert service.scalar(select(func.count()).select_from(ProviderEvent)) == 1
    assert service.scalar(select(func.count()).select_from(Call)) == 1


def test_the_number_called_picks_the_location(service: Service, owner_token: str) -> None:
    caller = caller_number(951)
    occurred = service.clock() - timedelta(minutes=3)
    answer = report(
        service,
        owner_token,
        {
            "event_id": "3cx-77",
            "to": "(310) 555-0200",
            "from": "213-555-0951",
            "occurred_at": occurred.isoformat(),
        },
    )
    assert answer.status_code == 202, answer.text
    assert answer.json()["location_id"] == "glow-westside"
    text = wait_for(lambda: texts_to(service, caller), what="the text-back")[0]
    assert text.from_ == WESTSIDE
    call = service.scalar(select(Call))
    assert call.location_id == "glow-westside"
    assert call.from_number == caller
    assert call.missed_at == occurred
    # The same id at another location is another call.
    other = report(service, owner_token, a_miss(caller_number(952), "3cx-77"))
    assert other.status_code == 202


def test_an_anonymous_caller_is_screened_like_a_twilio_one(
    service: Service, owner_token: str
) -> None:
    answer = report(service, owner_token, a_miss("anonymous", "rc-anon"))
    assert answer.status_code == 202, answer.text
    call = wait_for(
        lambda: service.scalar(select(Call).where(Call.screening.is_not(None))), what="screened"
    )
    assert (call.from_raw, call.from_number, call.screening) == ("anonymous", None, "anonymous")
    assert call.conversation_id is None
    settle()
    assert service.twilio.messages == []
    assert report(service, owner_token, a_miss("anonymous", "rc-anon")).json()["screening"] == (
        "anonymous"
    )


def test_without_a_token_nothing_is_stored(service: Service) -> None:
    body = a_miss(caller_number(953))
    assert report(service, None, body).status_code == 401
    assert report(service, "rb_not_a_token", body).status_code == 401
    settle()
    assert service.scalar(select(func.count()).select_from(ProviderEvent)) == 0
    assert service.twilio.messages == []


def test_a_location_the_token_cannot_see_is_not_found(service: Service) -> None:
    token = token_for(service, "west@glow.example", role="staff", locations=["glow-westside"])
    caller = caller_number(954)
    hidden = report(service, token, a_miss(caller))
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == "location_id: no location 'glow-downtown' that you can see"
    unknown = report(service, token, {**a_miss(caller), "location_id": "nowhere"})
    assert unknown.status_code == 404
    by_number = report(service, token, {"event_id": "x1", "to": DOWNTOWN, "from": caller})
    assert by_number.status_code == 404
    assert by_number.json()["detail"].startswith("to: ")
    own = report(service, token, {**a_miss(caller), "location_id": "glow-westside"})
    assert own.status_code == 202
    wait_for(lambda: texts_to(service, caller), what="the text-back at their own location")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"event_id": None}, "event_id"),
        ({"event_id": ""}, "event_id"),
        ({"event_id": "has space"}, "event_id"),
        ({"event_id": "x" * 57}, "event_id"),
        ({"from": None}, "from"),
        ({"from": "12"}, "from"),
        ({"from": "not a number"}, "from"),
        ({"location_id": None}, "location_id"),
        ({"to": "+13105550200"}, "to"),
        ({"to": "call me"}, "to"),
        ({"occurred_at": "2026-11-24T10:00:00"}, "occurred_at"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"occurred_at": "2026-11-26T18:00:00Z"}, "occurred_at"),
        ({"occurred_at": "2026-11-20T18:00:00Z"}, "occurred_at"),
        ({"reason": "voicemail"}, "reason"),
        ({"caller": "+12135550100"}, "caller"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    service: Service, owner_token: str, change: dict[str, Any], field: str
) -> None:
    body = {**a_miss(caller_number(955)), **change}
    body = {k: v for k, v in body.items() if v is not None}
    answer = report(service, owner_token, body)
    assert answer.status_code == 422, answer.text
    assert field in problem_fields(answer)
    assert service.scalar(select(func.count()).select_from(ProviderEvent)) == 0


def test_an_event_id_reused_for_another_caller_is_a_conflict(
    service: Service, owner_token: str
) -> None:
    assert report(service, owner_token, a_miss(caller_number(956), "r-9")).status_code == 202
    clash = report(service, owner_token, a_miss(caller_number(957), "r-9"))
    assert clash.status_code == 409
    assert clash.json()["detail"].startswith("event_id: 'r-9' was already reported")
    wait_for(lambda: texts_to(service, caller_number(956)), what="the first one's text-back")
    settle()
    assert texts_to(service, caller_number(957)) == []
