"""Issue #12, the staff side, over HTTP: resolving an urgent or handed-off thread, mark
booked at the menu price, naming a patient, and new or returning as one fact.

Every refused form says which field was wrong and saves nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from ringback.db import transaction
from ringback.models import Appointment, Conversation, Note, Patient
from tests.conftest import Service, wait_for
from tests.staff.conftest import page_csrf
from tests.support.cli import ringback
from tests.support.phone import miss, next_text, text_in
from tests.support.staff import (
    act,
    conversation_of,
    handed_off,
    page,
    refused_field,
    reload,
    urgent,
    with_the_bot,
)
from tests.twilio_payloads import caller_number

StaffClient = Callable[..., httpx.Client]


def notes(service: Service, conversation_id: int) -> list[Note]:
    return service.rows(select(Note).where(Note.conversation_id == conversation_id))


# --- urgent: the card, and resolving ------------------------------------------------------


def test_urgent_card_shows_the_treatment_and_the_patients_own_words(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = urgent(service, 600, "my lip is swelling after filler yesterday")
    assert reload(service, conversation_id).treatment == "Filler"
    html = staff_client().get("/staff?queue=urgent").text
    card = html[html.index(f'id="conv-{conversation_id}"') :]
    card = card[: card.index("</li>")]
    assert "Filler" in card
    assert "Treatment not known yet" not in card
    assert "Patient:</span> my lip is swelling after filler yesterday" in card
    assert "911" not in card  # not the bot's safety text


def test_handed_off_card_shows_the_patients_last_text(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = handed_off(service, 601)
    html = staff_client().get("/staff?queue=needs_staff").text
    card = html[html.index(f'id="conv-{conversation_id}"') :]
    card = card[: card.index("</li>")]
    assert "Patient:</span> botox. can someone call me though?" in card


def test_resolve_an_urgent_thread_closes_it_as_resolved_with_who_and_when(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = urgent(service, 602)
    client = staff_client()
    html = page(client, conversation_id).text
    assert "Called back, resolved" in html
    response = act(client, conversation_id, "resolve", {"note": "Ice, seen tomorrow 9am"})
    assert response.status_code == 303
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.is_open, conversation.close_reason) == (
        "closed",
        False,
        "resolved",
    )
    assert conversation.closed_at is not None
    assert conversation.booked_value_cents is None
    assert conversation.lost_reason is None
    [note] = notes(service, conversation_id)
    assert note.body == "Called back, resolved. Ice, seen tomorrow 9am"
    assert note.author_id is not None
    shown = client.get(response.headers["location"]).text
    assert "Resolved: closed as called back" in shown
    assert "Called back, resolved. Ice, seen tomorrow 9am" in shown  # with who and when
    assert "Owner ·" in shown
    assert "(called back, resolved)" in shown  # the closed note names how it ended
    assert 'action="/staff/conversations/' + str(conversation_id) + '/resolve"' not in shown
    # Once closed, it cannot be resolved again.
    again = act(client, conversation_id, "resolve", {})
    assert again.status_code == 409
    assert refused_field(again) == "conversation"
    assert len(notes(service, conversation_id)) == 1


def test_resolve_a_handoff_without_a_note(service: Service, staff_client: StaffClient) -> None:
    _, conversation_id = handed_off(service, 603)
    client = staff_client()
    assert act(client, conversation_id, "resolve", {"note": "  "}).status_code == 303
    assert reload(service, conversation_id).close_reason == "resolved"
    assert [n.body for n in notes(service, conversation_id)] == ["Called back, resolved."]


def test_resolve_is_refused_for_a_thread_with_the_bot_and_for_a_long_note(
    service: Service, staff_client: StaffClient
) -> None:
    _, with_bot = with_the_bot(service, 604)
    _, waiting = handed_off(service, 605)
    client = staff_client()
    assert "Called back, resolved" not in page(client, with_bot).text
    refused = act(client, with_bot, "resolve", {})
    assert refused.status_code == 409
    assert "only urgent or handed-off conversations" in refused.text
    assert reload(service, with_bot).is_open

    too_long = act(client, waiting, "resolve", {"note": "x" * 1001})
    assert too_long.status_code == 400
    assert refused_field(too_long) == "note"
    assert "Note: write at most 1000 characters" in too_long.text
    assert reload(service, waiting).is_open
    assert notes(service, waiting) == []

    no_csrf = act(client, waiting, "resolve", {}, csrf=False)
    assert no_csrf.status_code == 403
    assert reload(service, waiting).is_open
    missing = act(client, 999_999, "resolve", {}, csrf=False)
    assert missing.status_code in (403, 404)


# --- mark booked at the menu price ----------------------------------------------------------


def test_mark_booked_left_empty_uses_the_treatments_price(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = handed_off(service, 610)
    client = staff_client()
    html = page(client, conversation_id).text
    assert 'value="480.00"' in html
    assert "left empty, that price is used" in html
    assert act(client, conversation_id, "booked", {"value": ""}).status_code == 303
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.booked_value_cents) == ("booked", 48000)


def test_mark_booked_left_empty_without_a_known_treatment_is_refused(
    service: Service, staff_client: StaffClient
) -> None:
    caller = caller_number(611)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "can someone call me?")
    next_text(service, caller, 2)
    conversation = wait_for(
        lambda: (c := conversation_of(service, caller)).status == "needs_staff" and c
    )
    assert conversation.treatment is None
    client = staff_client()
    response = act(client, conversation.id, "booked", {"value": " "})
    assert response.status_code == 400
    assert refused_field(response) == "value"
    assert "the treatment is not known" in response.text
    assert reload(service, conversation.id).status == "needs_staff"


# --- names ----------------------------------------------------------------------------------


def patient_of(service: Service, caller: str) -> Patient:
    patient: Patient = service.scalar(select(Patient).where(Patient.phone == caller))
    return patient


def test_name_a_patient_from_the_conversation(
    service: Service, staff_client: StaffClient, caplog: pytest.LogCaptureFixture
) -> None:
    caller, conversation_id = handed_off(service, 620)
    client = staff_client()
    response = act(
        client, conversation_id, "name", {"first_name": "  Maria ", "last_name": "de  la Cruz"}
    )
    assert response.status_code == 303
    patient = patient_of(service, caller)
    assert (patient.first_name, patient.last_name) == ("Maria", "de la Cruz")
    shown = client.get(response.headers["location"]).text
    assert "Name saved." in shown
    assert "<h1>Maria de la Cruz</h1>" in shown
    assert "Maria de la Cruz" in client.get("/staff?queue=needs_staff").text
    assert "Maria" not in caplog.text  # the audit log holds ids only
    # Emptying both fields clears the name: the number shows again.
    assert act(client, conversation_id, "name", {}).status_code == 303
    patient = patient_of(service, caller)
    assert (patient.first_name, patient.last_name) == (None, None)


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("x" * 81, "Cruz", "first_name"),
        ("Maria", "y" * 81, "last_name"),
        ("Ma\x00ria", "Cruz", "first_name"),
        ("Maria", "Cr\u200buz", "last_name"),
        ("Maria\tJo", "", "first_name"),
    ],
)
def test_bad_names_are_refused_and_nothing_is_saved(
    service: Service, staff_client: StaffClient, first: str, last: str, field: str
) -> None:
    caller, conversation_id = handed_off(service, 621)
    client = staff_client()
    response = act(client, conversation_id, "name", {"first_name": first, "last_name": last})
    assert response.status_code == 400
    assert refused_field(response) == field
    label = {"first_name": "First name", "last_name": "Last name"}[field]
    assert f"{label}: " in response.text
    patient = patient_of(service, caller)
    assert (patient.first_name, patient.last_name) == (None, None)

    on_record = client.post(
        f"/staff/patients/{patient.id}/name",
        data={
            "first_name": first,
            "last_name": last,
            "csrf_token": page_csrf(client, f"/staff/patients/{patient.id}"),
        },
    )
    assert on_record.status_code == 400
    assert f'data-field="{field}"' in on_record.text
    patient = patient_of(service, caller)
    assert (patient.first_name, patient.last_name) == (None, None)


def test_name_a_patient_from_the_patient_page(service: Service, staff_client: StaffClient) -> None:
    caller, _ = handed_off(service, 622)
    client = staff_client()
    patient = patient_of(service, caller)
    path = f"/staff/patients/{patient.id}"
    no_csrf = client.post(f"{path}/name", data={"first_name": "Ana"})
    assert no_csrf.status_code == 403
    assert patient_of(service, caller).first_name is None
    response = client.post(
        f"{path}/name",
        data={"first_name": "Ana", "last_name": "Ruiz", "csrf_token": page_csrf(client, path)},
    )
    assert response.status_code == 303
    shown = client.get(response.headers["location"]).text
    assert "Name saved." in shown
    assert "<h1>Ana Ruiz</h1>" in shown
    assert "Ana Ruiz" in client.get("/staff/patients").text
    westside_only = staff_client("wes@glow.example", role="staff", locations=["glow-westside"])
    hidden = westside_only.post(
        f"{path}/name",
        data={"first_name": "X", "csrf_token": page_csrf(westside_only, "/staff/patients")},
    )
    assert hidden.status_code == 404
    assert patient_of(service, caller).first_name == "Ana"


# --- new or returning: one fact -------------------------------------------------------------


def test_first_time_is_new_on_the_conversation_and_the_patient_list_alike(
    service: Service, staff_client: StaffClient, tmp_path: Path, database_url: str
) -> None:
    caller = caller_number(630)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox")
    next_text(service, caller, 2)
    text_in(service, caller, "thursday at 3pm")
    next_text(service, caller, 3)
    text_in(service, caller, "first time")
    next_text(service, caller, 4)
    conversation = conversation_of(service, caller)
    assert conversation.state["patient"] == "new"
    assert patient_of(service, caller).status == "new"
    # The clinic then imports its appointments export, which says nothing about new or
    # returning: it used to turn every patient in it "returning" behind the bot's back.
    export = tmp_path / "appointments.csv"
    export.write_text(f"phone,service,start\n{caller},Botox,2026-11-26 15:00\n")
    imported = ringback(
        "patients",
        "import",
        str(export),
        "--kind",
        "appointments",
        "--location",
        "glow-downtown",
        env={"RINGBACK_DATABASE_URL": database_url, "RINGBACK_CONFIG": str(service.config_path)},
    )
    assert imported.returncode == 0, imported.stderr
    assert "1 created" in imported.stdout, imported.stdout
    assert patient_of(service, caller).status == "new"
    client = staff_client()
    html = page(client, conversation.id).text
    assert '<dd id="new-or-returning">New</dd>' in html
    assert "<dt>Status</dt><dd>New</dd>" in html
    listing = client.get(f"/staff/patients?q={caller[-4:]}").text
    assert "· New" in listing
    assert "· Returning" not in listing
    count = service.scalar(select(func.count()).select_from(Conversation))
    assert count == 1


def test_a_patient_known_by_an_appointment_is_returning_on_the_record_too(
    service: Service, staff_client: StaffClient
) -> None:
    caller = caller_number(631)
    visited = service.clock() - timedelta(days=60)
    with transaction(service.runtime.deps.sessions) as session:
        patient = Patient(location_id="glow-downtown", phone=caller)
        session.add(patient)
        session.flush()
        session.add(
            Appointment(
                location_id="glow-downtown",
                patient_id=patient.id,
                service="Botox",
                starts_at=visited,
                ends_at=visited + timedelta(minutes=30),
                source="staff",
            )
        )
    miss(service, caller)
    next_text(service, caller, 1)
    conversation = conversation_of(service, caller)
    assert conversation.state["patient"] == "returning"
    assert patient_of(service, caller).status == "returning"
    client = staff_client()
    assert '<dd id="new-or-returning">Returning</dd>' in page(client, conversation.id).text
    assert "· Returning" in client.get(f"/staff/patients?q={caller[-4:]}").text
