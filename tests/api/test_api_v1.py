"""The JSON API over HTTP: conversations driven through signed Twilio webhooks, read back
with API tokens for an owner and for staff limited to one location."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select

from ringback.api.v1 import ConversationDetail, ConversationSummary, LocationOut
from ringback.app import create_app
from ringback.db import transaction
from ringback.models import Conversation, Message, Note, Patient
from ringback.staff import auth
from tests.conftest import Service, wait_for
from tests.staff.conftest import sign_in
from tests.support.api import Token, make_token
from tests.support.phone import FORWARDED_TO, miss, text_in, texts_to
from tests.twilio_payloads import caller_number, new_call_sid, payload

STAFF_PHONE = "+13105550102"  # glow-downtown's staff alert number
API_PATHS = {
    "/api/v1/me",
    "/api/v1/locations",
    "/api/v1/conversations",
    "/api/v1/conversations/{conversation_id}",
    "/api/v1/patients/{patient_id}",
    "/api/v1/patients/{patient_id}/record",
    "/api/v1/missed-calls",
    "/api/v1/funnel",
    "/api/v1/appointments/{appointment_id}/attendance",
    "/api/v1/appointments/{appointment_id}/cancel",
    "/api/v1/patients/{patient_id}/waitlist",
    "/api/v1/waitlist",
    "/api/v1/waitlist/{entry_id}",
}


def api(service: Service, token: Token | None, path: str, **params: Any) -> httpx.Response:
    return service.http.get(
        service.url + "/api/v1" + path,
        params=params,
        headers=token.headers if token else {},
    )


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def problem_at(response: httpx.Response, where: str, name: str) -> str:
    """The message of the 422 error about parameter ``name``; fails if there is none."""
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    messages = [e["msg"] for e in errors if e["loc"] == [where, name]]
    assert messages, f"no error naming {where} {name!r} in {errors}"
    return str(messages[0])


def conversation_of(service: Service, caller: str) -> int:
    return int(
        service.scalar(
            select(Conversation.id)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
        )
    )


def texts_recorded(service: Service, caller: str, count: int) -> list[Message]:
    """Wait until ``count`` outbound texts to ``caller`` were accepted by (fake) Twilio."""

    def recorded() -> list[Message] | None:
        rows = service.rows(
            select(Message)
            .where(
                Message.to_number == caller,
                Message.direction == "outbound",
                Message.provider_sid.is_not(None),
            )
            .order_by(Message.id)
        )
        return rows if len(rows) >= count else None

    return list(wait_for(recorded, what=f"{count} texts to {caller} recorded"))


def receipt(service: Service, message: Message, status: str, error_code: str = "") -> None:
    extra = {"ErrorCode": error_code} if error_code else {}
    response = service.post(
        "/twilio/sms/status",
        payload(
            "sms_status_delivered",
            MessageSid=str(message.provider_sid),
            MessageStatus=status,
            From=message.from_number,
            To=message.to_number,
            **extra,
        ),
    )
    assert response.status_code == 204, response.text
    wait_for(
        lambda: service.scalar(select(Message.status).where(Message.id == message.id)) == status,
        what=f"message {message.id} {status}",
    )


def miss_westside(service: Service, caller: str) -> None:
    """A call to the forwarded-only location: greeted, hung up, texted back."""
    response = service.post(
        "/twilio/voice",
        payload("voice_incoming", CallSid=new_call_sid(), From=caller, To=FORWARDED_TO),
    )
    assert response.status_code == 200, response.text


@dataclass(frozen=True)
class Scene:
    service: Service
    owner: Token
    staff: Token  # glow-downtown only
    handoff: int  # downtown, asked for a person: needs_staff
    handoff_caller: str
    active: int  # downtown, still qualifying
    active_caller: str
    westside: int
    westside_caller: str


@pytest.fixture
def scene(service: Service) -> Scene:
    owner = make_token(service, "owner@glow.example")
    staff = make_token(service, "front@glow.example", role="staff", locations=["glow-downtown"])
    handoff, active, westside = caller_number(9001), caller_number(9002), caller_number(9003)

    miss(service, handoff)
    miss(service, active)
    miss_westside(service, westside)
    for caller in (handoff, active, westside):
        texts_recorded(service, caller, 1)

    text_in(service, handoff, "botox. can someone call me though?")
    text_in(service, active, "hydrafacial thurs after 5")
    wait_for(lambda: texts_to(service, STAFF_PHONE), what="the staff alert")
    textback, _reply = texts_recorded(service, handoff, 2)
    _textback, question = texts_recorded(service, active, 2)
    receipt(service, textback, "delivered")
    receipt(service, question, "undelivered", "30003")
    wait_for(
        lambda: (
            service.scalar(
                select(Conversation.status).where(
                    Conversation.id == conversation_of(service, handoff)
                )
            )
            == "needs_staff"
        ),
        what="the handoff",
    )
    handed_off_id = conversation_of(service, handoff)  # before: SQLite allows one writer
    with transaction(service.runtime.deps.sessions) as session:
        author = auth.find_user(session, "owner@glow.example")
        handed_off = session.get(Conversation, handed_off_id)
        assert author is not None
        assert handed_off is not None
        session.add(
            Note(
                conversation_id=handed_off.id,
                patient_id=handed_off.patient_id,
                author_id=author.id,
                body="Called back, left a voicemail.",
                created_at=datetime.now(UTC),
            )
        )
    return Scene(
        service=service,
        owner=owner,
        staff=staff,
        handoff=conversation_of(service, handoff),
        handoff_caller=handoff,
        active=conversation_of(service, active),
        active_caller=active,
        westside=conversation_of(service, westside),
        westside_caller=westside,
    )


def ids(page: dict[str, Any]) -> list[int]:
    return [item["id"] for item in page["items"]]


def utc(text: str) -> datetime:
    assert text.endswith("+00:00"), f"expected UTC with an offset, got {text!r}"
    return datetime.fromisoformat(text)


# --- security ------------------------------------------------------------------------------


def test_every_api_route_answers_401_without_valid_credentials(service: Service) -> None:
    revoked = make_token(service, "owner@glow.example")
    with transaction(service.runtime.deps.sessions) as session:
        assert auth.revoke_api_token(session, revoked.id, datetime.now(UTC))
    # Included routers nest in app.routes; iter_route_contexts flattens them with prefixes.
    routes = [
        (route.path, route.methods or set())
        for route in iter_route_contexts(create_app(service.runtime, run_worker=False).routes)
        if route.path is not None and route.path.startswith("/api/v1")
    ]
    assert {path for path, _ in routes} >= API_PATHS  # the walk is not vacuous
    for route_path, methods in routes:
        path = re.sub(r"\{[^}]+\}", "1", route_path)
        for method in sorted(methods):
            for headers in (
                {},
                {"Authorization": "Bearer rb_not-a-token"},
                {"Authorization": "Basic b3duZXI6cGFzc3dvcmQ="},
                revoked.headers,
            ):
                response = service.http.request(method, service.url + path, headers=headers)
                assert response.status_code == 401, (method, route_path, headers, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
                assert response.json()["detail"].startswith("Authorization:")


def test_openapi_documents_every_endpoint_with_the_bearer_scheme(service: Service) -> None:
    spec = ok(service.http.get(service.url + "/openapi.json"))
    paths = {path for path in spec["paths"] if path.startswith("/api/v1")}
    assert paths == API_PATHS
    scheme = spec["components"]["securitySchemes"]["apiToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert "ringback tokens create" in scheme["description"]
    for path in paths:
        for method, operation in spec["paths"][path].items():
            assert operation["security"] == [{"apiToken": []}], (method, path)
            assert "401" in operation["responses"], (method, path)
            if "{" in path:
                assert "404" in operation["responses"], (method, path)
    schemas = spec["components"]["schemas"]
    detail = schemas["ConversationDetail"]["properties"]
    assert {"messages", "calls", "notes", "captured", "patient", "updated_at"} <= set(detail)
    assert detail["updated_at"]["format"] == "date-time"
    assert schemas["ConversationDetail"]["examples"][0]["messages"]
    # The documented examples are valid responses. (FastAPI drops null members from the
    # served document, so check the models' own schema, which keeps them.)
    for model in (ConversationSummary, ConversationDetail, LocationOut):
        model.model_validate(model.model_json_schema(mode="serialization")["examples"][0])
    params = {p["name"]: p for p in spec["paths"]["/api/v1/conversations"]["get"]["parameters"]}
    assert set(params) == {"status", "location", "updated_since", "limit", "cursor"}
    assert params["limit"]["schema"]["maximum"] == 200


# --- reading -------------------------------------------------------------------------------


def test_locations_are_the_ones_the_caller_can_see(service: Service) -> None:
    owner = make_token(service, "owner@glow.example")
    staff = make_token(service, "front@glow.example", role="staff", locations=["glow-downtown"])
    assert ok(api(service, owner, "/locations")) == [
        {
            "id": "glow-downtown",
            "name": "Glow Med Spa",
            "phone_number": "+13105550100",
            "timezone": "America/Los_Angeles",
        },
        {
            "id": "glow-westside",
            "name": "Glow Med Spa Westside",
            "phone_number": "+13105550200",
            "timezone": "America/Los_Angeles",
        },
    ]
    assert [loc["id"] for loc in ok(api(service, staff, "/locations"))] == ["glow-downtown"]


def test_list_filters_by_status_location_and_change_time(scene: Scene) -> None:
    service, owner, staff = scene.service, scene.owner, scene.staff
    everything = ok(api(service, owner, "/conversations"))
    assert sorted(ids(everything)) == sorted([scene.handoff, scene.active, scene.westside])
    assert everything["next_cursor"] is None
    # Oldest change first, ties broken by id.
    order = [(utc(i["updated_at"]), i["id"]) for i in everything["items"]]
    assert order == sorted(order)

    assert ids(ok(api(service, owner, "/conversations", status="needs_staff"))) == [scene.handoff]
    assert sorted(ids(ok(api(service, owner, "/conversations", status="active")))) == sorted(
        [scene.active, scene.westside]
    )
    both = ok(api(service, owner, "/conversations", status="active", location="glow-downtown"))
    assert ids(both) == [scene.active]
    assert ids(ok(api(service, owner, "/conversations", status="closed"))) == []
    assert ids(ok(api(service, owner, "/conversations", location="glow-westside"))) == [
        scene.westside
    ]

    # Staff limited to downtown never see westside, filtered or not.
    assert sorted(ids(ok(api(service, staff, "/conversations")))) == sorted(
        [scene.handoff, scene.active]
    )
    assert ids(ok(api(service, staff, "/conversations", location="glow-downtown"))) != []

    # updated_since is inclusive and takes any offset.
    middle = everything["items"][1]
    since = utc(middle["updated_at"])
    expected = [i["id"] for i in everything["items"] if utc(i["updated_at"]) >= since]
    assert ids(ok(api(service, owner, "/conversations", updated_since=middle["updated_at"]))) == (
        expected
    )
    in_new_york = since.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert ids(ok(api(service, owner, "/conversations", updated_since=in_new_york))) == expected
    later = (since + timedelta(days=1)).isoformat()
    assert ids(ok(api(service, owner, "/conversations", updated_since=later))) == []
    # Typed straight into a shell, the "+" of the offset arrives as a space; still understood.
    raw = service.http.get(
        service.url + "/api/v1/conversations?updated_since=" + later, headers=owner.headers
    )
    assert ids(ok(raw)) == []


def test_summary_carries_what_the_inbox_shows(scene: Scene) -> None:
    service = scene.service
    items = {i["id"]: i for i in ok(api(service, scene.owner, "/conversations"))["items"]}
    handoff, active = items[scene.handoff], items[scene.active]
    assert handoff["status"] == "needs_staff"
    assert handoff["handoff_reason"] == "asked_for_person"
    assert handoff["treatment"] == "Botox"
    assert handoff["is_open"] is True
    assert handoff["urgent"] is False
    assert handoff["close_reason"] is None
    assert handoff["location_id"] == "glow-downtown"
    patient = handoff["patient"]
    assert patient["phone"] == scene.handoff_caller
    assert patient["opted_out"] is False
    assert set(patient) == {"id", "phone", "first_name", "status", "opted_out"}
    for key in ("opened_at", "updated_at", "last_inbound_at", "last_outbound_at"):
        utc(handoff[key])

    # "thurs after 5" in Los Angeles, given back in UTC.
    assert active["captured"] == {
        "treatments": ["HydraFacial"],
        "times": [{"start": "2026-11-27T01:00:00+00:00", "end": "2026-11-27T04:00:00+00:00"}],
        "timing": None,
        "patient": None,
    }
    assert items[scene.westside]["location_id"] == "glow-westside"


def test_pages_follow_the_cursor_without_gaps_or_repeats(service: Service) -> None:
    owner = make_token(service, "owner@glow.example")
    callers = [caller_number(9100 + n) for n in range(5)]
    for caller in callers:
        miss(service, caller)
    for caller in callers:
        texts_recorded(service, caller, 1)
    expected = sorted(conversation_of(service, caller) for caller in callers)

    seen: list[int] = []
    pages = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "location": "glow-downtown"}
        if cursor:
            params["cursor"] = cursor
        page = ok(api(service, owner, "/conversations", **params))
        pages.append(len(page["items"]))
        seen += ids(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [2, 2, 1]
    assert sorted(seen) == expected
    assert len(seen) == len(set(seen))
    # The same cursor gives the same page: it is a position, not a session.
    first = ok(api(service, owner, "/conversations", limit=2))
    again = ok(api(service, owner, "/conversations", limit=2, cursor=first["next_cursor"]))
    assert ids(again) == seen[2:4]
    assert ok(api(service, owner, "/conversations", limit=200))["next_cursor"] is None


def test_detail_has_the_thread_in_order_with_calls_and_notes(scene: Scene) -> None:
    service = scene.service
    detail = ok(api(service, scene.staff, f"/conversations/{scene.handoff}"))
    assert detail["id"] == scene.handoff
    assert detail["status"] == "needs_staff"
    messages = detail["messages"]
    assert [(m["direction"], m["kind"]) for m in messages] == [
        ("outbound", "textback"),
        ("inbound", "inbound"),
        ("outbound", "reply"),
    ]
    assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)
    created = [utc(m["created_at"]) for m in messages]
    assert created == sorted(created)
    textback, inbound, reply = messages
    assert textback["body"].startswith("Hi, this is Glow Med Spa")
    assert (textback["status"], textback["error_code"]) == ("delivered", None)
    utc(textback["sent_at"])
    assert (inbound["body"], inbound["status"]) == (
        "botox. can someone call me though?",
        "received",
    )
    assert "Someone from our team" in reply["body"]
    assert reply["status"] == "queued"
    # The alert to the staff phone is not part of the patient's thread.
    assert all(m["kind"] != "alert" for m in messages)

    [call] = detail["calls"]
    assert call["call_sid"].startswith("CA")
    assert (call["miss_reason"], call["after_hours"], call["screening"]) == (
        "no_answer",
        False,
        "texted",
    )
    utc(call["started_at"])
    [note] = detail["notes"]
    assert (note["body"], note["author_email"], note["conversation_id"]) == (
        "Called back, left a voicemail.",
        "owner@glow.example",
        scene.handoff,
    )
    utc(note["created_at"])

    active = ok(api(service, scene.owner, f"/conversations/{scene.active}"))
    question = active["messages"][-1]
    assert (question["status"], question["error_code"]) == ("undelivered", 30003)
    assert active["notes"] == []


def test_staff_cannot_see_another_location_and_cannot_tell_it_exists(scene: Scene) -> None:
    service, staff = scene.service, scene.staff
    hidden = api(service, staff, f"/conversations/{scene.westside}")
    missing = api(service, staff, "/conversations/987654")
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json() == {"detail": f"conversation {scene.westside}: not found"}
    assert missing.json() == {"detail": "conversation 987654: not found"}
    assert scene.westside not in ids(ok(api(service, staff, "/conversations", limit=200)))
    # Asking for the location by name is refused the same way as a location that isn't there.
    assert problem_at(
        api(service, staff, "/conversations", location="glow-westside"), "query", "location"
    ) == problem_at(
        api(service, staff, "/conversations", location="glow-nowhere"), "query", "location"
    ).replace("glow-nowhere", "glow-westside")

    westside_patient = ok(api(service, scene.owner, f"/conversations/{scene.westside}"))["patient"]
    hidden_patient = api(service, staff, f"/patients/{westside_patient['id']}")
    assert hidden_patient.status_code == 404
    assert hidden_patient.json() == {"detail": f"patient {westside_patient['id']}: not found"}
    assert ok(api(service, scene.owner, f"/patients/{westside_patient['id']}"))["phone"] == (
        scene.westside_caller
    )


def test_patient_record_has_consent_and_conversations(scene: Scene) -> None:
    service = scene.service
    summary = ok(api(service, scene.owner, f"/conversations/{scene.active}"))["patient"]
    record = ok(api(service, scene.staff, f"/patients/{summary['id']}"))
    assert record == {
        "id": summary["id"],
        "location_id": "glow-downtown",
        "phone": scene.active_caller,
        "first_name": None,
        "last_name": None,
        "status": None,
        "consent": {"opted_out_at": None, "opt_out_source": None},
        "conversation_ids": [scene.active],
    }
    text_in(service, scene.active_caller, "STOP")
    wait_for(
        lambda: service.scalar(
            select(Patient.opted_out_at).where(Patient.phone == scene.active_caller)
        ),
        what="the opt-out",
    )
    consent = ok(api(service, scene.staff, f"/patients/{summary['id']}"))["consent"]
    assert consent["opt_out_source"] == "keyword"
    utc(consent["opted_out_at"])
    after = ok(api(service, scene.staff, f"/conversations/{scene.active}"))
    assert after["patient"]["opted_out"] is True
    assert api(service, scene.staff, "/patients/987654").json() == {
        "detail": "patient 987654: not found"
    }


def test_a_signed_in_session_reads_the_api_too(scene: Scene) -> None:
    browser = sign_in(scene.service, "front@glow.example")
    page = ok(browser.get("/api/v1/conversations"))
    assert sorted(ids(page)) == sorted([scene.handoff, scene.active])


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "name", "says"),
    [
        ({"limit": "0"}, "limit", "greater than or equal to 1"),
        ({"limit": "201"}, "limit", "less than or equal to 200"),
        ({"limit": "ten"}, "limit", "integer"),
        ({"status": "open"}, "status", "needs_staff"),
        ({"updated_since": "yesterday"}, "updated_since", "datetime"),
        ({"updated_since": "2026-11-24T10:00:00"}, "updated_since", "timezone"),
        # A cursor this API did not hand out is a 400: tests/edges/test_ids_and_cursors.py
        ({"location": "glow-nowhere"}, "location", "location: no location"),
    ],
)
def test_bad_query_parameters_are_422s_naming_the_parameter(
    service: Service, params: dict[str, str], name: str, says: str
) -> None:
    owner = make_token(service, "owner@glow.example")
    message = problem_at(api(service, owner, "/conversations", **params), "query", name)
    assert says in message


@pytest.mark.parametrize("bad", ["abc", "0", "99999999999999999999"])
def test_bad_ids_are_422s_naming_the_path_parameter(service: Service, bad: str) -> None:
    owner = make_token(service, "owner@glow.example")
    problem_at(api(service, owner, f"/conversations/{bad}"), "path", "conversation_id")
    problem_at(api(service, owner, f"/patients/{bad}"), "path", "patient_id")
