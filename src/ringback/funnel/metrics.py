"""``GET /metrics``: Prometheus metrics read from the database.

Web servers and workers are separate processes (and there may be several of each), so
counters kept in one process's memory would each tell part of the story. The collector
here reads the funnel's rollups instead: every process answers with the same totals, and
they survive restarts. The queries are sums over the small rollup tables.

Counts are by location (ids from the locations file) and outcome; nothing about a patient
is exposed. Still, operators should keep ``/metrics`` off the public internet (firewall
it, or bind the scrape to a private network), or set ``RINGBACK_METRICS_TOKEN`` so that
scrapes must send ``Authorization: Bearer <token>``.

Counters are all-time (Prometheus takes rates); each call counts on the day it was
missed, so a reply today to yesterday's text-back increases ``ringback_replies_total``
now. ``ringback_bookings_total`` counts bookings made and ``ringback_bookings_cancelled_total``
those since cancelled; what can go down as well as up is a gauge: the bookings by where
they stand now (``ringback_bookings_outcome``: kept, upcoming, time_unknown, cancelled;
they add up to the bookings made), those rescheduled and still booked, and the revenue
recovered, which counts only bookings not cancelled. Latency histograms use the rollups'
buckets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Locations
from ringback.funnel import queries, rollup
from ringback.funnel.figures import Money, priced
from ringback.models import (
    FUNNEL_BUCKETS,
    FUNNEL_DAILY_COUNTERS,
    FUNNEL_LATENCY_BOUNDS_MS,
    FUNNEL_SCREENED_OUT,
)


class MetricsSettings(BaseSettings):
    """``RINGBACK_METRICS_TOKEN``: when set, scrapes must send it as a bearer token."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    token: str = Field(default="", alias="RINGBACK_METRICS_TOKEN", repr=False)


# Counter name (without _total), help, rollup column.
_COUNTERS = (
    ("ringback_textbacks_sent", "Text-backs that left for a missed call.", "texted"),
    ("ringback_textbacks_delivered", "Text-backs the carrier confirmed delivered.", "delivered"),
    (
        "ringback_replies",
        "Conversations from a missed call in which the patient replied.",
        "replied",
    ),
    ("ringback_qualified", "Conversations the bot qualified (treatment and time).", "qualified"),
    ("ringback_handoffs", "Conversations handed to staff.", "handoffs"),
    ("ringback_urgent_alerts", "Conversations with an urgent symptom (staff alerted).", "urgent"),
    ("ringback_opt_outs", "Conversations that ended with an opt-out.", "opted_out"),
)
_HISTOGRAMS = (
    (
        "textback",
        "ringback_textback_latency_seconds",
        "From the end of a missed call to its text-back leaving.",
    ),
    (
        "reply",
        "ringback_reply_latency_seconds",
        "From a patient's text to the bot's answer leaving.",
    ),
)


class FunnelCollector(Collector):
    """Collects the funnel's all-time totals from the rollups, fresh at each scrape."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        locations: Locations,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.sessions = sessions
        self.locations = locations
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        rollup.refresh(self.sessions, self.locations)
        ids = [location.id for location in self.locations]
        with self.sessions() as session:
            daily = queries.daily_by_location_reason(session, ids, None, None)
            latency = queries.latency_sums(session, ids, None, None)
            bookings = queries.booking_sums(session, ids, None, None)
            starts = queries.start_sums(session, ids, None, None, self.clock())
            stale = queries.dirty_count(session)

        per_location: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        missed = CounterMetricFamily(
            "ringback_missed_calls",
            "Missed calls, by why they were missed.",
            labels=["location", "reason"],
        )
        for row in daily:
            missed.add_metric([row["location_id"], row["miss_reason"] or "unknown"], row["missed"])
            for name in FUNNEL_DAILY_COUNTERS:
                per_location[row["location_id"]][name] += int(row[name])
        yield missed

        screened = CounterMetricFamily(
            "ringback_screened_out",
            "Missed calls not texted back, by screening outcome.",
            labels=["location", "screening"],
        )
        for location_id, c in sorted(per_location.items()):
            for reason in (*FUNNEL_SCREENED_OUT, "other"):
                screened.add_metric([location_id, reason], c[f"screened_{reason}"])
        yield screened

        for name, documentation, column in _COUNTERS:
            family = CounterMetricFamily(name, documentation, labels=["location"])
            for location_id, c in sorted(per_location.items()):
                family.add_metric([location_id], c[column])
            yield family

        booked = CounterMetricFamily(
            "ringback_bookings",
            "Bookings from missed calls, by who booked (bot, page, staff).",
            labels=["location", "booked_by"],
        )
        for location_id, c in sorted(per_location.items()):
            for who in ("bot", "page", "staff", "other"):
                booked.add_metric([location_id, who], c[f"booked_{who}"])
        yield booked

        cancelled = CounterMetricFamily(
            "ringback_bookings_cancelled",
            "Bookings from missed calls since cancelled (none of their appointments stands).",
            labels=["location"],
        )
        for location_id, c in sorted(per_location.items()):
            cancelled.add_metric([location_id], c["cancelled"])
        yield cancelled

        outcome = GaugeMetricFamily(
            "ringback_bookings_outcome",
            "Bookings from missed calls by where they stand now: kept (start passed, not "
            "cancelled; no-shows are not recorded), upcoming, time_unknown (marked booked "
            "without an appointment), cancelled. They add up to ringback_bookings_total.",
            labels=["location", "outcome"],
        )
        rebooked = GaugeMetricFamily(
            "ringback_bookings_rebooked",
            "Bookings from missed calls rescheduled and still booked (each counted once).",
            labels=["location"],
        )
        for location_id, c in sorted(per_location.items()):
            dated, kept = starts.get(location_id, (0, 0))
            made = sum(c[f"booked_{who}"] for who in ("bot", "page", "staff", "other"))
            still = made - c["cancelled"]
            for name, value in (
                ("kept", kept),
                ("upcoming", dated - kept),
                ("time_unknown", still - dated),
                ("cancelled", c["cancelled"]),
            ):
                outcome.add_metric([location_id, name], value)
            rebooked.add_metric([location_id], c["rebooked"])
        yield outcome
        yield rebooked

        worth: dict[str, Money] = defaultdict(Money)
        for row in bookings:
            location = self.locations.get(row["location_id"])
            service = (
                location.service_named(row["treatment"]) if location and row["treatment"] else None
            )
            worth[row["location_id"]] += priced(
                {name: int(row[name]) for name in queries.BOOKING_SUMS},
                service.price_cents if service else None,
            )
        money = GaugeMetricFamily(
            "ringback_recovered_revenue_dollars",
            "Revenue recovered: bookings from missed calls not cancelled (a rescheduled one "
            "once, at its current value), at current list prices or as entered.",
            labels=["location"],
        )
        lost = GaugeMetricFamily(
            "ringback_cancelled_revenue_dollars",
            "What the cancelled bookings from missed calls were worth (not recovered).",
            labels=["location"],
        )
        for location_id in sorted(per_location):
            money.add_metric([location_id], worth[location_id].revenue_cents / 100)
            lost.add_metric([location_id], worth[location_id].cancelled_cents / 100)
        yield money
        yield lost

        for kind, name, documentation in _HISTOGRAMS:
            histogram = HistogramMetricFamily(name, documentation, labels=["location"])
            for row in sorted(latency, key=lambda r: str(r["location_id"])):
                if row["kind"] == kind:
                    histogram.add_metric(
                        [row["location_id"]], _buckets(row), sum_value=int(row["sum_ms"]) / 1000
                    )
            yield histogram

        yield GaugeMetricFamily(
            "ringback_funnel_pending_changes",
            "Changes that arrived while this scrape ran (in the figures from the next read).",
            value=stale,
        )


def _buckets(row: dict[str, Any]) -> list[tuple[str, float]]:
    """Cumulative counts per upper bound in seconds, ending with +Inf."""
    out: list[tuple[str, float]] = []
    seen = 0
    for bound, name in zip(FUNNEL_LATENCY_BOUNDS_MS, FUNNEL_BUCKETS, strict=False):
        seen += int(row[name])
        out.append((repr(bound / 1000), float(seen)))
    seen += int(row[FUNNEL_BUCKETS[-1]])
    out.append(("+Inf", float(seen)))
    return out
