"""Availability as tables of cases: hours, providers, rooms, buffers, lead time, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from ringback.booking.availability import BusyIndex, Slot, Window, find_slots, is_bookable
from ringback.config import Location

LA = ZoneInfo("America/Los_Angeles")


def location(**overrides: Any) -> Location:
    data: dict[str, Any] = {
        "id": "glow",
        "name": "Glow",
        "phone_number": "+13105550100",
        "timezone": "America/Los_Angeles",
        "hours": {d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri")}
        | {"sat": "10:00-14:00", "sun": "closed"},
        "services": [
            {"name": "Botox", "minutes": 30, "buffer_minutes": 15, "price": 480},
            {"name": "Filler", "minutes": 60, "price": 750},
            {"name": "Consultation", "minutes": 30, "consult": True},
        ],
        "providers": [
            {"id": "anna", "name": "Anna", "services": ["Botox", "Filler"]},
            {"id": "bea", "name": "Bea", "services": ["Filler"], "hours": {"mon": "12:00-17:00"}},
        ],
        "booking": {"lead_minutes": 60, "step_minutes": 15, "horizon_days": 14},
    }
    data.update(overrides)
    return Location.model_validate(data)


def local(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=LA)


def starts(slots: list[Slot]) -> list[str]:
    return [f"{s.start.astimezone(LA):%a %H:%M} {s.provider_id}" for s in slots]


MONDAY_8AM = local(2026, 11, 30, 8)


def test_earliest_slots_respect_lead_time_and_are_spaced_apart() -> None:
    loc = location()
    botox = loc.service_named("Botox")
    assert botox is not None
    now = local(2026, 11, 30, 9, 5)  # lead 60 min: nothing before 10:05, so 10:15 first
    slots = find_slots(loc, botox, now, BusyIndex())
    assert starts(slots) == ["Mon 10:15 anna", "Mon 11:15 anna", "Mon 12:15 anna"]
    assert all(s.start.tzinfo is UTC for s in slots)
    assert slots[0].end - slots[0].start == timedelta(minutes=30)


def test_provider_hours_intersect_opening_hours_and_services_limit_who() -> None:
    loc = location()
    filler = loc.service_named("Filler")
    assert filler is not None
    slots = find_slots(loc, filler, MONDAY_8AM, BusyIndex(), limit=3, provider_id="bea")
    assert starts(slots)[0] == "Mon 12:00 bea"  # Bea works Mondays from noon only
    # Bea has no Tuesday hours in her own schedule: she is never offered then.
    tuesday = [Window(local(2026, 12, 1, 9), local(2026, 12, 1, 17))]
    assert (
        find_slots(loc, filler, MONDAY_8AM, BusyIndex(), windows=tuesday, provider_id="bea")[0]
        .start.astimezone(LA)
        .weekday()
        != 1
    )


def test_busy_time_plus_buffer_blocks_the_provider() -> None:
    loc = location()
    botox = loc.service_named("Botox")
    assert botox is not None
    # Anna is busy 10:00-10:45 (a 30-minute visit plus its 15-minute buffer).
    busy = BusyIndex([("provider:anna", local(2026, 11, 30, 10), local(2026, 11, 30, 10, 45))])
    wish = [Window(local(2026, 11, 30, 10), local(2026, 11, 30, 11))]
    slots = find_slots(loc, botox, MONDAY_8AM, busy, windows=wish, limit=1)
    assert starts(slots) == ["Mon 10:45 anna"]
    # A new Botox slot needs 45 free minutes (duration + buffer): 9:30 would run into 10:00.
    early = [Window(local(2026, 11, 30, 9), local(2026, 11, 30, 10))]
    picked = find_slots(loc, botox, local(2026, 11, 30, 7), busy, windows=early, limit=3)
    assert "Mon 09:30 anna" not in starts(picked)
    assert "Mon 09:15 anna" in starts(picked) or "Mon 09:00 anna" in starts(picked)


def test_location_calendar_busy_blocks_everyone_and_closures_close_the_day() -> None:
    loc = location(closures=["2026-12-01"])
    filler = loc.service_named("Filler")
    assert filler is not None
    busy = BusyIndex([("location", local(2026, 11, 30, 9), local(2026, 11, 30, 17))])
    slots = find_slots(loc, filler, MONDAY_8AM, busy, limit=3)
    days = {s.start.astimezone(LA).date().isoformat() for s in slots}
    assert "2026-11-30" not in days  # Monday blocked by a clinic-wide event
    assert "2026-12-01" not in days  # Tuesday is a closure
    assert min(days) == "2026-12-02"


def test_closest_to_the_wish_comes_first_then_nearest_days() -> None:
    loc = location()
    botox = loc.service_named("Botox")
    assert botox is not None
    thursday_3pm = [Window(local(2026, 12, 3, 15), local(2026, 12, 3, 16))]
    slots = find_slots(loc, botox, MONDAY_8AM, BusyIndex(), windows=thursday_3pm)
    # The wished-for time itself, and the nearest real alternatives that day, in time order.
    assert starts(slots) == ["Thu 14:00 anna", "Thu 15:00 anna", "Thu 16:00 anna"]
    # A full Thursday pushes offers to the nearest days instead.
    full = BusyIndex([("provider:anna", local(2026, 12, 3, 9), local(2026, 12, 3, 17))])
    moved = find_slots(loc, botox, MONDAY_8AM, full, windows=thursday_3pm)
    assert moved
    assert {s.start.astimezone(LA).day for s in moved} <= {2, 4}


def test_excluded_starts_are_not_offered_again_and_consults_are_never_offered() -> None:
    loc = location()
    botox = loc.service_named("Botox")
    consult = loc.service_named("Consultation")
    assert botox is not None
    assert consult is not None
    first = find_slots(loc, botox, MONDAY_8AM, BusyIndex())
    again = find_slots(
        loc, botox, MONDAY_8AM, BusyIndex(), exclude=frozenset(s.start for s in first)
    )
    assert not {s.start for s in first} & {s.start for s in again}
    assert find_slots(loc, consult, MONDAY_8AM, BusyIndex()) == []


def test_rooms_each_booking_needs_a_free_room_that_fits() -> None:
    loc = location(
        providers=[{"id": "anna", "name": "Anna"}, {"id": "cara", "name": "Cara"}],
        rooms=[{"id": "laser", "name": "Laser room", "services": ["Filler"]}],
    )
    filler = loc.service_named("Filler")
    botox = loc.service_named("Botox")
    assert filler is not None
    assert botox is not None
    # Only one room fits Filler: when it is busy, neither provider can do Filler then.
    busy = BusyIndex([("room:laser", local(2026, 11, 30, 9), local(2026, 11, 30, 17))])
    slots = find_slots(loc, filler, MONDAY_8AM, busy)
    assert all(s.start.astimezone(LA).day != 30 for s in slots)
    assert all(s.room_id == "laser" for s in slots)
    # Botox fits no listed room, so it needs none.
    assert find_slots(loc, botox, MONDAY_8AM, busy)[0].room_id is None


@pytest.mark.parametrize(
    ("day", "utc_hour_of_nine"),
    [
        ("2026-03-07", 17),  # Saturday before spring forward: PST (UTC-8)
        ("2026-03-09", 16),  # Monday after: PDT (UTC-7)
        ("2026-10-31", 16),  # Saturday before fall back: PDT
        ("2026-11-02", 17),  # Monday after: PST
    ],
)
def test_opening_hours_follow_the_wall_clock_across_daylight_saving(
    day: str, utc_hour_of_nine: int
) -> None:
    loc = location(hours={d: "09:00-17:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
    botox = loc.service_named("Botox")
    assert botox is not None
    y, m, d = (int(x) for x in day.split("-"))
    now = datetime(y, m, d, 0, tzinfo=LA) - timedelta(days=1)
    wish = [Window(local(y, m, d, 9), local(y, m, d, 10))]
    first = find_slots(loc, botox, now, BusyIndex(), windows=wish, limit=1)[0]
    assert first.start.astimezone(LA).hour == 9
    assert first.start.hour == utc_hour_of_nine


def test_the_spring_forward_gap_is_skipped_for_a_night_clinic() -> None:
    loc = location(
        hours={"sun": "01:00-04:00"}
        | {d: "closed" for d in ("mon", "tue", "wed", "thu", "fri", "sat")},
        providers=[{"id": "anna", "name": "Anna"}],
        booking={"lead_minutes": 0, "step_minutes": 30, "horizon_days": 7},
    )
    botox = loc.service_named("Botox")
    assert botox is not None
    now = local(2026, 3, 7, 12)
    night = [Window(local(2026, 3, 8, 1), local(2026, 3, 8, 4))]
    slots = find_slots(loc, botox, now, BusyIndex(), windows=night, limit=3)
    walls = sorted(
        f"{s.start.astimezone(LA):%H:%M}" for s in slots if s.start.astimezone(LA).day == 8
    )
    assert "02:00" not in walls
    assert "02:30" not in walls
    # 01:00-04:00 local that night is only two real hours long.
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)


def test_is_bookable_rechecks_busy_lead_and_provider() -> None:
    loc = location()
    botox = loc.service_named("Botox")
    assert botox is not None
    slot = find_slots(loc, botox, MONDAY_8AM, BusyIndex(), limit=1)[0]
    assert is_bookable(loc, botox, slot, MONDAY_8AM, BusyIndex())
    taken = BusyIndex([("provider:anna", slot.start, slot.end)])
    assert not is_bookable(loc, botox, slot, MONDAY_8AM, taken)
    assert not is_bookable(loc, botox, slot, slot.start, BusyIndex())  # inside the lead time
    wrong = Slot(slot.start, slot.end, "bea", None)  # Bea does not do Botox
    assert not is_bookable(loc, botox, wrong, MONDAY_8AM, BusyIndex())
    off_grid = Slot(slot.start + timedelta(minutes=7), slot.end + timedelta(minutes=7), "anna")
    assert not is_bookable(loc, botox, off_grid, MONDAY_8AM, BusyIndex())
