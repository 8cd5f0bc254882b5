"""Rebooking texts and review requests end to end (both opt-in per location): kept visits
in the database, the sweep on a test clock, texts as the fake Twilio received them, a
reply over a signed webhook books one of the offered times. Both databases, both queues."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ringback.db import transaction
from ringback.models import Appointment, RetentionText
from tests.conftest import Service, settle, wait_for
from tests.e2e.test_reminders import NOW, at, sweep
from tests.e2e.test_waitlist import book_with_anna
from tests.support.booking import offered_times, scheduling
from tests.support.phone import next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

REVIEW_LINK = "https://g.page/r/glow-med-spa/review"


def follow_ups(*, rebooking: bool = False, reviews: bool = False) -> Callable[[Any], None]:
    base = scheduling([{"id": "anna", "name": "Anna"}])

    def edit(config: dict[str, Any]) -> None:
        base(config)
        glow = config["locations"][0]
        glow["rebooking"] = rebooking
        glow["review_requests"] = reviews
        glow["review_link"] = REVIEW_LINK
        glow["reminders"] = []
        for service in glow["services"]:
            if service["name"] == "Botox":
                service["rebook_after_days"] = 90

    return edit


def kept_visit(service: Service, caller: str, days_ago: float) -> int:
    """A Botox visit with Anna ``days_ago``, marked kept by staff."""
    visit = book_with_anna(service, caller, NOW - timedelta(days=days_ago))
    with transaction(service.runtime.deps.sessions) as session:
        appointment = session.get(Appointment, visit)
        assert appointment is not None
        appointment.attendance = "kept"
    return visit


def test_a_botox_patient_due_again_gets_one_rebooking_text_with_real_times_and_books(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=follow_ups(rebooking=True))
    due, recent, booked_ahead = caller_number(4601), caller_number(4602), caller_number(4603)
    kept_visit(service, due, 91)
    kept_visit(service, recent, 30)  # not due yet
    kept_visit(service, booked_ahead, 95)
    book_with_anna(service, booked_ahead, NOW + timedelta(days=10))  # already coming back

    assert sweep(service).get("rebook_texts") == 1
    text = next_text(service, due, 1)
    assert text.startswith("Glow Med Spa: Hi! It's about time for your next visit. We have 1) ")
    assert "Botox" not in text  # no health details in texts by default
    assert len(offered_times(text)) == 3
    sweep(service)
    at(service, NOW + timedelta(minutes=5))
    sweep(service)
    settle(0.3)
    assert len(texts_to(service, due)) == 1  # one text, ever
    assert texts_to(service, recent) == []
    assert texts_to(service, booked_ahead) == []

    text_in(service, due, "2")
    assert "You're booked!" in next_text(service, due, 2)
    wait_for(
        lambda: service.scalar(
            select(Appointment).where(Appointment.source == "bot", Appointment.status == "booked")
        ),
        what="the rebooking",
    )
    rows = service.rows(select(RetentionText).where(RetentionText.kind == "rebook"))
    assert [(r.status, r.skip_reason) for r in rows] == [("sent", None)]


def test_rebooking_is_off_unless_the_location_turns_it_on(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=follow_ups())
    caller = caller_number(4611)
    kept_visit(service, caller, 91)
    assert "rebook_texts" not in sweep(service)
    settle(0.3)
    assert texts_to(service, caller) == []


def test_a_kept_visit_gets_one_review_request_per_180_days_never_when_opted_out(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=follow_ups(reviews=True))
    happy, stopped = caller_number(4621), caller_number(4622)
    kept_visit(service, happy, 1)
    kept_visit(service, stopped, 1.5)
    text_in(service, stopped, "STOP")
    next_text(service, stopped, 1)

    assert sweep(service).get("review_requests") == 1
    text = next_text(service, happy, 1)
    assert text == (
        f"Glow Med Spa: Thanks for visiting us! Would you leave us a quick review? {REVIEW_LINK}"
    )
    # Another kept visit a month later: still within 180 days, no second request.
    at(service, NOW + timedelta(days=30))
    kept_visit(service, happy, -29.9)
    at(service, NOW + timedelta(days=31))
    sweep(service)
    settle(0.3)
    assert len(texts_to(service, happy)) == 1
    assert len(texts_to(service, stopped)) == 1  # the STOP confirmation only
    skipped = service.scalar(
        select(RetentionText).where(
            RetentionText.status == "skipped", RetentionText.kind == "review"
        )
    )
    assert skipped.skip_reason == "opted_out"
