"""``GET /api/v1/funnel``: the recovery report as JSON, for a clinic's own dashboards.

The same authentication as the rest of ``/api/v1`` (the router carries the same
dependencies as :data:`ringback.api.v1.router`), and the same figures as ``ringback report
--format json``: both serialize :class:`ringback.funnel.figures.Report` the same way.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError

from ringback.api import v1
from ringback.api.errors import bad_request, invalid
from ringback.deps import Deps
from ringback.funnel.figures import Report
from ringback.funnel.metrics import FunnelCollector, MetricsSettings
from ringback.funnel.report import BadRange, load_report, report_json, resolve_range
from ringback.inbox.spool import Spool, SpoolService

router = APIRouter(
    prefix="/api/v1",
    tags=["funnel"],
    dependencies=list(v1.router.dependencies),
    responses=dict(v1.router.responses),
)


@router.get(
    "/funnel",
    response_model=Report,
    summary="The recovery funnel, reasons, speed-to-lead and template results",
    description=(
        "Figures for the missed calls of the local days `since`..`until` (inclusive; each "
        "location's own time zone), for one location or every location you can see. Each "
        "call counts on the day it was missed, with everything that followed from it. "
        "Latency percentiles are upper bounds at the stored histogram's resolution "
        "(`latency.bounds_ms`). Defaults: the 30 days up to today.\n\n"
        "Bookings: `booked` counts every booking made (also those since cancelled); "
        "`booked = cancelled + still_booked` and `still_booked = kept + upcoming + "
        "booked_time_unknown`. `cancelled`: none of its appointments stands. `kept`: the "
        "appointment's start has passed and it was not cancelled (no-shows are not recorded "
        "yet). `rebooked`: still booked after a reschedule, counted once. `revenue_cents` "
        "(revenue recovered) counts only bookings not cancelled, a rescheduled one once at "
        "its current value; `cancelled_revenue_cents` is what the cancelled ones were worth. "
        "`rates.recovered_of_*` and `reasons[].recovery_rate*` count bookings not cancelled; "
        "`rates.booked_of_*` every booking made."
    ),
)
def funnel(
    request: Request,
    caller: v1.Caller,
    location: Annotated[
        str | None, Query(max_length=64, description="Only this location id")
    ] = None,
    since: Annotated[date | None, Query(description="First local day, YYYY-MM-DD")] = None,
    until: Annotated[date | None, Query(description="Last local day, YYYY-MM-DD")] = None,
) -> JSONResponse:
    deps: Deps = request.app.state.deps
    visible = [loc for loc in deps.locations if caller.can_see(loc.id)]
    chosen = visible
    if location is not None:
        chosen = [loc for loc in visible if loc.id == location]
        if not chosen:  # unknown and not visible read the same
            raise invalid(
                "query", "location", location, "no location with this id that you can see"
            )
    if not chosen:
        raise invalid("query", "location", location, "your account cannot see any location")
    today = deps.clock().astimezone(chosen[0].zone).date()
    try:
        start, end = resolve_range(since, until, today)
    except BadRange as exc:
        refuse = bad_request if exc.out_of_range else invalid
        raise refuse(
            "query", exc.field, str(since if exc.field == "since" else until), exc.problem
        ) from None
    report = load_report(deps.sessions, deps.locations, chosen, start, end, now=deps.clock())
    return JSONResponse(report_json(report))


# ``GET /metrics``: Prometheus text, guarded by RINGBACK_METRICS_TOKEN when set.
metrics_router = APIRouter(include_in_schema=False)


def _token(request: Request) -> str:
    token: str | None = getattr(request.app.state, "metrics_token", None)
    if token is None:
        token = MetricsSettings().token
        request.app.state.metrics_token = token
    return token


@metrics_router.get("/metrics")
def metrics(request: Request) -> Response:
    token = _token(request)
    if token:
        sent = request.headers.get("Authorization", "")
        given = sent[7:].strip().encode() if sent.lower().startswith("bearer ") else b""
        if not secrets.compare_digest(given, token.encode()):
            return Response(
                "Authorization: send 'Bearer <RINGBACK_METRICS_TOKEN>'\n",
                status_code=401,
                media_type="text/plain",
                headers={"WWW-Authenticate": "Bearer"},
            )
    deps: Deps = request.app.state.deps
    # The spool first and on its own: it matters most while the database is down, when
    # the funnel's figures cannot be read (``ringback_database_up`` 0 then).
    spooled = CollectorRegistry(auto_describe=False)
    spool: SpoolService | None = getattr(request.app.state, "spool", None)
    spooled.register(SpoolCollector(spool.spool if spool is not None else None, deps.clock))
    registry = CollectorRegistry(auto_describe=False)
    # Read with the spool's bounded sessions when there are: a scrape while SQLite is
    # held by a long writer answers at once, without the funnel, instead of hanging.
    sessions = spool.sessions if spool is not None else deps.sessions
    registry.register(FunnelCollector(sessions, deps.locations, deps.clock))
    try:
        funnel = generate_latest(registry)
        up = 1
    except (SQLAlchemyError, sqlite3.Error):  # SQLite's BEGIN IMMEDIATE raises unwrapped
        funnel, up = b"", 0
    database = (
        b"# HELP ringback_database_up Whether the database answered this scrape.\n"
        b"# TYPE ringback_database_up gauge\n"
        b"ringback_database_up %d\n" % up
    )
    return Response(generate_latest(spooled) + database + funnel, media_type=CONTENT_TYPE_LATEST)


class SpoolCollector(Collector):
    """The webhook spool: events waiting for the database, and the oldest one's age."""

    def __init__(self, spool: Spool | None, clock: Callable[[], datetime]) -> None:
        self.spool = spool
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        stats = self.spool.stats() if self.spool is not None else None
        depth = GaugeMetricFamily(
            "ringback_spool_depth",
            "Webhook events spooled on disk, waiting for the database (every process's).",
        )
        depth.add_metric([], stats.depth if stats is not None else 0)
        yield depth
        age = GaugeMetricFamily(
            "ringback_spool_oldest_age_seconds",
            "How long the oldest spooled event has waited (0 with none).",
        )
        oldest = stats.oldest if stats is not None else None
        age.add_metric([], (self.clock() - oldest).total_seconds() if oldest else 0.0)
        yield age
