"""Kept and no-show, end to end: staff mark a visit on the patient page or through the JSON
API; a no-show gets one warm text with fresh times, and a reply books one. The status
(unconfirmed / confirmed / cancelled) on the calendar, conversation and patient pages and
in the API. Both databases, both queues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from ringback.models import Appointment, Conversation, Message
from tests.conftest import Service, settle, wait_for
from tests.e2e.test_reminders import NOW, THURSDAY_3PM, at, book, sweep
from tests.staff.conftest import page_csrf, sign_in
from tests.support.api import make_token
from tests.support.booking import offered_times, scheduling
from tests.support.phone import next_text, text_in, texts_to
from tests.twilio_payloads import caller_number


def test_a_no_show_gets_one_warm_text_with_fresh_times_and_can_rebook(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    token = make_token(service, "owner@glow.example")
    caller = caller_number(4201)
    appointment_id = book(service, caller, NOW + timedelta(hours=3))
    url = f"{service.url}/api/v1/appointments/{appointment_id}/attendance"

    early = service.http.post(url, json={"attendance": "no_show"}, headers=token.headers)
    assert early.status_code == 409, early.text  # not started yet: nothing changes
    bad = service.http.post(url, json={"attendance": "late"}, headers=token.headers)
    assert bad.status_code == 422
    assert service.http.post(url, json={"attendance": "kept"}).status_code == 401

    at(service, NOW + timedelta(hours=4))
    marked = service.http.post(url, json={"attendance": "no_show"}, headers=token.headers)
    assert marked.status_code == 200, marked.text
    assert marked.json() == {
        "appointment_id": appointment_id,
        "attendance": "no_show",
        "confirmation": "unconfirmed",
        "no_show_texted": True,
    }
    text = next_text(service, caller, 1)
    assert text.startswith("Glow Med Spa: We missed you today! Want another time? We have 1) ")
    assert "Botox" not in text
    assert len(offered_times(text)) == 3
    again = service.http.post(url, json={"attendance": "no_show"}, headers=token.headers)
    assert again.json()["no_show_texted"] is False
    settle(0.3)
    assert len(texts_to(service, caller)) == 1  # once

    text_in(service, caller, "2")
    assert "You're booked" in next_text(service, caller, 2)
    rebooked = wait_for(
        lambda: service.scalar(
            select(Appointment).where(Appointment.source == "bot", Appointment.status == "booked")
        ),
        what="the new booking",
    )
    assert rebooked.service == "Botox"
    kinds = service.rows(select(Message.kind).where(Message.direction == "outbound"))
    assert kinds[0] == "no_show"

    record = service.http.get(
        f"{service.url}/api/v1/patients/{rebooked.patient_id}/record", headers=token.headers
    ).json()
    by_id = {a["id"]: a for a in record["appointments"]}
    assert by_id[appointment_id]["attendance"] == "no_show"
    assert by_id[rebooked.id]["confirmation"] == "unconfirmed"


def test_status_on_the_calendar_conversation_and_patient_pages(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    make_token(service, "owner@glow.example")
    confirming, cancelling = caller_number(4202), caller_number(4203)
    ids = {c: book(service, c, THURSDAY_3PM) for c in (confirming, cancelling)}
    sweep(service)
    at(service, THURSDAY_3PM - timedelta(hours=2))
    sweep(service)
    for caller in ids:
        next_text(service, caller, 1)
    client = sign_in(service, "owner@glow.example")  # (after the clock's jump of two days)
    calendar = client.get("/staff/calendar").text
    assert calendar.count('data-status="unconfirmed">Unconfirmed<') == 2

    text_in(service, confirming, "C")
    assert "you're confirmed" in next_text(service, confirming, 2)
    text_in(service, cancelling, "X")
    assert "Reply X again to cancel" in next_text(service, cancelling, 2)
    text_in(service, cancelling, "X")
    assert "is cancelled" in next_text(service, cancelling, 3)

    calendar = client.get("/staff/calendar").text
    assert 'data-status="confirmed">Confirmed<' in calendar
    assert 'data-status="cancelled">Cancelled<' in calendar
    thread = service.scalar(
        select(Conversation.id)
        .join(Appointment, Appointment.patient_id == Conversation.patient_id)
        .where(Appointment.id == ids[confirming])
    )
    conversation = client.get(f"/staff/conversations/{thread}").text
    assert 'id="appointment-status">Confirmed<' in conversation
    patient_id = service.scalar(
        select(Appointment.patient_id).where(Appointment.id == ids[confirming])
    )
    page = client.get(f"/staff/patients/{patient_id}").text
    assert ">Confirmed<" in page
    assert "attendance-form" not in page  # not started yet

    at(service, THURSDAY_3PM + timedelta(hours=1))
    page_url = f"/staff/patients/{patient_id}"
    csrf = page_csrf(client, page_url)
    marked = client.post(
        f"{page_url}/appointments/{ids[confirming]}/attendance",
        data={"csrf_token": csrf, "attendance": "kept"},
    )
    assert marked.status_code == 303, marked.text
    page = client.get(page_url).text
    assert "Confirmed · Kept" in page
    refused = client.post(
        f"{page_url}/appointments/{ids[confirming]}/attendance",
        data={"csrf_token": csrf, "attendance": "maybe"},
    )
    assert refused.status_code == 422
    assert "expected kept or no_show" in refused.text
    assert (
        service.scalar(select(Appointment.attendance).where(Appointment.id == ids[confirming]))
        == "kept"
    )
    client.close()
