"""A texted booking link stops working once the patient's data is erased or they texted
STOP (a clear 410 page, nothing booked); outbound webhook payloads name the treatment and
provider only where the location allows health details in what it sends."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from ringback.fakes.twilio import BackgroundServer
from ringback.models import Appointment, Conversation, Patient
from tests.booking.test_booking_page import (
    conversation_of,
    forms,
    get,
    link_for,
    post,
    slot_forms,
    text_of,
)
from tests.conftest import Service, settle, wait_for
from tests.outbound_webhooks.test_webhooks import Receiver, add_endpoint
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.booking import scheduling
from tests.support.phone import text_in, texts_to
from tests.twilio_payloads import caller_number

ALLOW = {"RINGBACK_ALLOW_PRIVATE_WEBHOOKS": True}


def erase(service: Service, patient_id: int) -> None:
    """An owner deletes the patient's data on the patient page."""
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    path = f"/staff/patients/{patient_id}"
    csrf = page_csrf(owner, path)
    done = owner.post(path + "/delete", data={"csrf_token": csrf, "confirm": "DELETE"})
    assert done.status_code == 303, done.text[:300]


def stop(service: Service, caller: str) -> None:
    text_in(service, caller, "STOP")
    wait_for(
        lambda: service.scalar(select(Patient.opted_out_at).where(Patient.phone == caller)),
        what="the opt-out recorded",
    )


def assert_withdrawn(response: httpx.Response) -> None:
    assert response.status_code == 410, response.text[:300]
    shown = text_of(response)
    assert "This link no longer works" in shown
    assert "Nothing was booked." in shown
    assert "Pick a time" not in shown


def booked(service: Service) -> list[Appointment]:
    return service.rows(select(Appointment).where(Appointment.status == "booked"))


@pytest.mark.parametrize("withdraw", ["erased", "stop"])
def test_a_link_opened_before_and_used_after_is_refused_and_books_nothing(
    make_service: Callable[..., Service], withdraw: str
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(701 if withdraw == "erased" else 702)
    link = link_for(service, caller)
    page = get(service, link)
    assert page.status_code == 200, page.text[:300]
    slot = slot_forms(page)[0]  # the patient has the page open...
    conversation = conversation_of(service, caller)
    if withdraw == "erased":
        erase(service, conversation.patient_id)
    else:
        stop(service, caller)
    assert_withdrawn(get(service, link))  # ...and it is gone on reload
    assert_withdrawn(post(service, slot.action, slot.fields))  # and when they pick a time
    assert service.rows(select(Appointment)) == []
    settle()
    assert not booked(service)


@pytest.mark.parametrize("withdraw", ["erased", "stop"])
def test_a_time_held_before_cannot_be_confirmed_after(
    make_service: Callable[..., Service], withdraw: str
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(703 if withdraw == "erased" else 704)
    link = link_for(service, caller)
    slot = slot_forms(get(service, link))[0]
    held = post(service, slot.action, slot.fields)
    assert held.status_code == 303, held.text[:300]
    (confirm_form,) = [
        f for f in forms(get(service, held.headers["location"])) if f.method == "post"
    ]
    conversation = conversation_of(service, caller)
    texts_before = len(texts_to(service, caller))
    if withdraw == "erased":
        erase(service, conversation.patient_id)
    else:
        stop(service, caller)
        texts_before += 1  # the opt-out's confirmation
    assert_withdrawn(get(service, held.headers["location"]))
    assert_withdrawn(post(service, confirm_form.action, confirm_form.fields))
    settle()
    assert not booked(service)
    assert len(texts_to(service, caller)) == texts_before  # no booking confirmation texted
    thread = service.scalar(select(Conversation).where(Conversation.id == conversation.id))
    assert thread.status != "booked"


def test_a_spanish_thread_is_told_in_spanish(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(705)
    link = link_for(service, caller)
    conversation = conversation_of(service, caller)
    with service.db() as session:
        row = session.get(Conversation, conversation.id)
        assert row is not None
        row.language = "es"
        session.commit()
    stop(service, caller)
    gone = get(service, link)
    assert gone.status_code == 410
    assert "Este enlace ya no funciona" in text_of(gone)


# --- payloads and health details -------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with BackgroundServer(hooks.app()) as server:
        yield hooks, f"{server.url}/hooks"


def book_on_the_page(service: Service, caller: str) -> None:
    link = link_for(service, caller)
    slot = slot_forms(get(service, link))[0]
    held = post(service, slot.action, slot.fields)
    assert held.status_code == 303, held.text[:300]
    (confirm_form,) = [
        f for f in forms(get(service, held.headers["location"])) if f.method == "post"
    ]
    assert post(service, confirm_form.action, confirm_form.fields).status_code == 303


def health_details(allowed: bool) -> Callable[[dict[str, Any]], None]:
    schedule = scheduling()

    def edit(config: dict[str, Any]) -> None:
        schedule(config)
        for location in config["locations"]:
            location["health_details_in_texts"] = allowed

    return edit


@pytest.mark.parametrize("allowed", [False, True])
def test_a_booked_payload_names_treatment_and_provider_only_where_allowed(
    make_service: Callable[..., Service], receiver: tuple[Receiver, str], allowed: bool
) -> None:
    hooks, url = receiver
    service = make_service(edit=health_details(allowed), settings_overrides=ALLOW)
    add_endpoint(service, url, ["appointment.booked"], hooks=hooks)
    book_on_the_page(service, caller_number(711 if allowed else 712))
    (payload,) = wait_for(hooks.delivered, what="the booked event, signed and delivered")
    appointment = payload["data"]["appointment"]
    assert appointment["source"] == "page"
    assert appointment["starts_at"]
    if allowed:
        assert appointment["service"] == "Botox"
        assert appointment["provider"] == "Anna"
    else:
        assert "service" not in appointment
        assert "provider" not in appointment
        raw = next(r["raw"] for r in hooks.requests if r["status"] == 200)
        assert b"Botox" not in raw
        assert b"Anna" not in raw
    assert hooks.bad_signatures == 0


def test_the_readme_promise_is_kept_by_every_event_of_a_default_location(
    make_service: Callable[..., Service], receiver: tuple[Receiver, str]
) -> None:
    """Every event a booked thread sends, none names the treatment or the provider."""
    hooks, url = receiver
    service = make_service(edit=scheduling(), settings_overrides=ALLOW)
    add_endpoint(service, url, ["all"], hooks=hooks)
    caller = caller_number(713)
    book_on_the_page(service, caller)
    wait_for(
        lambda: "appointment.booked" in hooks.types(), what="the booked event among the others"
    )
    settle()
    for request in hooks.requests:
        assert b"Botox" not in request["raw"], request["json"]["type"]
        assert b"Anna" not in request["raw"], request["json"]["type"]
    assert urlsplit(url).hostname == "127.0.0.1"
