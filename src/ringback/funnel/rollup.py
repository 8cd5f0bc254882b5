"""The funnel's rollups: what one local day of one location's missed calls adds up to, and
keeping that up to date as calls, conversations and texts change.

How it stays correct:

* The rollup of a (location, local day) is a pure function of the rows behind it
  (:func:`recompute_days`), so it can always be recomputed, and a full rebuild gives the
  same numbers as the incremental path.
* The domain code says what it touched: :func:`call_changed` (screening),
  :func:`conversation_changed` (a reply, qualified, handoff, close),
  :func:`appointment_changed` (booked, cancelled, rescheduled: the booking's outcome) and
  :func:`message_changed` (a text-back or reply sent or delivered). These only note the
  row in the session; when the transaction commits, the notes are resolved to the
  (location, UTC day) of the missed calls behind them and upserted into ``funnel_dirty``,
  in the same transaction as the change itself. A rolled-back change marks nothing.
* Readers call :func:`refresh` first: it claims dirty marks (deleting them, which locks
  them until it commits), recomputes their days from the rows, and commits. A change that
  commits while a refresh runs re-marks its day after the refresh's commit (its upsert
  waits on the claimed row), so it is picked up by the next refresh, never lost.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session, sessionmaker

from ringback.config import Location, Locations
from ringback.db import transaction
from ringback.funnel import queries
from ringback.funnel.figures import Histogram
from ringback.funnel.queries import CallFacts, RollupRows
from ringback.logs import log_event
from ringback.models import (
    FUNNEL_BUCKETS,
    FUNNEL_DAILY_COUNTERS,
    FUNNEL_HOURS,
    FUNNEL_SCREENED_OUT,
    FUNNEL_VARIANT_COUNTERS,
    Appointment,
    Call,
    Conversation,
    Message,
)

log = logging.getLogger(__name__)

DELIVERED = frozenset({"delivered", "read"})
_NOTES = "ringback.funnel.changed"
# Dirty marks claimed and recomputed per transaction.
REFRESH_BATCH = 64


# --- what one day adds up to -------------------------------------------------------------------


@dataclass
class DayRollup:
    """The counters of one (location, local day), before they become rows."""

    location_id: str
    day: date
    daily: dict[str, dict[str, int]] = field(default_factory=dict)
    variants: dict[str, dict[str, int]] = field(default_factory=dict)
    latencies: dict[str, list[int]] = field(default_factory=lambda: {"textback": [], "reply": []})
    bookings: dict[tuple[str, str, str], list[int]] = field(default_factory=dict)
    starts: dict[datetime, int] = field(default_factory=dict)

    def rows(self) -> RollupRows:
        weekday = self.day.weekday()
        base = {"location_id": self.location_id, "day": self.day}
        latency = []
        for kind, values in self.latencies.items():
            if not values:
                continue
            histogram = Histogram.of(values)
            latency.append(
                {
                    **base,
                    "kind": kind,
                    "n": histogram.n,
                    "sum_ms": histogram.sum_ms,
                    "max_ms": histogram.max_ms,
                    **dict(zip(FUNNEL_BUCKETS, histogram.counts, strict=True)),
                }
            )
        return RollupRows(
            daily=[
                {**base, "miss_reason": reason, "weekday": weekday, **counters}
                for reason, counters in sorted(self.daily.items())
            ],
            variants=[
                {**base, "variant": variant, **counters}
                for variant, counters in sorted(self.variants.items())
            ],
            latency=latency,
            bookings=[
                {
                    **base,
                    "miss_reason": reason,
                    "variant": variant,
                    "treatment": treatment,
                    **dict(zip(queries.BOOKING_SUMS, counters, strict=True)),
                }
                for (reason, variant, treatment), counters in sorted(self.bookings.items())
            ],
            starts=[
                {**base, "starts_at": starts_at, "booked": booked}
                for starts_at, booked in sorted(self.starts.items())
            ],
        )


@dataclass(frozen=True, slots=True)
class BookingOutcome:
    """What became of a missed call's booking, from the appointments its thread booked.

    ``cancelled``: every appointment it booked is cancelled and none replaced it.
    ``rebooked``: still booked, at a time the patient (or staff) moved it to; one booking.
    ``starts_at``: when the (first) appointment still booked starts; None when cancelled or
    when there is no appointment (staff marked it booked). ``value_cents`` and ``treatment``
    are the current appointment's (staff's entry without one); None prices it from the list.
    """

    cancelled: bool
    rebooked: bool
    starts_at: datetime | None
    value_cents: int | None
    treatment: str | None


def booking_outcome(facts: CallFacts) -> BookingOutcome:
    """The outcome of a booked call (one whose conversation closed as booked)."""
    if not facts.bookings:
        return BookingOutcome(False, False, None, facts.booked_value_cents, facts.treatment)
    live = [b for b in facts.bookings if b.status == "booked"]
    counted = live or list(facts.bookings)
    values = [b.value_cents for b in counted if b.value_cents is not None]
    value = sum(values) if values else None
    if facts.booked_by == "staff" and facts.booked_value_cents is not None:
        value = facts.booked_value_cents  # what staff entered wins, as it always has
    return BookingOutcome(
        cancelled=not live,
        rebooked=any(b.rescheduled for b in live),
        starts_at=min((b.starts_at for b in live), default=None),
        value_cents=value,
        treatment=counted[0].service or facts.treatment,
    )


def add_call(
    rollup: DayRollup, facts: CallFacts, zone: ZoneInfo, replies_ms: Sequence[int] = ()
) -> None:
    """Count one missed call (and what followed it) into its day's rollup."""
    reason = facts.miss_reason or ""
    counters = rollup.daily.get(reason)
    if counters is None:
        counters = rollup.daily[reason] = dict.fromkeys((*FUNNEL_DAILY_COUNTERS, *FUNNEL_HOURS), 0)

    def bump(name: str, condition: object = True) -> None:
        if condition:
            counters[name] += 1

    bump("missed")
    bump(FUNNEL_HOURS[facts.missed_at.astimezone(zone).hour])
    screening = facts.screening
    if screening is None:
        bump("pending")
        return
    if screening in FUNNEL_SCREENED_OUT:
        bump("screened_out")
        bump(f"screened_{screening}")
        return
    if screening == "joined_conversation":
        bump("joined")
        return
    if screening not in queries.OPENING_SCREENINGS:
        bump("screened_out")
        bump("screened_other")
        return
    bump("to_text")
    if not facts.opened:
        return
    texted = facts.textback_sent_at is not None
    replied = facts.first_reply_at is not None
    qualified = facts.qualified_at is not None
    booked = queries.was_booked(facts)
    bump("texted", texted)
    bump("delivered", texted and facts.textback_status in DELIVERED)
    bump("replied", replied)
    bump("qualified", qualified)
    outcome = booking_outcome(facts) if booked else None
    if outcome is not None:
        who = facts.booked_by if facts.booked_by in ("bot", "page", "staff") else "other"
        bump(f"booked_{who}")
        bump("cancelled", outcome.cancelled)
        bump("rebooked", outcome.rebooked)
    bump("handoffs", facts.handed_off_at is not None)
    bump("urgent", facts.urgent_at is not None)
    bump("opted_out", facts.close_reason == "opted_out")
    bump("wrong_number", facts.close_reason == "wrong_number")
    bump("no_reply", facts.close_reason == "no_reply")
    bump("lost", facts.close_reason == "lost")
    bump("resolved", facts.close_reason == "resolved")
    if facts.textback_sent_at is not None:
        trigger = facts.textback_trigger_at or facts.missed_at
        rollup.latencies["textback"].append(queries.latency_ms(trigger, facts.textback_sent_at))
    rollup.latencies["reply"].extend(replies_ms)
    variant = facts.variant or ""
    if screening == "texted" and texted:
        v = rollup.variants.setdefault(variant, dict.fromkeys(FUNNEL_VARIANT_COUNTERS, 0))
        v["texted"] += 1
        v["replied"] += replied
        v["qualified"] += qualified
        v["booked"] += booked
    if outcome is not None:
        key = (reason, variant if screening == "texted" else "", outcome.treatment or "")
        # booked, valued, value_cents, then the same for the cancelled ones (BOOKING_SUMS).
        entry = rollup.bookings.setdefault(key, [0] * len(queries.BOOKING_SUMS))
        for offset in (0, 3) if outcome.cancelled else (0,):
            entry[offset] += 1
            if outcome.value_cents is not None:
                entry[offset + 1] += 1
                entry[offset + 2] += outcome.value_cents
        if outcome.starts_at is not None:
            rollup.starts[outcome.starts_at] = rollup.starts.get(outcome.starts_at, 0) + 1


def local_day(moment: datetime, zone: ZoneInfo) -> date:
    return moment.astimezone(zone).date()


def day_window(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC instants bracketing a local day, with a margin (callers filter by local date):
    midnight can be skipped or repeated by a DST change in some zones."""
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC) - timedelta(hours=3)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end + timedelta(hours=3)


def recompute_days(session: Session, days: Iterable[tuple[Location, date]]) -> int:
    """Recompute (location, local day)s from the rows and store them; returns how many.

    Per batch of days: one query for their calls, one for their bots' reply times, then
    the rollup rows swapped, so the cost barely grows with the number of days changed.
    """
    wanted = sorted({(location.id, day): location for location, day in days}.items())
    for i in range(0, len(wanted), REFRESH_BATCH):
        _recompute(session, wanted[i : i + REFRESH_BATCH])
    return len(wanted)


def _recompute(session: Session, wanted: list[tuple[tuple[str, date], Location]]) -> None:
    by_id = {location.id: location for _, location in wanted}
    windows = [(location.id, *day_window(day, location.zone)) for (_, day), location in wanted]
    facts = queries.call_facts(session, windows)
    replies = queries.reply_latencies(
        session, [f.conversation_id for f in facts if f.opened and f.conversation_id is not None]
    )
    rollups = {key: DayRollup(*key) for key, _ in wanted}
    for item in facts:
        zone = by_id[item.location_id].zone
        rollup = rollups.get((item.location_id, local_day(item.missed_at, zone)))
        if rollup is not None:
            answers = replies.get(item.conversation_id or 0, []) if item.opened else []
            add_call(rollup, item, zone, answers)
    queries.replace_days(
        session, [key for key, _ in wanted], _merge(r.rows() for r in rollups.values())
    )


def _merge(parts: Iterable[RollupRows]) -> RollupRows:
    merged = RollupRows([], [], [], [], [])
    for rows in parts:
        merged.daily.extend(rows.daily)
        merged.variants.extend(rows.variants)
        merged.latency.extend(rows.latency)
        merged.bookings.extend(rows.bookings)
        merged.starts.extend(rows.starts)
    return merged


def hour_of(moment: datetime) -> datetime:
    """The UTC hour a moment falls in: the key of ``funnel_dirty``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def local_days_of(utc_hour: datetime, zone: ZoneInfo) -> set[date]:
    """The local days that overlap one UTC hour (one, or two in a zone whose offset is not
    a whole number of hours)."""
    last = utc_hour + timedelta(hours=1) - timedelta(microseconds=1)
    return {local_day(utc_hour, zone), local_day(last, zone)}


# --- noting what changed ---------------------------------------------------------------------


@dataclass
class _Notes:
    hours: set[tuple[str, datetime]] = field(default_factory=set)
    call_ids: set[int] = field(default_factory=set)
    conversation_ids: set[int] = field(default_factory=set)
    appointment_ids: set[int] = field(default_factory=set)
    unflushed: list[Any] = field(default_factory=list)
    # Conversations opened in this transaction, with the one call (hour) behind each.
    opened: dict[int, tuple[str, datetime]] = field(default_factory=dict)


def _notes(session: Session) -> _Notes:
    notes: _Notes | None = session.info.get(_NOTES)
    if notes is None:
        notes = session.info[_NOTES] = _Notes()
    return notes


def call_changed(call: Call) -> None:
    """A missed call was screened (or otherwise changed): its day needs recomputing."""
    session = object_session(call)
    if session is None:
        return
    if call.missed_at is not None:
        _notes(session).hours.add((call.location_id, hour_of(call.missed_at)))
    elif call.id is not None:
        _notes(session).call_ids.add(call.id)


def conversation_changed(conversation: Conversation) -> None:
    """A conversation moved (reply, qualified, handoff, close): its calls' days."""
    session = object_session(conversation)
    if session is None:
        return
    if conversation.id is None:
        _notes(session).unflushed.append(conversation)
    else:
        _notes(session).conversation_ids.add(conversation.id)


def conversation_opened(conversation: Conversation, call: Call) -> None:
    """``call`` opened ``conversation`` in this transaction. Until it commits, that call is
    the thread's only one, so the thread's days are known without looking its calls up."""
    session = object_session(conversation)
    if session is None or call.missed_at is None:
        return
    _notes(session).opened[conversation.id] = (call.location_id, hour_of(call.missed_at))


def appointment_changed(appointment: Appointment) -> None:
    """An appointment was booked, cancelled or moved (by text, by staff, on the booking page,
    by an import): the day of the missed call whose booking it is, or replaced, is stale."""
    session = object_session(appointment)
    if session is None:
        return
    if appointment.id is None:
        session.flush([appointment])
    _notes(session).appointment_ids.add(appointment.id)


def message_changed(message: Message) -> None:
    """A text-back or bot reply was sent or its delivery status moved."""
    if message.kind not in ("textback", "reply"):
        return
    session = object_session(message)
    if session is None:
        return
    if message.call_id is not None:
        _notes(session).call_ids.add(message.call_id)
    elif message.conversation_id is not None:
        _notes(session).conversation_ids.add(message.conversation_id)


@event.listens_for(Session, "before_commit")
def _mark_dirty_days(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint: the outer commit marks
    notes: _Notes | None = session.info.pop(_NOTES, None)
    if notes is None:
        return
    conversation_ids = set(notes.conversation_ids)
    conversation_ids.update(c.id for c in notes.unflushed if c.id is not None)
    conversation_ids |= queries.appointment_threads(session, notes.appointment_ids)
    hours = set(notes.hours)
    for conversation_id, hour in notes.opened.items():
        conversation_ids.discard(conversation_id)
        hours.add(hour)
    for location_id, missed_at in queries.cohort_moments(session, notes.call_ids, conversation_ids):
        hours.add((location_id, hour_of(missed_at)))
    queries.mark_dirty(session, hours, datetime.now(UTC))


@event.listens_for(Session, "after_rollback")
def _forget_notes(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_NOTES, None)


# --- bringing rollups up to date ---------------------------------------------------------------


def refresh(sessions: sessionmaker[Session], locations: Locations) -> int:
    """Recompute every day marked dirty; returns how many (location, local day)s it did."""
    with sessions() as session:
        keys = queries.dirty_keys(session)
    recomputed = 0
    for i in range(0, len(keys), REFRESH_BATCH):
        with transaction(sessions) as session:
            queries.lock_refresh(session)
            claimed = queries.claim_dirty(session, keys[i : i + REFRESH_BATCH])
            days = [
                (location, day)
                for location_id, hour in claimed
                if (location := locations.get(location_id)) is not None  # else: not shown
                for day in local_days_of(hour, location.zone)
            ]
            recomputed += recompute_days(session, days)
    if recomputed:
        log_event(log, "funnel.refreshed", days=recomputed)
    return recomputed


def rebuild(sessions: sessionmaker[Session], locations: Locations) -> int:
    """Throw the rollups away and recompute them from the rows (after an import, say)."""
    days: set[tuple[str, date]] = set()
    with transaction(sessions) as session:
        queries.lock_refresh(session)
        queries.clear_rollups(session)
        queries.clear_dirty(session)
        for location_id, missed_at in queries.missed_call_moments(session):
            location = locations.get(location_id)
            if location is not None:
                days.add((location_id, local_day(missed_at, location.zone)))
    ordered = [(location, day) for lid, day in sorted(days) if (location := locations.get(lid))]
    done = 0
    for i in range(0, len(ordered), REFRESH_BATCH):
        with transaction(sessions) as session:
            queries.lock_refresh(session)
            done += recompute_days(session, ordered[i : i + REFRESH_BATCH])
    return done


def rollups_for(
    location: Location, facts: Iterable[CallFacts], replies_ms: dict[int, list[int]]
) -> RollupRows:
    """Rollup rows for any number of one location's calls (the demo seeder's path)."""
    per_day: dict[date, DayRollup] = {}
    zone = location.zone
    for item in facts:
        day = local_day(item.missed_at, zone)
        rollup = per_day.get(day)
        if rollup is None:
            rollup = per_day[day] = DayRollup(location.id, day)
        replies = replies_ms.get(item.conversation_id or 0, []) if item.opened else []
        add_call(rollup, item, zone, replies)
    return _merge(rollup.rows() for rollup in per_day.values())
