"""Booking in the thread, end to end: signed webhooks over HTTP, the real queue and
database, texts as the fake Twilio received them; and exactly one winner per slot."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from ringback.booking import service as booking
from ringback.booking.availability import Slot
from ringback.config import Location
from ringback.config import Service as ServiceConfig
from ringback.db import transaction
from ringback.models import Appointment, CalendarSync, Conversation, Patient, WebhookDelivery
from ringback.outbound_webhooks import service as webhooks
from tests.conftest import Service, settle, wait_for
from tests.staff.conftest import add_user, sign_in
from tests.support.booking import offered_times, scheduling
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

LA = ZoneInfo("America/Los_Angeles")


def test_qualified_patient_is_offered_real_slots_and_books_with_one_reply(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(301)
    miss(service, caller)
    next_text(service, caller, 1)
    # Tuesday Nov 24, 10:00 in LA: "thursday afternoon" is Nov 26.
    text_in(service, caller, "botox thursday afternoon please, first time")
    offer = next_text(service, caller, 2)
    assert "Reply 1, 2 or 3" in offer, offer
    times = offered_times(offer)
    assert len(times) == 3, offer
    assert all(t.startswith("Thu Nov 26 at") and t.endswith("with Anna") for t in times)
    assert all("pm" in t for t in times)
    text_in(service, caller, "2")
    confirmation = next_text(service, caller, 3)
    assert confirmation.startswith("Glow Med Spa: You're booked! Botox on ")
    assert times[1].removesuffix(" with Anna") in confirmation
    assert "with Anna" in confirmation
    assert "1200 Main St" in confirmation
    assert "Please skip alcohol the day before." in confirmation
    appointment = wait_for(
        lambda: service.scalar(select(Appointment).where(Appointment.source == "bot")),
        what="appointment",
    )
    assert appointment.status == "booked"
    assert appointment.provider_id == "anna"
    assert appointment.service == "Botox"
    assert appointment.value_cents == 48000
    assert appointment.ends_at - appointment.starts_at == timedelta(minutes=30)
    local = appointment.starts_at.astimezone(LA)
    assert (local.month, local.day) == (11, 26)
    assert 12 <= local.hour < 18
    conversation = service.scalar(
        select(Conversation).where(Conversation.id == appointment.conversation_id)
    )
    assert conversation.status == "booked"
    assert conversation.booked_by == "bot"
    assert conversation.booked_value_cents == 48000
    settle()
    assert len(texts_to(service, caller)) == 3
    # The front desk sees what was offered and what was booked on the conversation page.
    add_user(service, "desk@glow.example")
    page = sign_in(service, "desk@glow.example").get(f"/staff/conversations/{conversation.id}")
    assert page.status_code == 200
    assert re.search(
        r'<dd id="appointment">Botox · Thu Nov 26 at \d+:\d\dpm · '
        r'<span class="badge appointment-status" id="appointment-status">Unconfirmed</span></dd>',
        page.text,
    )
    assert "Booked" in page.text


def test_none_of_those_gets_new_times_and_a_new_wish_moves_the_offers(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(302)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "filler friday morning, ive been before")
    first = offered_times(next_text(service, caller, 2))
    assert first
    assert all(t.startswith("Fri Nov 27") for t in first)
    text_in(service, caller, "none of those work")
    second_text = next_text(service, caller, 3)
    second = offered_times(second_text)
    assert second
    assert not set(second) & set(first)
    assert "/book/" in second_text  # later rounds also link the booking page
    text_in(service, caller, "how about next monday at 2pm")
    third = offered_times(next_text(service, caller, 4))
    assert any(t.startswith("Mon Nov 30 at 2:00pm") for t in third), third


def test_patient_cancels_the_booking_by_text_and_the_slot_is_free_again(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(
        edit=scheduling(),
        settings_overrides={"RINGBACK_ALLOW_PRIVATE_WEBHOOKS": True},
    )
    with transaction(service.runtime.deps.sessions) as session:
        webhooks.create_endpoint(
            session,
            url="http://127.0.0.1:9/crm",  # never answers: deliveries wait, nothing is lost
            events=["appointment.booked", "appointment.cancelled"],
            location_id=None,
            known_locations={"glow-downtown", "glow-westside"},
            now=service.clock(),
            allow_private=True,
        )
    caller = caller_number(303)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday at 3pm, new patient")
    offer = next_text(service, caller, 2)
    choice = next(n for n, t in enumerate(offered_times(offer), start=1) if "3:00pm" in t)
    text_in(service, caller, str(choice))
    assert "You're booked!" in next_text(service, caller, 3)
    text_in(service, caller, "X")
    asked = next_text(service, caller, 4)
    assert "Cancel your Botox on Thu Nov 26 at 3:00pm?" in asked
    assert service.scalar(select(Appointment.status)) == "booked"
    text_in(service, caller, "X")
    cancelled = next_text(service, caller, 5)
    assert "is cancelled" in cancelled
    assert "Thu Nov 26 at 3:00pm" in cancelled
    appointment = wait_for(
        lambda: service.scalar(select(Appointment).where(Appointment.status == "cancelled")),
        what="cancelled appointment",
    )
    assert appointment.cancelled_by == "patient"
    deliveries = {
        d.event: d.payload
        for d in service.rows(select(WebhookDelivery).order_by(WebhookDelivery.id))
    }
    assert set(deliveries) == {"appointment.booked", "appointment.cancelled"}
    booked = deliveries["appointment.booked"]["data"]["appointment"]
    # No treatment or provider: the demo locations keep health details out of what they send.
    assert "service" not in booked
    assert "provider" not in booked
    assert booked["source"] == "bot"
    assert deliveries["appointment.cancelled"]["data"]["appointment"]["id"] == appointment.id
    with service.db() as session:
        location = service.locations.get("glow-downtown")
        assert location is not None
        botox = location.service_named("Botox")
        assert botox is not None
        free = booking.offer(
            session,
            location,
            botox,
            service.clock(),
            windows=[booking.Window(appointment.starts_at, appointment.ends_at)],
        )
    assert appointment.starts_at in {s.start for s in free}


def test_patient_reschedules_by_text_the_old_time_is_cancelled_in_the_same_step(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(304)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon, ive been before")
    next_text(service, caller, 2)
    text_in(service, caller, "1")
    assert "You're booked!" in next_text(service, caller, 3)
    text_in(service, caller, "can I reschedule to friday morning?")
    offer = next_text(service, caller, 4)
    assert all(t.startswith("Fri Nov 27") for t in offered_times(offer)), offer
    text_in(service, caller, "1")
    done = next_text(service, caller, 5)
    assert "You're now booked for Botox on Fri Nov 27" in done
    rows = service.rows(select(Appointment).order_by(Appointment.id))
    assert [r.status for r in rows] == ["cancelled", "booked"]
    assert rows[1].rescheduled_from_id == rows[0].id


def test_twenty_patients_choose_the_same_slot_at_once_exactly_one_wins(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling([{"id": "anna", "name": "Anna"}]))
    callers = [caller_number(400 + n) for n in range(20)]
    for caller in callers:
        miss(service, caller)
    for caller in callers:
        next_text(service, caller, 1)
    for caller in callers:
        text_in(service, caller, "botox thursday at 3pm, first visit")
    choices: dict[str, str] = {}
    for caller in callers:
        times = offered_times(next_text(service, caller, 2))
        choices[caller] = str(next(n for n, t in enumerate(times, 1) if "3:00pm" in t))
    barrier = threading.Barrier(len(callers))

    def choose(caller: str) -> None:
        barrier.wait()
        text_in(service, caller, choices[caller])

    threads = [threading.Thread(target=choose, args=(c,)) for c in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    replies = {c: next_text(service, c, 3) for c in callers}
    winners = [c for c, text in replies.items() if "You're booked!" in text]
    losers = [c for c, text in replies.items() if "that time was just taken" in text]
    assert len(winners) == 1, replies
    assert len(losers) == 19
    # The others got new, real times (never the taken one).
    assert all("3:00pm" not in replies[c].split("We can do")[1] for c in losers)
    booked = service.rows(select(Appointment).where(Appointment.status == "booked"))
    assert len(booked) == 1
    assert booked[0].starts_at.astimezone(LA).hour == 15


def thursday_3pm_with_anna(
    make_service: Callable[..., Service],
) -> tuple[Service, Location, ServiceConfig, Slot]:
    """A spa with one provider (no workers), its Botox, and Anna's Thursday 3pm slot."""
    service = make_service(edit=scheduling([{"id": "anna", "name": "Anna"}]), run_worker=False)
    location = service.locations.get("glow-downtown")
    assert location is not None
    botox = location.service_named("Botox")
    assert botox is not None
    start = datetime(2026, 11, 26, 15, tzinfo=LA).astimezone(ZoneInfo("UTC"))
    return service, location, botox, Slot(start, start + timedelta(minutes=30), "anna", None)


def test_twenty_concurrent_reservations_of_one_slot_in_the_service(
    make_service: Callable[..., Service],
) -> None:
    """The same race one level down: 20 transactions at once, each with its own session."""
    service, location, botox, slot = thursday_3pm_with_anna(make_service)
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        patient_ids = []
        for n in range(20):
            patient = Patient(location_id=location.id, phone=caller_number(500 + n))
            session.add(patient)
            session.flush()
            patient_ids.append(patient.id)
    barrier = threading.Barrier(20)
    results: list[int | None] = []
    errors: list[BaseException] = []

    def attempt(patient_id: int) -> None:
        try:
            barrier.wait()
            with transaction(deps.sessions) as session:
                patient = session.get(Patient, patient_id)
                assert patient is not None
                appointment = booking.reserve(
                    session, deps, location, botox, patient, slot, source="staff"
                )
                results.append(appointment.id if appointment else None)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attempt, args=(p,)) for p in patient_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 20
    assert len([r for r in results if r is not None]) == 1
    live = service.rows(select(Appointment).where(Appointment.status.in_(("booked", "held"))))
    assert len(live) == 1
    # No calendar configured: no sync rows.
    assert service.rows(select(CalendarSync)) == []


def test_the_sweep_marks_lapsed_holds_expired_and_their_slot_is_free(
    make_service: Callable[..., Service],
) -> None:
    from ringback.runtime import run_sweep

    service, location, botox, slot = thursday_3pm_with_anna(make_service)
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        patient = Patient(location_id=location.id, phone=caller_number(520))
        session.add(patient)
        session.flush()
        held = booking.reserve(
            session, deps, location, botox, patient, slot, source="page", hold=True
        )
        assert held is not None
        assert held.status == "held"
    assert "holds_expired" not in run_sweep(deps)  # still within its ten minutes
    service.clock.advance(timedelta(minutes=location.booking.hold_minutes + 1))
    assert run_sweep(deps)["holds_expired"] == 1
    assert service.scalar(select(Appointment.status)) == "expired"
    with transaction(deps.sessions) as session:
        other = Patient(location_id=location.id, phone=caller_number(521))
        session.add(other)
        session.flush()
        assert booking.reserve(session, deps, location, botox, other, slot, source="bot")


def test_a_hold_the_sweep_expired_still_books_if_its_slot_is_free(
    make_service: Callable[..., Service],
) -> None:
    from ringback.runtime import run_sweep

    service, location, botox, slot = thursday_3pm_with_anna(make_service)
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        patient = Patient(location_id=location.id, phone=caller_number(530))
        session.add(patient)
        session.flush()
        held = booking.reserve(
            session, deps, location, botox, patient, slot, source="page", hold=True
        )
        assert held is not None
        held_id = held.id
    service.clock.advance(timedelta(minutes=location.booking.hold_minutes + 1))
    assert run_sweep(deps)["holds_expired"] == 1
    with transaction(deps.sessions) as session:
        expired = session.get(Appointment, held_id)
        assert expired is not None
        assert expired.status == "expired"
        booked = booking.confirm_hold(session, deps, location, expired)
        assert booked is not None
        assert booked.status == "booked"
