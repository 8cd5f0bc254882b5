"""``ringback report``, ``ringback export-calls`` and ``ringback seed-demo-data``.

Registered on the main command by :func:`register`. Imports of the database stack happen
inside the commands, so ``ringback --help`` stays fast.
"""

from __future__ import annotations

import csv
import json
import sys
import textwrap
import time
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ringback.cli.support import fail, load_config, open_database
from ringback.config import Location, Locations

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from ringback.funnel.figures import Report


class Format(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Locations file (default: $RINGBACK_CONFIG).")
]
LocationOption = Annotated[
    str | None, typer.Option("--location", "-l", help="Only this location id (default: all).")
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="First local day, YYYY-MM-DD (default: 30 days up to --until)."),
]
UntilOption = Annotated[
    str | None, typer.Option(help="Last local day, YYYY-MM-DD, inclusive (default: today).")
]


def _database(config: Path | None) -> tuple[Locations, sessionmaker[Session]]:
    settings, locations = load_config(config, configure_logs=False)
    return locations, open_database(settings)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise fail(f"{option}: expected a date like 2026-11-24, got {value!r}") from None


def _scope(
    locations: Locations, location: str | None, since: str | None, until: str | None
) -> tuple[list[Location], date, date]:
    from ringback.funnel.report import BadRange, resolve_range

    if location is not None:
        found = locations.get(location)
        if found is None:
            known = ", ".join(loc.id for loc in locations)
            raise fail(f"--location: no location {location!r} (known: {known})")
        chosen = [found]
    else:
        chosen = list(locations)
    today = datetime.now(chosen[0].zone).date()
    try:
        start, end = resolve_range(_day(since, "--since"), _day(until, "--until"), today)
    except BadRange as exc:
        raise fail(f"--{exc.field}: {exc.problem}") from None
    return chosen, start, end


def report(
    location: LocationOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    format: Annotated[Format, typer.Option("--format", "-f", help="Output format.")] = Format.table,
    rebuild: Annotated[
        bool, typer.Option(help="Recompute every rollup from the calls first (after an import).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """The recovery funnel, why calls were missed, speed-to-lead and template results."""
    from ringback.funnel import rollup
    from ringback.funnel.report import load_report, report_json

    locations, sessions = _database(config)
    chosen, start, end = _scope(locations, location, since, until)
    if rebuild:
        started = time.monotonic()
        days = rollup.rebuild(sessions, locations)
        typer.echo(f"rebuilt {days} day(s) in {time.monotonic() - started:.1f} s", err=True)
    result = load_report(sessions, locations, chosen, start, end, now=datetime.now(UTC))
    if format is Format.json:
        typer.echo(json.dumps(report_json(result), indent=2))
    elif format is Format.csv:
        _report_csv(result)
    else:
        typer.echo(render_table(result, {loc.id: loc for loc in locations}))


_CSV_FIELDS = (
    "missed",
    "screened_out",
    "pending",
    "recoverable",
    "joined_conversation",
    "to_text",
    "texted",
    "delivered",
    "replied",
    "qualified",
    "booked",
    "cancelled",
    "still_booked",
    "kept",
    "upcoming",
    "booked_time_unknown",
    "rebooked",
    "revenue_cents",
    "cancelled_revenue_cents",
    "handoffs",
    "urgent",
    "opted_out",
    "wrong_number",
    "no_reply",
)


def _report_csv(result: Report) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        ("location_id", "since", "until", *_CSV_FIELDS, "textback_p50_ms", "textback_p90_ms")
    )
    rows: list[tuple[str, Any, Any]] = [
        (loc.id, loc.funnel, loc.latency) for loc in result.locations
    ]
    if len(result.locations) > 1:
        rows.append(("all", result.total, result.latency))
    for name, funnel, latency in rows:
        writer.writerow(
            (
                name,
                result.since.isoformat(),
                result.until.isoformat(),
                *(getattr(funnel, f) for f in _CSV_FIELDS),
                latency.textback.p50_ms if latency.textback.p50_ms is not None else "",
                latency.textback.p90_ms if latency.textback.p90_ms is not None else "",
            )
        )


def render_table(result: Report, locations: dict[str, Location]) -> str:
    """The report as text for a terminal."""
    from ringback.funnel.figures import (
        BOOKED_BY_LABELS,
        SCREENED_OUT_LABELS,
        WEEKDAY_NAMES,
        duration,
        money,
        percent,
        ratio,
    )

    f = result.total
    names = ", ".join(locations[i].name for i in result.location_ids if i in locations)
    out = [
        f"Recovery report: {names}",
        f"{result.since.isoformat()} to {result.until.isoformat()} (each location's local days)",
        "",
        "Funnel",
    ]

    def step(label: str, count: int, of: int | None = None, note: str = "") -> None:
        share = f"  {percent(ratio(count, of)):>5} of previous" if of is not None else ""
        out.append(f"  {label:<34}{count:>9}{share}{note}")

    step("Missed calls", f.missed)
    step("Screened out (can't text)", f.screened_out, f.missed)
    for reason, count in sorted(f.screened_out_by_reason.items(), key=lambda kv: -kv[1]):
        out.append(f"      {SCREENED_OUT_LABELS.get(reason, reason):<30}{count:>9}")
    if f.pending:
        step("Not screened yet", f.pending, f.missed)
    step("Recoverable", f.recoverable, f.missed)
    step("Already in a conversation", f.joined_conversation, f.recoverable)
    step("To text back", f.to_text, f.recoverable)
    step("Texted back", f.texted, f.to_text)
    step("Delivered", f.delivered, f.texted)
    step("Replied", f.replied, f.texted)
    step("Qualified", f.qualified, f.replied)
    step("Booked", f.booked, f.replied)
    for who, count in f.booked_by.items():
        if count:
            out.append(f"      {BOOKED_BY_LABELS.get(who, 'Other'):<30}{count:>9}")
    step("Cancelled since", f.cancelled, f.booked)
    step("Still booked (not cancelled)", f.still_booked, f.booked)
    for label, count in (
        ("Kept (start passed)", f.kept),
        ("Upcoming", f.upcoming),
        ("No appointment time", f.booked_time_unknown),
        ("Rescheduled (counted once)", f.rebooked),
    ):
        if count:
            out.append(f"      {label:<30}{count:>9}")
    out.append(f"  {'Revenue recovered':<34}{money(f.revenue_cents):>9}  not counting cancelled")
    if f.cancelled_revenue_cents:
        out.append(f"      (cancelled bookings were worth {money(f.cancelled_revenue_cents)})")
    if f.booked_unpriced:
        out.append(f"      ({f.booked_unpriced} booking(s) with no price in the service list)")
    out.append(
        "  Kept = the appointment's start has passed and it was not cancelled "
        "(no-shows: see Keeping the booking)."
    )
    out += [
        "",
        f"  Handoffs to staff {f.handoffs} (urgent {f.urgent}) · opt-outs {f.opted_out} · "
        f"wrong numbers {f.wrong_number} · no reply {f.no_reply} · lost {f.lost}",
        "",
        "Why calls were missed",
        f"  {'Reason':<22}{'Missed':>8}{'Texted':>8}{'Replied':>9}{'Booked':>8}"
        f"{'Cancelled':>11}{'Recovered':>11}{'Revenue':>11}",
    ]
    for r in result.reasons:
        out.append(
            f"  {r.label:<22}{r.missed:>8}{r.texted:>8}{r.replied:>9}{r.booked:>8}"
            f"{r.cancelled:>11}{percent(r.recovery_rate):>11}{money(r.revenue_cents):>11}"
        )
    tb, rl = result.latency.textback, result.latency.reply
    out += [
        "",
        "Speed to lead (upper bounds at the histogram's resolution)",
        f"  {'':<34}{'n':>7}{'p50':>9}{'p90':>9}{'p99':>9}",
        f"  {'Missed call -> text-back sent':<34}{tb.n:>7}{duration(tb.p50_ms):>9}"
        f"{duration(tb.p90_ms):>9}{duration(tb.p99_ms):>9}",
        f"  {'Patient text -> bot answer sent':<34}{rl.n:>7}{duration(rl.p50_ms):>9}"
        f"{duration(rl.p90_ms):>9}{duration(rl.p99_ms):>9}",
    ]
    if result.heatmap.peak_weekday is not None and result.heatmap.peak_hour is not None:
        out += [
            "",
            f"Busiest hour for misses: {WEEKDAY_NAMES[result.heatmap.peak_weekday]} "
            f"{result.heatmap.peak_hour:02d}:00 local ({result.heatmap.peak_count} calls)",
        ]
    if result.variants.variants:
        out += ["", "Text-back templates (95% intervals)"]
        for v in result.variants.variants:
            reply = (
                f"{percent(v.reply_rate, 1)} [{percent(v.reply_interval.low, 1)}-"
                f"{percent(v.reply_interval.high, 1)}]"
                if v.reply_interval
                else "–"
            )
            book = (
                f"{percent(v.booking_rate, 1)} [{percent(v.booking_interval.low, 1)}-"
                f"{percent(v.booking_interval.high, 1)}]"
                if v.booking_interval
                else "–"
            )
            out.append(f"  {v.variant:<6} texted {v.texted:>7}  replied {reply:<24} booked {book}")
        for c in result.variants.comparisons:
            out.append(f"  {c.verdict}")
    if len(result.locations) > 1:
        out += [
            "",
            "By location",
            f"  {'Location':<28}{'Missed':>8}{'Texted':>8}{'Replied':>9}{'Booked':>8}"
            f"{'Cancelled':>11}{'Revenue':>12}{'p50 text':>10}",
        ]
        for loc in result.locations:
            lf = loc.funnel
            out.append(
                f"  {loc.name[:27]:<28}{lf.missed:>8}{lf.texted:>8}{lf.replied:>9}"
                f"{lf.booked:>8}{lf.cancelled:>11}{money(lf.revenue_cents):>12}"
                f"{duration(loc.latency.textback.p50_ms):>10}"
            )
    k = result.retention
    out += [
        "",
        "Keeping the booking (appointments starting in the period)",
        f"  {'Appointments':<34}{k.appointments:>9}",
        f"  {'Reminded':<34}{k.reminded:>9}  ({k.reminders_sent} reminders sent)",
        f"  {'Confirmed by the patient':<34}{k.confirmed:>9}",
        f"  {'Cancelled':<34}{k.cancelled:>9}",
        f"  {'Rescheduled':<34}{k.rescheduled:>9}",
        f"  {'No-shows':<34}{k.no_shows:>9}",
        f"  {'Kept (start passed, no no-show)':<34}{k.kept:>9}",
        f"  {'Upcoming':<34}{k.upcoming:>9}",
    ]
    w = result.refills
    out += [
        "",
        "Refilling and coming back",
        f"  {'Slots freed for the waitlist':<34}{w.slots_freed:>9}  ({w.waitlist_offers} offers)",
        f"  {'Refilled from the waitlist':<34}{w.refilled:>9}  ({money(w.refilled_revenue_cents)})",
        f"  {'On the waitlist now':<34}{w.waitlist_now:>9}",
        f"  {'Rebooking texts':<34}{w.rebook_texts:>9}  ({w.rebooked} rebooked)",
        f"  {'Review requests':<34}{w.review_requests:>9}",
    ]
    out += ["", "What this means"]
    for finding in result.diagnosis:
        mark = {"problem": "!", "good": "+"}.get(finding.kind, "-")
        out.append(f"  {mark} {finding.headline}")
        out += textwrap.wrap(
            finding.detail, width=96, initial_indent="    ", subsequent_indent="    "
        )
    if result.pending_changes:
        out.append(
            f"\n({result.pending_changes} change(s) arrived while this ran; run it again "
            "to include them)"
        )
    return "\n".join(out)


def export_calls(
    location: LocationOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    config: ConfigOption = None,
) -> None:
    """Write one CSV row per missed call and its outcome to standard output."""
    from ringback.funnel.export import stream_calls_csv

    locations, sessions = _database(config)
    chosen, start, end = _scope(locations, location, since, until)
    for chunk in stream_calls_csv(sessions, chosen, start, end, now=datetime.now(UTC)):
        sys.stdout.write(chunk)
    sys.stdout.flush()


def seed_demo_data(
    calls: Annotated[int, typer.Option("--calls", min=1, help="How many missed calls.")],
    locations_count: Annotated[
        int | None,
        typer.Option("--locations", min=1, help="Spread over the first M locations (default all)."),
    ] = None,
    days: Annotated[int, typer.Option(min=1, max=3 * 366, help="Days of history.")] = 90,
    seed: Annotated[int, typer.Option(help="Random seed, for the same history again.")] = 1,
    force: Annotated[
        bool, typer.Option(help="Add to a database that already has calls in it.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Fill the database with a realistic made-up history of missed calls (for demos and
    benchmarks): screening, conversations, text-backs with latencies, bookings."""
    from ringback.funnel.seed import SeedError, seed_history

    locations, sessions = _database(config)
    chosen = list(locations)[: locations_count or len(locations)]
    if locations_count and locations_count > len(locations):
        raise fail(
            f"--locations: the locations file has {len(locations)} location(s), "
            f"not {locations_count} (bench/funnel_report.py writes a file with 50)"
        )
    started = time.monotonic()
    try:
        summary = seed_history(
            sessions, chosen, calls=calls, days=days, seed=seed, allow_existing=force
        )
    except SeedError as exc:
        raise fail(str(exc)) from None
    elapsed = time.monotonic() - started
    typer.echo(
        f"seeded {summary.calls} missed calls, {summary.conversations} conversations and "
        f"{summary.messages} texts over {days} days at {len(chosen)} location(s) "
        f"in {elapsed:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Add the funnel's commands to the ``ringback`` command."""
    app.command("report")(report)
    app.command("export-calls")(export_calls)
    app.command("seed-demo-data")(seed_demo_data)
