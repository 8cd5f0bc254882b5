"""Funnel counts that add up, for any story: random sequences of booking, cancelling,
rescheduling, marking booked and marking lost, written as the services write them (with
their funnel hooks) in a migrated database (SQLite, or PostgreSQL with
RINGBACK_TEST_DATABASE=postgres), then read through the report after each step.

After every step: ``booked = cancelled + still_booked``, ``still_booked = kept + upcoming +
booked_time_unknown``, each figure equals what a plain model of the story says, revenue
recovered is the sum of the values of the bookings not cancelled (a rescheduled one once,
at its current value), the per-call CSV adds up to the same, and the incrementally kept
rollups equal a rebuild from the rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location, Locations, load_locations
from ringback.db import Base, make_engine, make_sessionmaker, transaction
from ringback.funnel import rollup
from ringback.funnel.export import stream_calls_csv
from ringback.funnel.figures import Funnel
from ringback.funnel.report import load_report
from ringback.models import Appointment, AppointmentReminder, Conversation
from tests.conftest import DEMO_LOCATIONS
from tests.funnel.dataset import DOWNTOWN, Miss, add_history, at

DAY = date(2026, 3, 6)
NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)
CALLS = 3
# Appointment starts around NOW: some have passed (kept), some have not (upcoming).
STARTS = [NOW + timedelta(days=d, hours=h) for d in (-4, -1, 2, 6) for h in (0, 3)]
# Botox and Filler have list prices; "Mystery" is not in the list (unpriced without a value).
TREATMENTS = {"Botox": 48_000, "Filler": 75_000, "Mystery": None}


@dataclass
class Booking:
    """The model: what a call's booking is now."""

    by: str  # bot | staff
    treatment: str
    value_cents: int | None
    start: datetime | None  # None: staff marked it booked, no appointment
    appointment_id: int | None = None
    cancelled: bool = False
    rescheduled: bool = False

    @property
    def worth(self) -> int:
        return self.value_cents if self.value_cents is not None else TREATMENTS[self.treatment] or 0


@dataclass
class Visit:
    """The model of one appointment row, for keeping the booking."""

    start: datetime
    cancelled: bool = False
    replaced: bool = False
    no_show: bool = False
    confirmed: bool = False
    reminded: int = 0


@dataclass
class Story:
    conversations: list[int]
    bookings: dict[int, Booking] = field(default_factory=dict)
    lost: set[int] = field(default_factory=set)
    visits: dict[int, Visit] = field(default_factory=dict)


Step = tuple[str, int, int, str, int | None]
steps = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "book",
                "cancel",
                "reschedule",
                "mark_booked",
                "mark_lost",
                "remind",
                "confirm",
                "no_show",
            ]
        ),
        st.integers(0, CALLS - 1),
        st.integers(0, len(STARTS) - 1),
        st.sampled_from(sorted(TREATMENTS)),
        st.sampled_from([None, 0, 30_000, 99_900]),
    ),
    max_size=14,
)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def locations() -> Locations:
    return load_locations(DEMO_LOCATIONS)


def fresh_story(sessions: sessionmaker[Session], locations: Locations) -> Story:
    with transaction(sessions) as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))
        calls = add_history(
            session,
            [
                Miss(DOWNTOWN, at(6, 9 + n), "no_answer", "texted", "A", sent_ms=900, replied=True)
                for n in range(CALLS)
            ],
        )
    rollup.rebuild(sessions, locations)
    return Story([c.conversation_id for c in calls if c.conversation_id is not None])


def apply(sessions: sessionmaker[Session], story: Story, step: Step) -> None:
    """One step, as the services do it: rows changed, the funnel's hooks told."""
    action, n, start_index, treatment, value = step
    conversation_id = story.conversations[n]
    booked = story.bookings.get(n)
    start = STARTS[start_index]
    with transaction(sessions) as session:
        conversation = session.get(Conversation, conversation_id)
        assert conversation is not None
        if action in ("book", "mark_booked") and booked is None and n not in story.lost:
            conversation.is_open = False
            conversation.status = "booked"
            conversation.close_reason = "booked"
            conversation.treatment = treatment
            conversation.booked_by = "bot" if action == "book" else "staff"
            conversation.booked_value_cents = value
            model = Booking(conversation.booked_by, treatment, value, None)
            if action == "book":
                appointment = _appointment(conversation, treatment, value, start, None)
                session.add(appointment)
                session.flush()
                rollup.appointment_changed(appointment)
                model.start, model.appointment_id = start, appointment.id
                story.visits[appointment.id] = Visit(start)
            rollup.conversation_changed(conversation)
            story.bookings[n] = model
        elif action == "mark_lost" and booked is None and n not in story.lost:
            conversation.is_open = False
            conversation.status = "closed"
            conversation.close_reason = "lost"
            rollup.conversation_changed(conversation)
            story.lost.add(n)
        elif action in ("remind", "confirm", "no_show") and booked and booked.appointment_id:
            visit = story.visits[booked.appointment_id]
            current = session.get(Appointment, booked.appointment_id)
            assert current is not None
            if visit.cancelled:
                return
            if action == "remind":
                visit.reminded += 1
                session.add(
                    AppointmentReminder(
                        appointment_id=current.id,
                        location_id=current.location_id,
                        patient_id=current.patient_id,
                        offset_minutes=visit.reminded * 60,
                        due_at=current.starts_at - timedelta(hours=visit.reminded),
                        status="sent",
                        settled_at=NOW,
                    )
                )
            elif action == "confirm":
                visit.confirmed = True
                current.confirmed_at = NOW
            elif current.starts_at <= NOW:
                visit.no_show = True
                current.attendance = "no_show"
                rollup.appointment_changed(current)
        elif action in ("cancel", "reschedule") and booked and booked.appointment_id:
            if booked.cancelled:
                return
            current = session.get(Appointment, booked.appointment_id)
            assert current is not None
            current.status = "cancelled"
            rollup.appointment_changed(current)
            story.visits[current.id].cancelled = True
            if action == "cancel":
                booked.cancelled = True
                return
            # The new time is booked in the thread the patient texted from (not this one).
            moved = _appointment(conversation, treatment, value, start, current.id)
            moved.conversation_id = None
            session.add(moved)
            session.flush()
            rollup.appointment_changed(moved)
            story.visits[current.id].replaced = True
            story.visits[moved.id] = Visit(start)
            booked.appointment_id, booked.start, booked.rescheduled = moved.id, start, True
            booked.treatment, booked.value_cents = treatment, value


def _appointment(
    conversation: Conversation,
    treatment: str,
    value: int | None,
    start: datetime,
    replaces: int | None,
) -> Appointment:
    return Appointment(
        location_id=conversation.location_id,
        patient_id=conversation.patient_id,
        conversation_id=conversation.id,
        service=treatment,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        status="booked",
        source="bot",
        value_cents=value,
        rescheduled_from_id=replaces,
    )


def read(sessions: sessionmaker[Session], locations: Locations, location: Location) -> Funnel:
    return load_report(sessions, locations, [location], DAY, DAY, now=NOW).total


def check(f: Funnel, story: Story) -> None:
    made = list(story.bookings.values())
    standing = [b for b in made if not b.cancelled]
    dated = [b for b in standing if b.start is not None]
    assert f.booked == len(made)
    assert f.booked == f.cancelled + f.still_booked
    assert f.still_booked == f.kept + f.upcoming + f.booked_time_unknown
    assert f.cancelled == len(made) - len(standing)
    assert f.kept == sum(1 for b in dated if b.start is not None and b.start <= NOW)
    assert f.upcoming == len(dated) - f.kept
    assert f.booked_time_unknown == len(standing) - len(dated)
    assert f.rebooked == sum(1 for b in standing if b.rescheduled)
    assert f.rebooked <= f.still_booked
    assert f.booked_by["bot"] + f.booked_by["staff"] == f.booked
    assert f.revenue_cents == sum(b.worth for b in standing)
    assert f.cancelled_revenue_cents == sum(b.worth for b in made if b.cancelled)
    unpriced = [b for b in standing if b.value_cents is None and TREATMENTS[b.treatment] is None]
    assert f.booked_unpriced == len(unpriced)
    assert f.lost == len(story.lost)


def check_retention(
    sessions: sessionmaker[Session], locations: Locations, location: Location, story: Story
) -> None:
    """Keeping the booking adds up: every appointment starting in the period ends in
    exactly one of cancelled, rescheduled, no-show, kept or upcoming."""
    since, until = (NOW - timedelta(days=6)).date(), (NOW + timedelta(days=8)).date()
    k = load_report(sessions, locations, [location], since, until, now=NOW).retention
    visits = list(story.visits.values())
    standing = [v for v in visits if not v.cancelled]
    assert k.appointments == len(visits)
    assert k.appointments == k.cancelled + k.rescheduled + k.no_shows + k.kept + k.upcoming
    assert k.rescheduled == sum(v.replaced for v in visits)
    assert k.cancelled == sum(v.cancelled and not v.replaced for v in visits)
    assert k.no_shows == sum(v.no_show for v in standing)
    assert k.kept == sum(v.start <= NOW and not v.no_show for v in standing)
    assert k.upcoming == sum(v.start > NOW for v in standing)
    assert k.confirmed == sum(v.confirmed for v in standing)
    assert k.reminded == sum(v.reminded > 0 for v in visits)
    assert k.reminders_sent == sum(v.reminded for v in visits)
    assert k.reminded_confirmed == sum(v.confirmed and v.reminded > 0 for v in standing)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(story_steps=steps)
def test_counts_add_up_after_every_step(
    sessions: sessionmaker[Session], locations: Locations, story_steps: list[Step]
) -> None:
    location = locations.get(DOWNTOWN)
    assert location is not None
    story = fresh_story(sessions, locations)
    for step in story_steps:
        apply(sessions, story, step)
        check(read(sessions, locations, location), story)
        check_retention(sessions, locations, location, story)
    incremental = read(sessions, locations, location)
    text = "".join(stream_calls_csv(sessions, [location], DAY, DAY, now=NOW))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sum(int(r["revenue_cents"] or 0) for r in rows) == incremental.revenue_cents
    assert sum(r["booking"] == "cancelled" for r in rows) == incremental.cancelled
    assert sum(r["booking"] == "kept" for r in rows) == incremental.kept
    rollup.rebuild(sessions, locations)
    assert read(sessions, locations, location) == incremental
