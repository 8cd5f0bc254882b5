"""The refill figures' words: where the retention funnel leaks after a cancellation or a
visit, in plain sentences (pure: no database)."""

from __future__ import annotations

from ringback.funnel.figures import diagnose_refills
from ringback.funnel.retention import Refills, Retention


def headlines(r: Refills, k: Retention = Retention()) -> list[str]:
    return [f.headline for f in diagnose_refills(r, k)]


def test_refilled_slots_are_named_with_their_revenue() -> None:
    findings = diagnose_refills(
        Refills(slots_freed=2, refilled=2, refilled_revenue_cents=96000), Retention()
    )
    assert [(f.kind, f.headline) for f in findings] == [
        ("good", "The waitlist refills cancelled slots")
    ]
    assert "$960" in findings[0].detail


def test_freed_slots_that_stay_empty_are_a_leak() -> None:
    findings = diagnose_refills(
        Refills(slots_freed=10, waitlist_offers=14, refilled=1), Retention()
    )
    assert "Cancelled slots stay empty" in [f.headline for f in findings]
    leak = next(f for f in findings if f.headline == "Cancelled slots stay empty")
    assert "Only 1 of 10 slots" in leak.detail


def test_cancellations_with_nobody_waiting_are_a_leak() -> None:
    assert headlines(Refills(), Retention(appointments=40, cancelled=12)) == [
        "Nobody waits for a cancelled slot"
    ]
    assert headlines(Refills(), Retention(appointments=40, cancelled=3)) == []


def test_rebooking_texts_nobody_answers_are_a_leak() -> None:
    assert headlines(Refills(rebook_texts=30, rebooked=1)) == ["Patients do not come back when due"]
    assert headlines(Refills(rebook_texts=30, rebooked=9)) == []


def test_refills_add_up_across_locations() -> None:
    total = Refills(slots_freed=1, refilled=1, refilled_revenue_cents=100) + Refills(
        slots_freed=2, review_requests=3
    )
    assert total == Refills(
        slots_freed=3, refilled=1, refilled_revenue_cents=100, review_requests=3
    )
