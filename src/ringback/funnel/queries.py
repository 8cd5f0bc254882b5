"""The funnel's database access, in one place: the per-call facts the rollups are computed
from, the rollups' writes and sums, and the list of days waiting to be recomputed.

Nothing here decides what a figure means (that is :mod:`ringback.funnel.rollup` and
:mod:`ringback.funnel.figures`); nothing here knows the web.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session, aliased

from ringback.db import upsert_insert
from ringback.models import (
    FUNNEL_BUCKETS,
    FUNNEL_DAILY_COUNTERS,
    FUNNEL_HOURS,
    FUNNEL_VARIANT_COUNTERS,
    Appointment,
    Call,
    Conversation,
    Message,
    funnel_booking_starts,
    funnel_bookings,
    funnel_daily,
    funnel_dirty,
    funnel_latency,
    funnel_variants,
)

ROLLUP_TABLES = (
    funnel_daily,
    funnel_variants,
    funnel_latency,
    funnel_bookings,
    funnel_booking_starts,
)
# Held (as a transaction-scoped advisory lock on PostgreSQL) while days are recomputed, so
# two readers refreshing at once cannot interleave their deletes and inserts.
REFRESH_LOCK = 0x52424E46  # "RBNF"
_CHUNK = 500
# Reschedules followed from one appointment to the next at most this many times (a guard
# against a cycle in bad data; a real chain is a handful long).
_MAX_RESCHEDULES = 50


@dataclass(frozen=True, slots=True)
class BookingChain:
    """One appointment a thread booked, as it stands now: the last appointment of the chain
    of reschedules that started with it (the appointment itself when never rescheduled)."""

    status: str  # booked | cancelled
    starts_at: datetime
    value_cents: int | None
    service: str
    rescheduled: bool


@dataclass(frozen=True, slots=True)
class CallFacts:
    """One missed call with what followed it: the row the rollups and the CSV are made of.

    The conversation's fields are filled only when this call's text-back opened it
    (``opened``); a call that joined someone's open conversation does not inherit it.
    """

    call_id: int
    call_sid: str
    location_id: str
    started_at: datetime
    missed_at: datetime
    miss_reason: str | None
    screening: str | None
    caller: str | None
    conversation_id: int | None
    opened: bool
    variant: str | None = None
    textback_status: str | None = None
    textback_sent_at: datetime | None = None
    textback_trigger_at: datetime | None = None
    status: str | None = None
    first_reply_at: datetime | None = None
    qualified_at: datetime | None = None
    handed_off_at: datetime | None = None
    handoff_reason: str | None = None
    urgent_at: datetime | None = None
    close_reason: str | None = None
    booked_by: str | None = None
    booked_value_cents: int | None = None
    treatment: str | None = None
    # The appointments the opened conversation booked, each as it stands now (empty when it
    # booked none, or staff marked it booked without one).
    bookings: tuple[BookingChain, ...] = ()


OPENING_SCREENINGS = ("texted", "appointment_textback")


def latency_ms(start: datetime, end: datetime) -> int:
    """Whole milliseconds from ``start`` to ``end`` (0 if the clocks disagree)."""
    return max(0, round((end - start).total_seconds() * 1000))


Window = tuple[str, datetime, datetime]  # location id, start <= missed_at < end


def _facts_statement(
    windows: Sequence[Window], after: tuple[datetime, int] | None = None
) -> Select[*tuple[Any, ...]]:
    textback = aliased(Message)
    statement: Select[*tuple[Any, ...]] = (
        select(
            Call.id,
            Call.call_sid,
            Call.location_id,
            Call.started_at,
            Call.missed_at,
            Call.miss_reason,
            Call.screening,
            func.coalesce(Call.from_number, Call.from_raw),
            Call.conversation_id,
            Conversation.variant,
            textback.status,
            textback.sent_at,
            textback.trigger_at,
            Conversation.status,
            Conversation.first_reply_at,
            Conversation.qualified_at,
            Conversation.handed_off_at,
            Conversation.handoff_reason,
            Conversation.urgent_at,
            Conversation.close_reason,
            Conversation.booked_by,
            Conversation.booked_value_cents,
            Conversation.treatment,
        )
        .outerjoin(Conversation, Conversation.id == Call.conversation_id)
        .outerjoin(textback, and_(textback.call_id == Call.id, textback.kind == "textback"))
        .where(
            Call.outcome == "missed",
            or_(
                *(
                    and_(
                        Call.location_id == location, Call.missed_at >= start, Call.missed_at < end
                    )
                    for location, start, end in windows
                )
            ),
        )
        .order_by(Call.missed_at, Call.id)
    )
    if after is not None:
        moment, call_id = after
        statement = statement.where(
            or_(Call.missed_at > moment, and_(Call.missed_at == moment, Call.id > call_id))
        )
    return statement


def _facts(row: Sequence[Any]) -> CallFacts:
    (call_id, sid, location_id, started, missed, reason, screening, caller, conv_id) = row[:9]
    opened = screening in OPENING_SCREENINGS and conv_id is not None
    if not opened:
        return CallFacts(
            call_id, sid, location_id, started, missed, reason, screening, caller, conv_id, False
        )
    return CallFacts(
        call_id, sid, location_id, started, missed, reason, screening, caller, conv_id, True,
        *row[9:],
    )  # fmt: skip


def call_facts(session: Session, windows: Sequence[Window]) -> list[CallFacts]:
    """The missed calls in any of the (location, start, end) windows, oldest first."""
    if not windows:
        return []
    return _with_bookings(
        session, [_facts(row) for row in session.execute(_facts_statement(windows))]
    )


def _with_bookings(session: Session, facts: list[CallFacts]) -> list[CallFacts]:
    booked = [f.conversation_id for f in facts if f.opened and was_booked(f)]
    chains = booking_chains(session, [c for c in booked if c is not None])
    if not chains:
        return facts
    return [
        replace(f, bookings=tuple(chains[f.conversation_id]))
        if f.opened and f.conversation_id in chains
        else f
        for f in facts
    ]


_CHAIN_COLUMNS = (
    Appointment.id,
    Appointment.status,
    Appointment.starts_at,
    Appointment.value_cents,
    Appointment.service,
)


def booking_chains(
    session: Session, conversation_ids: Iterable[int]
) -> dict[int, list[BookingChain]]:
    """Per conversation, the appointments it booked (held or lapsed holds never count), each
    followed through its reschedules to the one that stands now."""
    ids = sorted(set(conversation_ids))
    # Each original appointment's id -> (conversation, what it is now).
    now_is: dict[int, tuple[int, BookingChain]] = {}
    frontier: dict[int, int] = {}  # a cancelled appointment's id -> the original's id
    for i in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(Appointment.conversation_id, *_CHAIN_COLUMNS)
            .where(
                Appointment.conversation_id.in_(ids[i : i + _CHUNK]),
                Appointment.rescheduled_from_id.is_(None),
                Appointment.status.in_(("booked", "cancelled")),
            )
            .order_by(Appointment.id)
        )
        for conversation_id, appointment_id, status, starts_at, value, service in rows:
            if conversation_id is None:
                continue  # excluded by the query; here for the type checker
            now_is[appointment_id] = (
                conversation_id,
                BookingChain(status, starts_at, value, service, rescheduled=False),
            )
            if status == "cancelled":
                frontier[appointment_id] = appointment_id
    for _ in range(_MAX_RESCHEDULES):
        if not frontier:
            break
        replaced = sorted(frontier)
        found: dict[int, int] = {}
        for i in range(0, len(replaced), _CHUNK):
            rows = session.execute(
                select(Appointment.rescheduled_from_id, *_CHAIN_COLUMNS).where(
                    Appointment.rescheduled_from_id.in_(replaced[i : i + _CHUNK]),
                    Appointment.status.in_(("booked", "cancelled")),
                )
            )
            for old_id, appointment_id, status, starts_at, value, service in rows:
                if old_id is None:
                    continue  # excluded by the query; here for the type checker
                origin = frontier[old_id]
                conversation_id = now_is[origin][0]
                now_is[origin] = (
                    conversation_id,
                    BookingChain(status, starts_at, value, service, rescheduled=True),
                )
                if status == "cancelled":
                    found[appointment_id] = origin
        frontier = found
    out: dict[int, list[BookingChain]] = {}
    for conversation_id, chain in now_is.values():
        out.setdefault(conversation_id, []).append(chain)
    return out


def call_facts_page(
    session: Session,
    location_id: str,
    start: datetime,
    end: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[CallFacts]:
    """A page of :func:`call_facts` after the (missed_at, call id) ``after``, for streaming
    in short transactions (a long one would hold SQLite's write lock)."""
    statement = _facts_statement([(location_id, start, end)], after).limit(limit)
    return _with_bookings(session, [_facts(row) for row in session.execute(statement)])


def reply_latencies(session: Session, conversation_ids: Iterable[int]) -> dict[int, list[int]]:
    """Per conversation, the bot's sent replies: milliseconds from the patient's text."""
    ids = sorted(set(conversation_ids))
    out: dict[int, list[int]] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = session.execute(
            select(Message.conversation_id, Message.trigger_at, Message.sent_at).where(
                Message.conversation_id.in_(ids[i : i + _CHUNK]),
                Message.kind == "reply",
                Message.sent_at.is_not(None),
                Message.trigger_at.is_not(None),
            )
        )
        for conversation_id, trigger_at, sent_at in rows:
            if conversation_id is None or trigger_at is None or sent_at is None:
                continue  # excluded by the query; here for the type checker
            out.setdefault(conversation_id, []).append(latency_ms(trigger_at, sent_at))
    return out


# --- what changed: resolving touched rows to the days they count on ---------------------------


def cohort_moments(
    session: Session, call_ids: Iterable[int], conversation_ids: Iterable[int]
) -> list[tuple[str, datetime]]:
    """(location, missed_at) of the given calls, and of the calls of the given conversations."""
    out: list[tuple[str, datetime]] = []
    for column, ids in (
        (Call.id, sorted(set(call_ids))),
        (Call.conversation_id, sorted(set(conversation_ids))),
    ):
        for i in range(0, len(ids), _CHUNK):
            rows = session.execute(
                select(Call.location_id, Call.missed_at).where(
                    column.in_(ids[i : i + _CHUNK]),
                    Call.outcome == "missed",
                    Call.missed_at.is_not(None),
                )
            )
            out.extend((loc, missed_at) for loc, missed_at in rows if missed_at is not None)
    return out


def appointment_threads(session: Session, appointment_ids: Iterable[int]) -> set[int]:
    """The conversations that booked these appointments or the ones they replaced (a
    reschedule or a cancellation changes the outcome of the booking that started it)."""
    out: set[int] = set()
    seen: set[int] = set()
    todo = set(appointment_ids)
    for _ in range(_MAX_RESCHEDULES):
        todo -= seen
        if not todo:
            break
        seen |= todo
        ids = sorted(todo)
        todo = set()
        for i in range(0, len(ids), _CHUNK):
            rows = session.execute(
                select(Appointment.conversation_id, Appointment.rescheduled_from_id).where(
                    Appointment.id.in_(ids[i : i + _CHUNK])
                )
            )
            for conversation_id, replaced_id in rows:
                if conversation_id is not None:
                    out.add(conversation_id)
                if replaced_id is not None:
                    todo.add(replaced_id)
    return out


def _upsert(session: Session, table: Table) -> Any:
    return upsert_insert(session.get_bind().dialect.name, table)


def mark_dirty(session: Session, keys: Iterable[tuple[str, datetime]], now: datetime) -> None:
    """Record that these (location, UTC hour)s need recomputing. Sorted, so that two
    transactions marking overlapping hours lock the rows in the same order."""
    values = [
        {"location_id": location_id, "utc_hour": hour, "marked_at": now}
        for location_id, hour in sorted(set(keys))
    ]
    for i in range(0, len(values), _CHUNK):
        stmt = _upsert(session, funnel_dirty).values(values[i : i + _CHUNK])
        # An update, not "do nothing": it waits for a refresh that holds the row, so a
        # change committed after the refresh read the data is never lost.
        stmt = stmt.on_conflict_do_update(
            index_elements=[funnel_dirty.c.location_id, funnel_dirty.c.utc_hour],
            set_={"marked_at": stmt.excluded.marked_at},
        )
        session.execute(stmt)


def dirty_keys(session: Session) -> list[tuple[str, datetime]]:
    rows = session.execute(
        select(funnel_dirty.c.location_id, funnel_dirty.c.utc_hour).order_by(
            funnel_dirty.c.location_id, funnel_dirty.c.utc_hour
        )
    )
    return [(location_id, hour) for location_id, hour in rows]


def dirty_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(funnel_dirty)) or 0)


def lock_refresh(session: Session) -> None:
    """Serialize refreshes (SQLite already has: its transactions take the write lock)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": REFRESH_LOCK})


def claim_dirty(
    session: Session, keys: Sequence[tuple[str, datetime]]
) -> list[tuple[str, datetime]]:
    """Delete these dirty marks, returning those that were still there (not claimed by a
    refresh that ran meanwhile). The deleted rows stay locked until this commits."""
    if not keys:
        return []
    t = funnel_dirty
    rows = session.execute(
        delete(t)
        .where(or_(*(and_(t.c.location_id == loc, t.c.utc_hour == hour) for loc, hour in keys)))
        .returning(t.c.location_id, t.c.utc_hour)
    )
    return [(location_id, hour) for location_id, hour in rows]


def missed_call_moments(session: Session) -> Iterator[tuple[str, datetime]]:
    """Every missed call's (location, missed_at), streamed: for a full rebuild."""
    result = session.execute(
        select(Call.location_id, Call.missed_at)
        .where(Call.outcome == "missed", Call.missed_at.is_not(None))
        .execution_options(stream_results=True, yield_per=10_000)
    )
    for location_id, missed_at in result:
        if missed_at is not None:
            yield location_id, missed_at


def clear_rollups(session: Session) -> None:
    for table in ROLLUP_TABLES:
        session.execute(delete(table))


def clear_dirty(session: Session) -> None:
    session.execute(delete(funnel_dirty))


# --- rollup writes ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollupRows:
    """The rows of the rollup tables for some (location, day)s."""

    daily: list[dict[str, Any]]
    variants: list[dict[str, Any]]
    latency: list[dict[str, Any]]
    bookings: list[dict[str, Any]]
    starts: list[dict[str, Any]]

    def by_table(self) -> list[tuple[Table, list[dict[str, Any]]]]:
        return [
            (funnel_daily, self.daily),
            (funnel_variants, self.variants),
            (funnel_latency, self.latency),
            (funnel_bookings, self.bookings),
            (funnel_booking_starts, self.starts),
        ]


def replace_days(session: Session, days: Sequence[tuple[str, date]], rows: RollupRows) -> None:
    """Swap the rollup rows of these (location, local day)s for freshly computed ones."""
    for table, values in rows.by_table():
        for i in range(0, len(days), _CHUNK // 4):
            chunk = days[i : i + _CHUNK // 4]
            session.execute(
                delete(table).where(
                    or_(*(and_(table.c.location_id == loc, table.c.day == d) for loc, d in chunk))
                )
            )
        if values:
            session.execute(insert(table), values)


# --- rollup sums, for the report, the dashboard and /metrics --------------------------------


def _in_range(
    table: Table, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [table.c.location_id.in_(list(location_ids))]
    if since is not None:
        where.append(table.c.day >= since)
    if until is not None:
        where.append(table.c.day <= until)
    return where


def _sums(table: Table, names: Iterable[str]) -> list[Any]:
    return [func.coalesce(func.sum(table.c[name]), 0).label(name) for name in names]


def _as_dicts(rows: Iterable[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in rows]


def daily_by_location_reason(
    session: Session, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[dict[str, Any]]:
    """Funnel counters summed per location and miss reason."""
    t = funnel_daily
    stmt = (
        select(t.c.location_id, t.c.miss_reason, *_sums(t, FUNNEL_DAILY_COUNTERS))
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.location_id, t.c.miss_reason)
    )
    return _as_dicts(session.execute(stmt))


TREND_COUNTERS = (
    "missed",
    "texted",
    "replied",
    "booked_bot",
    "booked_page",
    "booked_staff",
    "booked_other",
    "cancelled",
)


def daily_by_day(
    session: Session, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[dict[str, Any]]:
    """Per local day: the trend counters and the misses by hour (for the heatmap)."""
    t = funnel_daily
    stmt = (
        select(t.c.day, *_sums(t, (*TREND_COUNTERS, *FUNNEL_HOURS)))
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.day)
        .order_by(t.c.day)
    )
    return _as_dicts(session.execute(stmt))


def variant_sums(
    session: Session, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[dict[str, Any]]:
    t = funnel_variants
    stmt = (
        select(t.c.variant, *_sums(t, FUNNEL_VARIANT_COUNTERS))
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.variant)
        .order_by(t.c.variant)
    )
    return _as_dicts(session.execute(stmt))


def latency_sums(
    session: Session, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[dict[str, Any]]:
    """Latency histograms summed per location and kind (textback | reply)."""
    t = funnel_latency
    stmt = (
        select(
            t.c.location_id,
            t.c.kind,
            *_sums(t, ("n", "sum_ms", *FUNNEL_BUCKETS)),
            func.coalesce(func.max(t.c.max_ms), 0).label("max_ms"),
        )
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.location_id, t.c.kind)
    )
    return _as_dicts(session.execute(stmt))


BOOKING_SUMS = (
    "booked",
    "valued",
    "value_cents",
    "cancelled",
    "cancelled_valued",
    "cancelled_value_cents",
)


def booking_sums(
    session: Session, location_ids: Sequence[str], since: date | None, until: date | None
) -> list[dict[str, Any]]:
    """Bookings per location, miss reason, variant and treatment, for pricing."""
    t = funnel_bookings
    stmt = (
        select(
            t.c.location_id,
            t.c.miss_reason,
            t.c.variant,
            t.c.treatment,
            *_sums(t, BOOKING_SUMS),
        )
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.location_id, t.c.miss_reason, t.c.variant, t.c.treatment)
    )
    return _as_dicts(session.execute(stmt))


def start_sums(
    session: Session,
    location_ids: Sequence[str],
    since: date | None,
    until: date | None,
    now: datetime,
) -> dict[str, tuple[int, int]]:
    """Per location: the bookings not cancelled that have an appointment time, and how many
    of those have started by ``now`` (kept)."""
    t = funnel_booking_starts
    started = func.coalesce(func.sum(case((t.c.starts_at <= now, t.c.booked), else_=0)), 0)
    stmt = (
        select(t.c.location_id, func.coalesce(func.sum(t.c.booked), 0), started)
        .where(*_in_range(t, location_ids, since, until))
        .group_by(t.c.location_id)
    )
    return {loc: (int(dated), int(kept)) for loc, dated, kept in session.execute(stmt)}


def was_booked(facts: CallFacts) -> bool:
    """The call's thread booked: it closed as booked, or it booked and the booking was
    cancelled since (by text in the same thread, which then closes as cancelled)."""
    return facts.close_reason == "booked" or (
        facts.close_reason == "cancelled" and facts.booked_by is not None
    )
