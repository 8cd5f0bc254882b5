"""One CSV row per missed call and what became of it, streamed (``ringback export-calls`` and
the staff app's download). Times are in the location's zone, with their offset.

The booking columns, for a call whose conversation booked: ``booking`` is where it stands
now (``kept``: the appointment's start has passed and it was not cancelled; no-shows are
counted in the report's retention figures; ``upcoming``; ``booked``: marked booked with no
appointment time; ``cancelled``), ``appointment_at`` the current appointment's start,
``rescheduled`` whether it was moved, ``booking_value_cents`` its value (cancelled or not)
and ``revenue_cents`` what it counts towards revenue recovered (0 once cancelled): the
column sums to the report's.

Cells that a spreadsheet would run as a formula (starting ``=``, ``+``, ``-``, ``@``) are
prefixed with ``'``; phone numbers in E.164 are left as they are (a spreadsheet reads
them as numbers, never as formulas).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location
from ringback.funnel import queries, rollup
from ringback.funnel.queries import CallFacts

COLUMNS = (
    "location_id",
    "call_sid",
    "missed_at",
    "local_date",
    "weekday",
    "local_hour",
    "miss_reason",
    "screening",
    "caller",
    "conversation_id",
    "variant",
    "textback_status",
    "textback_latency_ms",
    "replied_at",
    "qualified",
    "treatment",
    "handoff_reason",
    "urgent",
    "outcome",
    "booked_by",
    "booking",
    "appointment_at",
    "rescheduled",
    "booking_value_cents",
    "revenue_cents",
)
PAGE = 5000
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value)
    if text.startswith(_FORMULA) and not _E164.match(text):
        return "'" + text
    return text


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).isoformat(timespec="seconds") if moment else ""


def call_row(facts: CallFacts, location: Location, now: datetime) -> list[str]:
    """The CSV cells for one missed call (``now`` decides kept from upcoming)."""
    zone = location.zone
    local = facts.missed_at.astimezone(zone)
    latency = None
    if facts.textback_sent_at is not None:
        trigger = facts.textback_trigger_at or facts.missed_at
        latency = queries.latency_ms(trigger, facts.textback_sent_at)
    value: int | None = None
    revenue: int | None = None
    standing: str | None = None
    appointment_at: str | None = None
    rescheduled: bool | None = None
    booked = facts.opened and queries.was_booked(facts)
    if booked:
        booking = rollup.booking_outcome(facts)
        service = location.service_named(booking.treatment) if booking.treatment else None
        value = (
            booking.value_cents
            if booking.value_cents is not None
            else service.price_cents
            if service
            else None
        )
        revenue = 0 if booking.cancelled else value
        if booking.cancelled:
            standing = "cancelled"
        elif booking.starts_at is None:
            standing = "booked"
        else:
            standing = "kept" if booking.starts_at <= now else "upcoming"
        appointment_at = _local(booking.starts_at, zone) or None
        rescheduled = any(b.rescheduled for b in facts.bookings)
    outcome = facts.close_reason or (facts.status if facts.opened else None)
    values: list[object] = [
        facts.location_id,
        facts.call_sid,
        local.isoformat(timespec="seconds"),
        local.date().isoformat(),
        local.strftime("%a"),
        local.hour,
        facts.miss_reason,
        facts.screening or "pending",
        facts.caller,
        facts.conversation_id,
        facts.variant,
        facts.textback_status,
        latency,
        _local(facts.first_reply_at, zone),
        facts.qualified_at is not None if facts.opened else None,
        facts.treatment,
        facts.handoff_reason,
        facts.urgent_at is not None if facts.opened else None,
        outcome,
        facts.booked_by if booked else None,
        standing,
        appointment_at,
        rescheduled,
        value,
        revenue,
    ]
    return [_cell(v) for v in values]


def _line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()


def stream_calls_csv(
    sessions: sessionmaker[Session],
    locations: Sequence[Location],
    since: date,
    until: date,
    *,
    now: datetime,
) -> Iterator[str]:
    """CSV text, a line at a time: the header, then every missed call of ``locations`` on
    local days ``since``..``until``, location by location, oldest first."""
    yield _line(COLUMNS)
    for location in locations:
        zone = location.zone
        start, _ = rollup.day_window(since, zone)
        _, end = rollup.day_window(until, zone)
        after: tuple[datetime, int] | None = None
        while True:
            with sessions() as session:
                page = queries.call_facts_page(session, location.id, start, end, after, PAGE)
            lines = [
                _line(call_row(facts, location, now))
                for facts in page
                if since <= rollup.local_day(facts.missed_at, zone) <= until
            ]
            if lines:
                yield "".join(lines)
            if len(page) < PAGE:
                break
            after = (page[-1].missed_at, page[-1].call_id)
