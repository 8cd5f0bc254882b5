"""Build the recovery report for some locations and a range of local days, from the rollups.

:func:`load_report` is the one entry point for every reader (the ``report`` command, the
JSON API, the dashboard): it brings the rollups up to date, sums them, prices bookings
from the locations' catalogues and words the diagnosis.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location, Locations
from ringback.funnel import queries, rollup
from ringback.funnel.figures import (
    MISS_REASON_LABELS,
    MISS_REASONS,
    DayFigures,
    Funnel,
    Histogram,
    Latency,
    LatencyStats,
    LocationFigures,
    Money,
    ReasonFigures,
    Report,
    Starts,
    Variants,
    compare_variants,
    diagnose,
    diagnose_refills,
    diagnose_retention,
    funnel_from,
    heatmap_of,
    priced,
    ratio,
    variant_figures,
)
from ringback.funnel.retention import refills, retention
from ringback.models import FUNNEL_BUCKETS, FUNNEL_DAILY_COUNTERS, FUNNEL_HOURS

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366


class BadRange(ValueError):
    """The date range cannot be reported on; the message names the parameter."""

    def __init__(self, field: str, problem: str, *, out_of_range: bool = False) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem
        # A real date no report can cover (the JSON API answers 400, not 422).
        self.out_of_range = out_of_range


# The days a report can cover: a range's start, end and local midnights in UTC must all
# stay inside Python's years 1..9999 (and so inside what the database can compare).
EARLIEST_DAY = date(2, 1, 1)
LATEST_DAY = date(9998, 12, 31)


def resolve_range(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """Fill in a missing end (today) or start (30 days up to the end), and check them."""
    for field, day in (("since", since), ("until", until)):
        if day is not None and not EARLIEST_DAY <= day <= LATEST_DAY:
            raise BadRange(
                field,
                f"expected a day between {EARLIEST_DAY.isoformat()} and "
                f"{LATEST_DAY.isoformat()}, got {day.isoformat()}",
                out_of_range=True,
            )
    end = until or today
    start = since or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise BadRange("since", f"{start.isoformat()} is after until {end.isoformat()}")
    if (end - start).days >= MAX_DAYS:
        raise BadRange("since", f"expected a range of at most {MAX_DAYS} days")
    return start, end


def _add(into: dict[str, int], row: dict[str, Any], names: Sequence[str]) -> None:
    for name in names:
        into[name] = into.get(name, 0) + int(row[name])


def _histogram(row: dict[str, Any]) -> Histogram:
    return Histogram(
        tuple(int(row[name]) for name in FUNNEL_BUCKETS), int(row["sum_ms"]), int(row["max_ms"])
    )


def _latency(rows: Sequence[dict[str, Any]]) -> Latency:
    totals = {"textback": Histogram(), "reply": Histogram()}
    for row in rows:
        if row["kind"] in totals:
            totals[row["kind"]] = totals[row["kind"]] + _histogram(row)
    return Latency(
        textback=LatencyStats.of(totals["textback"]), reply=LatencyStats.of(totals["reply"])
    )


def _booked(counters: dict[str, int]) -> int:
    return sum(counters.get(f"booked_{who}", 0) for who in ("bot", "page", "staff", "other"))


def build_report(
    session: Session,
    locations: Sequence[Location],
    since: date,
    until: date,
    *,
    now: datetime,
    pending_changes: int = 0,
) -> Report:
    """The report for ``locations`` over local days ``since``..``until`` (inclusive)."""
    ids = [location.id for location in locations]
    by_id = {location.id: location for location in locations}

    # Revenue: the known value (staff's entry, the appointment's), else the booked
    # treatment's price in that location's list; cancelled bookings apart.
    money: dict[tuple[str, ...], Money] = defaultdict(Money)
    for row in queries.booking_sums(session, ids, since, until):
        location = by_id[row["location_id"]]
        service = location.service_named(row["treatment"]) if row["treatment"] else None
        value = priced(
            {name: int(row[name]) for name in queries.BOOKING_SUMS},
            service.price_cents if service else None,
        )
        for key in (
            ("all",),
            ("location", row["location_id"]),
            ("reason", row["miss_reason"]),
            ("variant", row["variant"]),
        ):
            money[key] += value
    starts = queries.start_sums(session, ids, since, until, now)
    started = {
        location_id: Starts(dated=dated, kept=kept) for location_id, (dated, kept) in starts.items()
    }
    all_starts = Starts(
        dated=sum(s.dated for s in started.values()), kept=sum(s.kept for s in started.values())
    )

    per_location: dict[str, dict[str, int]] = {i: {} for i in ids}
    per_reason: dict[str, dict[str, int]] = defaultdict(dict)
    total: dict[str, int] = {}
    for row in queries.daily_by_location_reason(session, ids, since, until):
        _add(per_location[row["location_id"]], row, FUNNEL_DAILY_COUNTERS)
        _add(per_reason[row["miss_reason"]], row, FUNNEL_DAILY_COUNTERS)
        _add(total, row, FUNNEL_DAILY_COUNTERS)

    latency_rows = queries.latency_sums(session, ids, since, until)
    location_figures = [
        LocationFigures(
            id=location.id,
            name=location.name,
            timezone=location.timezone,
            funnel=funnel_from(
                per_location[location.id],
                money[("location", location.id)],
                started.get(location.id),
            ),
            latency=_latency([r for r in latency_rows if r["location_id"] == location.id]),
        )
        for location in locations
    ]

    order = {reason: i for i, reason in enumerate(MISS_REASONS)}
    reasons = []
    for reason in sorted(per_reason, key=lambda r: (order.get(r, len(order)), r)):
        c = per_reason[reason]
        funnel = funnel_from(c)
        booked = _booked(c)
        reasons.append(
            ReasonFigures(
                reason=reason,
                label=MISS_REASON_LABELS.get(reason, reason.replace("_", " ").capitalize()),
                missed=funnel.missed,
                recoverable=funnel.recoverable,
                texted=funnel.texted,
                replied=funnel.replied,
                booked=booked,
                cancelled=funnel.cancelled,
                revenue_cents=money[("reason", reason)].revenue_cents,
                recovery_rate=ratio(funnel.still_booked, funnel.missed),
                recovery_rate_of_recoverable=ratio(funnel.still_booked, funnel.recoverable),
            )
        )

    days = {row["day"]: row for row in queries.daily_by_day(session, ids, since, until)}
    daily = []
    grid = [[0] * 24 for _ in range(7)]
    for offset in range((until - since).days + 1):
        day = since + timedelta(days=offset)
        found = days.get(day)
        if found is None:
            daily.append(DayFigures(day=day, missed=0, texted=0, replied=0, booked=0))
            continue
        counters = {k: int(v) for k, v in found.items() if k != "day"}
        daily.append(
            DayFigures(
                day=day,
                missed=counters["missed"],
                texted=counters["texted"],
                replied=counters["replied"],
                booked=_booked(counters),
                cancelled=counters["cancelled"],
            )
        )
        for hour, name in enumerate(FUNNEL_HOURS):
            grid[day.weekday()][hour] += counters[name]
    heatmap = heatmap_of(grid)

    variant_list = [
        variant_figures(
            row["variant"] or "none", int(row["texted"]), int(row["replied"]), int(row["booked"])
        )
        for row in queries.variant_sums(session, ids, since, until)
        if int(row["texted"])
    ]
    variants = Variants(variants=variant_list, comparisons=compare_variants(variant_list))

    total_funnel: Funnel = funnel_from(total, money[("all",)], all_starts)
    kept = retention(session, locations, since, until, now)
    refilled = refills(session, locations, since, until)
    latency = _latency(latency_rows)
    return Report(
        since=since,
        until=until,
        generated_at=now,
        location_ids=ids,
        total=total_funnel,
        locations=location_figures,
        reasons=reasons,
        daily=daily,
        heatmap=heatmap,
        latency=latency,
        variants=variants,
        diagnosis=[
            *diagnose(total_funnel, reasons, heatmap, latency, variants),
            *diagnose_retention(kept),
            *diagnose_refills(refilled, kept),
        ],
        retention=kept,
        refills=refilled,
        pending_changes=pending_changes,
    )


def load_report(
    sessions: sessionmaker[Session],
    all_locations: Locations,
    locations: Sequence[Location],
    since: date,
    until: date,
    *,
    now: datetime,
) -> Report:
    """Bring the rollups up to date, then build the report (the readers' entry point)."""
    rollup.refresh(sessions, all_locations)
    with sessions() as session:
        return build_report(
            session,
            locations,
            since,
            until,
            now=now,
            pending_changes=queries.dirty_count(session),
        )


_REPORT = TypeAdapter(Report)


def report_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: the same shape from the CLI and the API."""
    data: dict[str, Any] = _REPORT.dump_python(report, mode="json")
    return data
