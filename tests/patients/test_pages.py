"""The patient record in the staff app and the JSON API, over HTTP: who may see it, search,
CSV export, and deletion (owners only, CSRF, confirmed)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from sqlalchemy import func, select

from ringback.models import (
    Appointment,
    Call,
    Conversation,
    Message,
    Note,
    Patient,
    SuppressedNumber,
)
from tests.conftest import Service
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

DOWNTOWN, WESTSIDE = "glow-downtown", "glow-westside"


def seed(service: Service) -> tuple[int, int]:
    """A downtown patient with a conversation, an opt-out and an appointment; and a
    westside patient. Returns their ids."""
    caller = caller_number(501)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox")
    next_text(service, caller, 2)
    now = service.clock()
    with service.db() as session:
        ana = session.scalars(select(Patient).where(Patient.phone == caller)).one()
        ana.first_name, ana.last_name = "Ana", "Lopez"
        ana.opted_out_at, ana.opt_out_source = now, "keyword"
        conversation = session.scalars(select(Conversation)).one()
        session.add(
            Note(patient_id=ana.id, conversation_id=conversation.id, body="Prefers mornings")
        )
        session.add(
            Appointment(
                location_id=DOWNTOWN,
                patient_id=ana.id,
                service="Botox",
                provider_name="Dr. Lee",
                starts_at=datetime(2026, 11, 26, 22, 30, tzinfo=UTC),
                ends_at=datetime(2026, 11, 26, 23, 0, tzinfo=UTC),
            )
        )
        west = Patient(
            location_id=WESTSIDE, phone=caller_number(502), first_name="Wes", created_at=now
        )
        session.add(west)
        session.commit()
        return ana.id, west.id


def test_the_record_page_shows_everything_about_the_patient(service: Service) -> None:
    ana, _ = seed(service)
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    page = client.get(f"/staff/patients/{ana}")
    assert page.status_code == 200
    text = page.text
    assert "<h1>Ana Lopez</h1>" in text
    assert "(213) 555-0501" in text
    assert "Opted out" in text
    assert "replied STOP" in text
    assert "Not allowed" in text
    conversation_id = service.scalar(select(Conversation.id))
    assert f'href="/staff/conversations/{conversation_id}"' in text
    assert "Missed: Nobody answered" in text
    assert "Thu Nov 26, 2:30 PM" in text  # the appointment, in Los Angeles time
    assert "Botox with Dr. Lee" in text
    assert "Prefers mornings" in text
    assert "Delete this patient's data" in text


def test_staff_see_only_their_locations(service: Service) -> None:
    ana, west = seed(service)
    add_user(service, "desk@glow.example", role="staff", locations=[WESTSIDE])
    client = sign_in(service, "desk@glow.example")
    assert client.get(f"/staff/patients/{ana}").status_code == 404
    assert client.get(f"/staff/patients/{999999}").status_code == 404
    own = client.get(f"/staff/patients/{west}")
    assert own.status_code == 200
    assert "Delete this patient" not in own.text  # owners only
    found = client.get("/staff/patients", params={"q": "555"})
    assert f"/staff/patients/{west}" in found.text
    assert f"/staff/patients/{ana}" not in found.text
    assert client.get("/staff/patients", params={"location": DOWNTOWN}).status_code == 404
    exported = client.get("/staff/patients/export.csv")
    assert [row["first_name"] for row in csv.DictReader(io.StringIO(exported.text))] == ["Wes"]
    assert (
        client.get("/staff/patients/export.csv", params={"location": DOWNTOWN}).status_code == 404
    )
    assert client.get(f"/api/v1/patients/{ana}/record").status_code == 404
    assert client.get(f"/api/v1/patients/{west}/record").status_code == 200


def test_search_by_number_in_any_format_or_by_name(service: Service) -> None:
    ana, west = seed(service)
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    for query in ("(213) 555-0501", "2135550501", "+1 213 555 0501", "ana", "LOPEZ", "ana lop"):
        page = client.get("/staff/patients", params={"q": query})
        assert f"/staff/patients/{ana}" in page.text, query
        assert f"/staff/patients/{west}" not in page.text, query
    nobody = client.get("/staff/patients", params={"q": "%"})
    assert "No patient matches" in nobody.text
    assert client.get("/staff/patients").status_code == 200  # recently updated
    assert client.get("/staff/patients", follow_redirects=False).status_code == 200


def test_export_csv_for_a_location(service: Service) -> None:
    ana, _ = seed(service)
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    response = client.get("/staff/patients/export.csv", params={"location": DOWNTOWN})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["id"], r["phone"], r["opt_out_source"]) for r in rows] == [
        (str(ana), caller_number(501), "keyword")
    ]


def test_deleting_needs_an_owner_the_csrf_token_and_the_confirmation(service: Service) -> None:
    ana, west = seed(service)
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=[WESTSIDE])
    owner = sign_in(service, "owner@glow.example")
    desk = sign_in(service, "desk@glow.example")
    path = f"/staff/patients/{ana}/delete"

    assert owner.post(path, data={"confirm": "DELETE"}).status_code == 403  # no CSRF token
    token = page_csrf(owner, f"/staff/patients/{ana}")
    assert owner.post(path, data={"confirm": "DELETE", "csrf_token": "x"}).status_code == 403
    unconfirmed = owner.post(path, data={"csrf_token": token, "confirm": "yes"})
    assert unconfirmed.status_code == 400
    assert (
        "confirm: type DELETE to delete this patient&#39;s data, got &#39;yes&#39;"
        in unconfirmed.text
    )
    desk_token = page_csrf(desk, f"/staff/patients/{west}")
    not_theirs = desk.post(path, data={"csrf_token": desk_token, "confirm": "DELETE"})
    assert not_theirs.status_code == 404
    not_owner = desk.post(
        f"/staff/patients/{west}/delete", data={"csrf_token": desk_token, "confirm": "DELETE"}
    )
    assert not_owner.status_code == 403
    assert service.scalar(select(Patient.deleted_at).where(Patient.id == ana)) is None

    done = owner.post(path, data={"csrf_token": token, "confirm": "delete"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/patients?deleted={ana}"
    assert "personal data was deleted" in owner.get(done.headers["location"]).text
    assert owner.get(f"/staff/patients/{ana}").status_code == 404
    assert owner.post(path, data={"csrf_token": token, "confirm": "DELETE"}).status_code == 404
    assert service.scalar(select(Patient.phone).where(Patient.id == ana)) == f"deleted:{ana}"
    assert {m.body for m in service.rows(select(Message).where(Message.patient_id == ana))} == {
        "[deleted]"
    }
    exported = owner.get("/staff/patients/export.csv").text
    assert caller_number(501) not in exported
    assert "Wes" in exported
    # Ana had opted out, so that was kept; Wes had not, and the owner asks to keep it too.
    assert service.scalar(select(func.count()).select_from(SuppressedNumber)) == 1
    wes = owner.post(
        f"/staff/patients/{west}/delete",
        data={"csrf_token": token, "confirm": "DELETE", "stop_texts": "1"},
    )
    assert wes.status_code == 303
    assert service.scalar(select(func.count()).select_from(SuppressedNumber)) == 2


def test_the_json_record(service: Service) -> None:
    ana, _ = seed(service)
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    response = client.get(f"/api/v1/patients/{ana}/record")
    assert response.status_code == 200
    record = response.json()
    assert (record["phone"], record["first_name"], record["last_name"]) == (
        caller_number(501),
        "Ana",
        "Lopez",
    )
    assert record["consent"]["textable"] is False
    assert record["consent"]["not_textable_reason"] == "opted_out"
    assert record["consent"]["opt_out_source"] == "keyword"
    assert record["consent"]["opted_out_at"].endswith("+00:00")
    call_sid = service.scalar(select(Call.call_sid))
    assert [c["call_sid"] for c in record["calls"]] == [call_sid]
    assert record["calls"][0]["miss_reason"] == "no_answer"
    (conversation,) = record["conversations"]
    assert (conversation["treatment"], conversation["texts"]) == ("Botox", 3)
    assert record["appointments"][0]["starts_at"] == "2026-11-26T22:30:00+00:00"
    assert record["notes"][0]["body"] == "Prefers mornings"
    assert client.get("/api/v1/patients/0/record").status_code == 422
    anonymous = service.http.get(f"{service.url}/api/v1/patients/{ana}/record")
    assert anonymous.status_code == 401
    spec = service.http.get(f"{service.url}/openapi.json").json()
    operation = spec["paths"]["/api/v1/patients/{patient_id}/record"]["get"]
    assert operation["security"] == [{"apiToken": []}]
    assert {"200", "401", "404"} <= set(operation["responses"])
    assert "/staff/patients/{patient_id}" not in spec["paths"]


def _nonce(page_text: str) -> str:
    import re

    match = re.search(r'name="nonce" value="([^"]+)"', page_text)
    assert match, "no nonce on the patient page"
    return match.group(1)


def test_staff_start_a_text_from_the_patient_page(service: Service) -> None:
    now = service.clock()
    with service.db() as session:
        imported = Patient(
            location_id=DOWNTOWN,
            phone=caller_number(511),
            first_name="Rosa",
            created_at=now,
            updated_at=now,
        )
        session.add(imported)
        session.commit()
        patient_id = imported.id
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    page = client.get(f"/staff/patients/{patient_id}")
    assert "Text Rosa" in page.text
    form = {
        "csrf_token": page_csrf(client, f"/staff/patients/{patient_id}"),
        "nonce": _nonce(page.text),
    }

    empty = client.post(f"/staff/patients/{patient_id}/text", data={**form, "body": "  "})
    assert empty.status_code == 400
    assert "write between 1 and 1600 characters" in empty.text
    assert service.scalar(select(func.count()).select_from(Conversation)) == 0

    body = "Hi Rosa, it's Glow. Your filler touch-up is due; want to come in next week?"
    sent = client.post(f"/staff/patients/{patient_id}/text", data={**form, "body": body})
    assert sent.status_code == 303
    conversation = service.scalar(select(Conversation))
    assert sent.headers["location"] == f"/staff/conversations/{conversation.id}?done=reply"
    assert conversation.patient_id == patient_id
    assert conversation.is_open
    assert conversation.bot_paused
    assert conversation.assigned_user_id is not None
    assert next_text(service, caller_number(511), 1) == body
    # The same form again (a double tap): one text, one thread.
    again = client.post(f"/staff/patients/{patient_id}/text", data={**form, "body": body})
    assert again.status_code == 303
    assert service.scalar(select(func.count()).select_from(Conversation)) == 1
    assert service.scalar(select(func.count()).select_from(Message)) == 1
    # A second text with a fresh form lands in the same open thread.
    page = client.get(f"/staff/patients/{patient_id}")
    follow = client.post(
        f"/staff/patients/{patient_id}/text",
        data={"csrf_token": form["csrf_token"], "nonce": _nonce(page.text), "body": "Or Friday?"},
    )
    assert follow.status_code == 303
    assert service.scalar(select(func.count()).select_from(Conversation)) == 1
    assert next_text(service, caller_number(511), 2) == "Or Friday?"


def test_a_patient_who_opted_out_cannot_be_texted_from_the_record(service: Service) -> None:
    ana, west = seed(service)
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=[WESTSIDE])
    client = sign_in(service, "owner@glow.example")
    page = client.get(f"/staff/patients/{ana}")
    assert "Texting is off." in page.text
    assert 'id="text-form"' not in page.text
    messages = service.scalar(select(func.count()).select_from(Message))
    form = {"csrf_token": page_csrf(client, f"/staff/patients/{ana}"), "nonce": "n" * 24}
    refused = client.post(f"/staff/patients/{ana}/text", data={**form, "body": "Hello?"})
    assert refused.status_code == 409
    assert "opted out of texts" in refused.text
    assert service.scalar(select(func.count()).select_from(Message)) == messages
    # A patient at a location this person may not see is not found.
    desk = sign_in(service, "desk@glow.example")
    desk_form = {"csrf_token": page_csrf(desk, "/staff/patients"), "nonce": "m" * 24}
    hidden = desk.post(f"/staff/patients/{ana}/text", data={**desk_form, "body": "Hello?"})
    assert hidden.status_code == 404
    missing = client.post("/staff/patients/999999/text", data={**form, "body": "Hello?"})
    assert missing.status_code == 404
    no_csrf = client.post(f"/staff/patients/{west}/text", data={"nonce": "n" * 24, "body": "Hi"})
    assert no_csrf.status_code == 403
    assert service.scalar(select(func.count()).select_from(Message)) == messages
