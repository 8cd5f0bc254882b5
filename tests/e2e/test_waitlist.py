"""The waitlist end to end: the bot offers it when no time fits, staff add anyone through
the JSON API, a cancellation frees a slot, the sweep (on a test clock) texts it to the
matching patients, and the first "yes" over a signed webhook books it: exactly one
booking, the others hear it is gone. Both databases, both queues."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select

from ringback.db import transaction
from ringback.models import Appointment, Patient, WaitlistEntry, WaitlistOpening
from ringback.patients import service as patients
from tests.conftest import Service, settle, wait_for
from tests.e2e.test_reminders import NOW, THURSDAY_3PM, at, sweep
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.api import Token, make_token
from tests.support.booking import scheduling
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

ANNA_ONLY = scheduling([{"id": "anna", "name": "Anna"}])


def book_with_anna(service: Service, caller: str, starts_at: datetime) -> int:
    """A Botox appointment with Anna, as staff book it (straight into the database)."""
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        patient = patients.get_or_create(session, "glow-downtown", caller, deps.clock())
        appointment = Appointment(
            location_id="glow-downtown",
            patient_id=patient.id,
            service="Botox",
            provider_id="anna",
            provider_name="Anna",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=30),
            busy_until=starts_at + timedelta(minutes=30),
            status="booked",
            source="staff",
            value_cents=48000,
            created_at=deps.clock(),
        )
        session.add(appointment)
        session.flush()
        return appointment.id


def patient_id(service: Service, caller: str) -> int:
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        return patients.get_or_create(session, "glow-downtown", caller, deps.clock()).id


def waitlist(service: Service, token: Token, caller: str, **body: object) -> dict[str, object]:
    url = f"{service.url}/api/v1/patients/{patient_id(service, caller)}/waitlist"
    response = service.http.post(url, json={"service": "Botox", **body}, headers=token.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def staff_cancel(service: Service, token: Token, appointment_id: int) -> None:
    url = f"{service.url}/api/v1/appointments/{appointment_id}/cancel"
    response = service.http.post(url, headers=token.headers)
    assert response.status_code == 200, response.text
    assert response.json()["cancelled_by"] == "staff"


def test_the_bot_offers_the_waitlist_when_no_time_fits_and_a_freed_slot_books_on_yes(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=ANNA_ONLY)
    token = make_token(service, "owner@glow.example")
    holder, caller = caller_number(4301), caller_number(4302)
    taken = book_with_anna(service, holder, THURSDAY_3PM)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday at 3pm, first visit")
    next_text(service, caller, 2)
    for n in range(3, 5):
        text_in(service, caller, "none of those work")
        next_text(service, caller, n)
    text_in(service, caller, "none of those work")
    asked = next_text(service, caller, 5)
    assert "waitlist" in asked, asked
    assert "Reply YES or NO" in asked
    text_in(service, caller, "👍")
    assert "You're on the waitlist" in next_text(service, caller, 6)
    entry = wait_for(
        lambda: service.scalar(select(WaitlistEntry).where(WaitlistEntry.source == "bot")),
        what="the bot's waitlist entry",
    )
    assert entry.status == "waiting"
    assert entry.service == "Botox"
    assert entry.windows == [{"days": [3], "from": "15:00", "to": "16:00"}]

    staff_cancel(service, token, taken)
    sweep(service)
    offer = next_text(service, caller, 7)
    assert offer.startswith("Glow Med Spa: Good news, a time just opened: Thu Nov 26 at 3:00pm")
    assert "Reply YES" in offer
    sweep(service)
    settle(0.3)
    assert len(texts_to(service, caller)) == 7  # offered once
    text_in(service, caller, "yes")
    assert "You're booked!" in next_text(service, caller, 8)
    booked = wait_for(
        lambda: service.scalar(
            select(Appointment).where(
                Appointment.status == "booked", Appointment.starts_at == THURSDAY_3PM
            )
        ),
        what="the refilled booking",
    )
    opening = service.scalar(select(WaitlistOpening))
    assert opening.status == "filled"
    assert opening.appointment_id == booked.id
    assert opening.value_cents == 48000
    assert service.scalar(select(WaitlistEntry)).status == "booked"
    # The funnel counts the refill and its revenue (JSON API and the dashboard).
    report = service.http.get(f"{service.url}/api/v1/funnel", headers=token.headers).json()
    assert report["refills"]["slots_freed"] == 1
    assert report["refills"]["waitlist_offers"] == 1
    assert report["refills"]["refilled"] == 1
    assert report["refills"]["refilled_revenue_cents"] == 48000
    assert any(f["headline"] == "The waitlist refills cancelled slots" for f in report["diagnosis"])


def test_twenty_waitlisted_patients_say_yes_at_once_exactly_one_books(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=ANNA_ONLY)
    token = make_token(service, "owner@glow.example")
    taken = book_with_anna(service, caller_number(4400), THURSDAY_3PM)
    callers = [caller_number(4401 + n) for n in range(20)]
    for caller in callers:
        waitlist(service, token, caller, windows=[{"days": ["thu"], "from": "12:00"}])
    staff_cancel(service, token, taken)
    assert sweep(service)["waitlist_offers"] == 20
    for caller in callers:
        assert "a time just opened: Thu Nov 26 at 3:00pm" in next_text(service, caller, 1)
    barrier = threading.Barrier(len(callers))

    def say_yes(caller: str) -> None:
        barrier.wait()
        text_in(service, caller, "yes")

    threads = [threading.Thread(target=say_yes, args=(c,)) for c in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies = {c: next_text(service, c, 2) for c in callers}
    winners = [c for c, text in replies.items() if "You're booked!" in text]
    losers = [c for c, text in replies.items() if "someone just took that time" in text]
    assert len(winners) == 1, replies
    assert len(losers) == 19, replies
    booked = service.rows(
        select(Appointment).where(
            Appointment.status == "booked", Appointment.starts_at == THURSDAY_3PM
        )
    )
    assert len(booked) == 1
    entries = service.rows(select(WaitlistEntry))
    assert sorted(e.status for e in entries) == ["booked"] + ["waiting"] * 19
    assert service.scalar(select(WaitlistOpening)).status == "filled"


def test_opted_out_and_capped_patients_are_never_texted_and_texting_hours_wait(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=ANNA_ONLY)
    token = make_token(service, "owner@glow.example")
    opted_out, other_time, ready = caller_number(4501), caller_number(4502), caller_number(4503)
    for caller in (opted_out, ready):
        waitlist(service, token, caller)
    # Only Monday mornings suit this one: a Thursday afternoon slot is not offered.
    waitlist(
        service, token, other_time, windows=[{"days": ["mon"], "from": "09:00", "to": "12:00"}]
    )
    text_in(service, opted_out, "STOP")
    next_text(service, opted_out, 1)
    bad = service.http.post(
        f"{service.url}/api/v1/patients/{patient_id(service, ready)}/waitlist",
        json={"service": "Botox", "windows": [{"days": ["someday"]}]},
        headers=token.headers,
    )
    assert bad.status_code == 422
    assert "windows[0].days" in bad.text
    unknown = service.http.post(
        f"{service.url}/api/v1/patients/{patient_id(service, ready)}/waitlist",
        json={"service": "Laser"},
        headers=token.headers,
    )
    assert unknown.status_code == 422
    assert "service" in unknown.text

    taken = book_with_anna(service, caller_number(4500), THURSDAY_3PM)
    at(service, NOW + timedelta(hours=12))  # 22:00 in LA: outside texting hours
    staff_cancel(service, token, taken)
    assert "waitlist_offers" not in sweep(service)
    assert service.scalar(select(WaitlistOpening)).status == "open"
    at(service, NOW + timedelta(hours=23))  # 09:00 the next morning
    assert sweep(service)["waitlist_offers"] == 1
    assert "a time just opened" in next_text(service, ready, 1)
    settle(0.3)
    assert len(texts_to(service, opted_out)) == 1  # only the STOP confirmation
    assert texts_to(service, other_time) == []
    listed = service.http.get(f"{service.url}/api/v1/waitlist", headers=token.headers).json()
    assert {e["status"] for e in listed} == {"waiting", "offered"}
    with transaction(service.runtime.deps.sessions) as session:
        stopped = session.scalar(select(Patient).where(Patient.phone == opted_out))
        assert stopped is not None
        assert stopped.opted_out_at is not None


def test_staff_add_and_remove_a_patient_on_the_patient_page(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=ANNA_ONLY)
    add_user(service, "desk@glow.example")
    desk = sign_in(service, "desk@glow.example")
    caller = caller_number(4701)
    pid = patient_id(service, caller)
    path = f"/staff/patients/{pid}"
    csrf = page_csrf(desk, path)
    bad = desk.post(f"{path}/waitlist", data={"csrf_token": csrf, "service": "Consultation"})
    assert bad.status_code == 400
    assert "service: expected one of Botox" in html.unescape(bad.text)
    assert service.rows(select(WaitlistEntry)) == []
    added = desk.post(
        f"{path}/waitlist",
        data={
            "csrf_token": csrf,
            "service": "Botox",
            "days": ["tue", "thu"],
            "time_from": "12:00",
            "time_to": "17:00",
        },
    )
    assert added.status_code == 303, added.text
    page = desk.get(path).text
    assert "Botox · Tue, Thu 12:00-17:00 · " in page
    entry = service.scalar(select(WaitlistEntry))
    assert entry.windows == [{"days": [1, 3], "from": "12:00", "to": "17:00"}]
    assert entry.source == "staff"
    removed = desk.post(f"{path}/waitlist/{entry.id}/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    assert service.scalar(select(WaitlistEntry)).status == "removed"
