"""The staff app's recovery dashboard (``/staff/dashboard``) and the per-call CSV download
(``/staff/reports/calls.csv``). Both need a signed-in staff member and show only the
locations they may see; the figures come from :mod:`ringback.funnel.report`.

This module only speaks HTTP and HTML; the figures, charts and CSV rows are built by the
web-free modules beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.funnel import charts
from ringback.funnel.export import stream_calls_csv
from ringback.funnel.figures import (
    BOOKED_BY_LABELS,
    SCREENED_OUT_LABELS,
    WEEKDAY_NAMES,
    Report,
    duration,
    hour_range,
    money,
    percent,
    ratio,
)
from ringback.funnel.report import BadRange, load_report, resolve_range
from ringback.staff import inbox
from ringback.web import SignedIn, deps_of, staff_frame, staff_user

router = APIRouter(prefix="/staff", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]

PAGES = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)
PAGES.filters.update(
    percent=percent,
    money=money,
    # "1.2 s" must not break between the number and its unit.
    duration=lambda ms: duration(ms).replace(" ", "\u00a0"),
)
QUICK_RANGES = (("Last 7 days", 7), ("30 days", 30), ("90 days", 90), ("12 months", 365))


@dataclass(frozen=True)
class Scope:
    """What the viewer asked for, checked: the locations, and the local days."""

    visible: list[Location]
    chosen: list[Location]
    location: str | None
    since: date
    until: date


class ScopeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _scope(deps: Deps, user: SignedIn, location: str, since: str, until: str) -> Scope:
    visible = [loc for loc in deps.locations if user.can_see(loc.id)]
    if not visible:
        raise ScopeError(403, "Your account is not linked to any location yet; ask the owner.")
    chosen = visible
    if location:
        found = [loc for loc in visible if loc.id == location]
        if not found:  # unknown and not visible read the same
            raise ScopeError(404, f"location: no location {location!r} you can see")
        chosen = found
    days: dict[str, date | None] = {}
    for name, value in (("since", since), ("until", until)):
        try:
            days[name] = date.fromisoformat(value) if value else None
        except ValueError:
            raise ScopeError(
                400, f"{name}: expected a date like 2026-11-24, got {value!r}"
            ) from None
    today = deps.clock().astimezone(chosen[0].zone).date()
    try:
        start, end = resolve_range(days["since"], days["until"], today)
    except BadRange as exc:
        raise ScopeError(400, str(exc)) from None
    return Scope(visible, chosen, chosen[0].id if location else None, start, end)


def _funnel_steps(report: Report) -> list[charts.Step]:
    f = report.total

    def of(part: int, whole: int, what: str) -> str:
        return f"{percent(ratio(part, whole))} of {what}" if whole else ""

    return [
        charts.Step("Missed calls", f.missed),
        charts.Step("Could be texted", f.recoverable, of(f.recoverable, f.missed, "missed")),
        charts.Step("Texted back", f.texted, of(f.texted, f.to_text, "to text")),
        charts.Step("Delivered", f.delivered, of(f.delivered, f.texted, "texted")),
        charts.Step("Replied", f.replied, of(f.replied, f.texted, "texted")),
        charts.Step("Qualified", f.qualified, of(f.qualified, f.replied, "replied")),
        charts.Step("Booked", f.booked, of(f.booked, f.replied, "replied")),
        charts.Step("Not cancelled", f.still_booked, of(f.still_booked, f.booked, "booked")),
    ]


def _day(value: date) -> str:
    return f"{value:%b} {value.day}, {value.year}"


def _query(**params: Any) -> str:
    return urlencode({k: v for k, v in params.items() if v})


def _counts(deps: Deps, scope: Scope) -> dict[inbox.Queue, int]:
    with transaction(deps.sessions) as session:
        return inbox.queue_counts(session, [loc.id for loc in scope.chosen])


def _page(status: int = 200, **context: Any) -> HTMLResponse:
    html = PAGES.get_template("staff/dashboard.html").render(**context)
    return HTMLResponse(html, status_code=status)


def _frame(
    deps: Deps,
    user: SignedIn,
    visible: list[Location],
    location: str | None,
    counts: dict[inbox.Queue, int],
) -> dict[str, Any]:
    """The staff frame, with the location picker; the dashboard is a snapshot (no live
    updates), and its queue counts are those of the chosen scope."""
    return {
        **staff_frame(deps, user, location=location, counts=counts),
        "locations": visible,
        "multi_location": len(visible) > 1,
    }


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request, user: Viewer, location: str = "", since: str = "", until: str = ""
) -> Response:
    deps = deps_of(request)
    try:
        scope = _scope(deps, user, location, since, until)
    except ScopeError as error:
        visible = [loc for loc in deps.locations if user.can_see(loc.id)]
        return _page(
            error.status,
            **_frame(deps, user, visible, None, dict.fromkeys(inbox.QUEUES, 0)),
            error=error.message,
            report=None,
            form={"location": location, "since": since, "until": until},
        )
    report = load_report(
        deps.sessions, deps.locations, scope.chosen, scope.since, scope.until, now=deps.clock()
    )
    query = _query(location=scope.location, since=scope.since, until=scope.until)
    today = deps.clock().astimezone(scope.chosen[0].zone).date()
    quick = [
        (
            label,
            "/staff/dashboard?"
            + _query(location=scope.location, since=today - timedelta(days=n - 1), until=today),
        )
        for label, n in QUICK_RANGES
    ]
    peak = (
        f"{WEEKDAY_NAMES[report.heatmap.peak_weekday]}s {hour_range(report.heatmap.peak_hour)}"
        if report.heatmap.peak_weekday is not None and report.heatmap.peak_hour is not None
        else None
    )
    return _page(
        **_frame(deps, user, scope.visible, scope.location, _counts(deps, scope)),
        error=None,
        report=report,
        f=report.total,
        form={"location": scope.location or "", "since": scope.since, "until": scope.until},
        scope_name=", ".join(loc.name for loc in scope.chosen)
        if len(scope.chosen) <= 3
        else f"All {len(scope.chosen)} locations",
        funnel_svg=charts.funnel_chart(_funnel_steps(report)),
        trend_svg=charts.trend_chart(report.daily),
        heatmap_svg=charts.heatmap_chart(report.heatmap),
        reasons_svg=charts.reasons_chart(report.reasons),
        screened_labels=SCREENED_OUT_LABELS,
        booked_by_labels=BOOKED_BY_LABELS,
        peak=peak,
        range_label=f"{_day(scope.since)} – {_day(scope.until)}",
        csv_url="/staff/reports/calls.csv?" + query,
        quick=quick,
        ratio=ratio,
    )


@router.get("/reports/calls.csv")
def calls_csv(
    request: Request, user: Viewer, location: str = "", since: str = "", until: str = ""
) -> StreamingResponse:
    """One row per missed call and its outcome, streamed."""
    deps = deps_of(request)
    try:
        scope = _scope(deps, user, location, since, until)
    except ScopeError as error:
        raise HTTPException(error.status, error.message) from None
    name = f"ringback-calls-{scope.location or 'all'}-{scope.since}-{scope.until}.csv"
    return StreamingResponse(
        stream_calls_csv(deps.sessions, scope.chosen, scope.since, scope.until, now=deps.clock()),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
