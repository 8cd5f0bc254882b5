"""The recovery funnel's figures as plain data, and the arithmetic behind them.

Pure: no database and no web. :mod:`ringback.funnel.report` fills these from the rollups;
the ``ringback report`` command, the JSON API, the dashboard and ``/metrics`` all show the
same objects, so they cannot disagree.

Every count is of missed calls, attributed to the local day of the call that started it
(its cohort): a reply or a booking three days later counts on the day of the call.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from ringback.funnel.retention import Refills, Retention
from ringback.models import FUNNEL_LATENCY_BOUNDS_MS, FUNNEL_SCREENED_OUT

# Two-sided 95%.
Z95 = 1.959963984540054
SIGNIFICANCE = 0.05
WEEKDAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

MISS_REASONS = ("staff_busy", "no_answer", "after_hours", "caller_hung_up", "failed")
MISS_REASON_LABELS = {
    "staff_busy": "Front desk busy",
    "no_answer": "Nobody answered",
    "after_hours": "After hours",
    "caller_hung_up": "Caller hung up",
    "failed": "Call failed",
    "": "Unknown",
}
SCREENED_OUT_LABELS = {
    "anonymous": "Hidden caller ID",
    "invalid_number": "Not a valid number",
    "own_number": "One of your own lines",
    "blocklisted": "On your blocklist",
    "opted_out": "Opted out of texts",
    "wrong_number": "Told us wrong number",
    "not_textable": "Number can't get texts",
    "landline": "Landline",
    "cooldown": "Texted recently (repeat call)",
    "other": "Other",
}
BOOKED_BY_LABELS = {"bot": "By the bot", "page": "On the booking page", "staff": "By staff"}
BOOKED_BY = ("bot", "page", "staff", "other")


# --- statistics ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Interval:
    """A confidence interval for a proportion, both ends in [0, 1]."""

    low: float
    high: float


def wilson(successes: int, n: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval for ``successes`` out of ``n`` (None when n is 0).

    Unlike the textbook ``p ± z·√(p(1-p)/n)`` it stays inside [0, 1] and is honest for
    small samples and rates near 0 or 1, which is what a clinic's week of texts is.
    """
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes: expected 0 to {n}, got {successes}")
    p = successes / n
    z2 = z * z
    denominator = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denominator
    return Interval(low=max(0.0, centre - half), high=min(1.0, centre + half))


@dataclass(frozen=True, slots=True)
class ZTest:
    """A two-proportion z-test: ``z`` is positive when the second rate is the higher."""

    z: float
    p_value: float
    significant: bool


def two_proportion_z(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alpha: float = SIGNIFICANCE
) -> ZTest | None:
    """Whether two rates differ more than chance explains (pooled, two-sided)."""
    if n_a <= 0 or n_b <= 0:
        return None
    p_a, p_b = successes_a / n_a, successes_b / n_b
    pooled = (successes_a + successes_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return ZTest(z=0.0, p_value=1.0, significant=False)
    z = (p_b - p_a) / se
    p_value = math.erfc(abs(z) / math.sqrt(2))
    return ZTest(z=z, p_value=p_value, significant=p_value < alpha)


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# --- latency histograms -------------------------------------------------------------------


def bucket_of(ms: int) -> int:
    """The histogram bucket holding a latency of ``ms`` (bounds are inclusive)."""
    return bisect_left(FUNNEL_LATENCY_BOUNDS_MS, ms)


@dataclass(frozen=True, slots=True)
class Histogram:
    """Latencies counted in fixed buckets: cheap to store per day and to add up."""

    counts: tuple[int, ...] = (0,) * (len(FUNNEL_LATENCY_BOUNDS_MS) + 1)
    sum_ms: int = 0
    max_ms: int = 0

    @classmethod
    def of(cls, latencies_ms: Iterable[int]) -> Histogram:
        counts = [0] * (len(FUNNEL_LATENCY_BOUNDS_MS) + 1)
        total = top = 0
        for ms in latencies_ms:
            ms = max(0, ms)
            counts[bucket_of(ms)] += 1
            total += ms
            top = max(top, ms)
        return cls(tuple(counts), total, top)

    def __add__(self, other: Histogram) -> Histogram:
        return Histogram(
            tuple(a + b for a, b in zip(self.counts, other.counts, strict=True)),
            self.sum_ms + other.sum_ms,
            max(self.max_ms, other.max_ms),
        )

    @property
    def n(self) -> int:
        return sum(self.counts)

    def percentile(self, p: float) -> int | None:
        """An upper bound for the p-th percentile, at the buckets' resolution.

        Nearest rank: the smallest bucket bound that at least p% of the latencies are at
        or under, tightened to the slowest latency seen (exact when it is in that bucket).
        """
        n = self.n
        if n == 0:
            return None
        rank = max(1, math.ceil(p / 100 * n))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                if index < len(FUNNEL_LATENCY_BOUNDS_MS):
                    return min(FUNNEL_LATENCY_BOUNDS_MS[index], self.max_ms)
                return self.max_ms
        return self.max_ms  # pragma: no cover - the loop always reaches the rank


@dataclass(frozen=True, slots=True)
class LatencyStats:
    """Speed figures in milliseconds; percentiles are upper bounds (see Histogram)."""

    n: int
    mean_ms: int | None
    p50_ms: int | None
    p90_ms: int | None
    p99_ms: int | None
    max_ms: int | None
    histogram: list[int]

    @classmethod
    def of(cls, histogram: Histogram) -> LatencyStats:
        n = histogram.n
        return cls(
            n=n,
            mean_ms=round(histogram.sum_ms / n) if n else None,
            p50_ms=histogram.percentile(50),
            p90_ms=histogram.percentile(90),
            p99_ms=histogram.percentile(99),
            max_ms=histogram.max_ms if n else None,
            histogram=list(histogram.counts),
        )


@dataclass(frozen=True, slots=True)
class Latency:
    textback: LatencyStats
    reply: LatencyStats
    bounds_ms: list[int] = field(default_factory=lambda: list(FUNNEL_LATENCY_BOUNDS_MS))


# --- the funnel ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Funnel:
    """Missed calls and what became of them. Each step is counted over the one before.

    ``recoverable`` = missed - screened_out - pending (not screened yet). Of those,
    ``joined_conversation`` came from callers already in a conversation (no new text),
    the rest were ``to_text``. ``texted`` text-backs left, ``delivered`` reached the phone.
    ``replied``, ``qualified`` and ``booked`` count the conversations those text-backs
    opened; ``booked`` counts every booking made (by the bot, on the page, or marked by
    staff), also those since cancelled.

    What became of the bookings (they add up: ``booked = cancelled + still_booked`` and
    ``still_booked = kept + upcoming + booked_time_unknown``):

    * ``cancelled``: every appointment the booking made is cancelled and none replaced it;
    * ``still_booked``: not cancelled; of those, ``kept`` have an appointment whose start
      has passed ("start passed, not cancelled"; no-shows are counted apart, in
      :class:`Retention`), ``upcoming`` one that has not started, and ``booked_time_unknown`` no
      appointment time in Ringback (staff marked them booked);
    * ``rebooked``: still booked after being rescheduled (one booking, at its new time);
      part of ``still_booked``.

    ``revenue_cents`` (revenue recovered) is the value of the bookings not cancelled, a
    rescheduled one once at its current appointment's value: the booked treatment's price
    in the location's list, or what staff entered. ``cancelled_revenue_cents`` is what the
    cancelled ones were worth (not in ``revenue_cents``). ``booked_unpriced``: bookings not
    cancelled with no price to count. The ``recovered_of_*`` rates count bookings not
    cancelled; the ``booked_of_*`` rates count every booking made.
    """

    missed: int
    screened_out: int
    screened_out_by_reason: dict[str, int]
    pending: int
    recoverable: int
    joined_conversation: int
    to_text: int
    texted: int
    delivered: int
    replied: int
    qualified: int
    booked: int
    booked_by: dict[str, int]
    cancelled: int
    still_booked: int
    kept: int
    upcoming: int
    booked_time_unknown: int
    rebooked: int
    revenue_cents: int
    cancelled_revenue_cents: int
    booked_unpriced: int
    handoffs: int
    urgent: int
    opted_out: int
    wrong_number: int
    no_reply: int
    lost: int
    rates: dict[str, float | None]
    resolved: int = 0  # urgent or handed-off threads staff called back and closed


@dataclass(frozen=True, slots=True)
class Money:
    """What bookings are worth, priced when read: the value of those not cancelled, of those
    cancelled, and how many not cancelled have no price."""

    revenue_cents: int = 0
    cancelled_cents: int = 0
    unpriced: int = 0

    def __add__(self, other: Money) -> Money:
        return Money(
            self.revenue_cents + other.revenue_cents,
            self.cancelled_cents + other.cancelled_cents,
            self.unpriced + other.unpriced,
        )


def priced(row: dict[str, int], price_cents: int | None) -> Money:
    """One ``funnel_bookings`` sum, priced: a booking without a known value is worth the
    treatment's list price (``price_cents``; None when the list has no such treatment)."""
    made = row["value_cents"] + (row["booked"] - row["valued"]) * (price_cents or 0)
    cancelled = row["cancelled_value_cents"] + (row["cancelled"] - row["cancelled_valued"]) * (
        price_cents or 0
    )
    unvalued = (row["booked"] - row["valued"]) - (row["cancelled"] - row["cancelled_valued"])
    return Money(made - cancelled, cancelled, 0 if price_cents is not None else unvalued)


@dataclass(frozen=True, slots=True)
class Starts:
    """Bookings not cancelled that have an appointment time, and how many have started."""

    dated: int = 0
    kept: int = 0


def funnel_from(
    counters: dict[str, int], money: Money | None = None, starts: Starts | None = None
) -> Funnel:
    """Build a :class:`Funnel` from summed rollup counters (``funnel_daily`` columns), the
    bookings priced, and when the ones not cancelled start."""
    c = counters
    money = money or Money()
    starts = starts or Starts()
    by_reason = {r: c.get(f"screened_{r}", 0) for r in FUNNEL_SCREENED_OUT}
    by_reason["other"] = c.get("screened_other", 0)
    booked_by = {who: c.get(f"booked_{who}", 0) for who in BOOKED_BY}
    missed, screened, pending = c.get("missed", 0), c.get("screened_out", 0), c.get("pending", 0)
    recoverable = missed - screened - pending
    texted, replied, booked = c.get("texted", 0), c.get("replied", 0), sum(booked_by.values())
    to_text = c.get("to_text", 0)
    cancelled = c.get("cancelled", 0)
    still_booked = booked - cancelled
    rates = {
        "recoverable": ratio(recoverable, missed),
        "texted": ratio(texted, to_text),
        "delivered": ratio(c.get("delivered", 0), texted),
        "replied": ratio(replied, texted),
        "qualified": ratio(c.get("qualified", 0), replied),
        "booked_of_replied": ratio(booked, replied),
        "booked_of_texted": ratio(booked, texted),
        "recovered_of_recoverable": ratio(still_booked, recoverable),
        "recovered_of_missed": ratio(still_booked, missed),
        "cancelled_of_booked": ratio(cancelled, booked),
        "kept_of_booked": ratio(starts.kept, booked),
    }
    return Funnel(
        missed=missed,
        screened_out=screened,
        screened_out_by_reason={k: v for k, v in by_reason.items() if v},
        pending=pending,
        recoverable=recoverable,
        joined_conversation=c.get("joined", 0),
        to_text=to_text,
        texted=texted,
        delivered=c.get("delivered", 0),
        replied=replied,
        qualified=c.get("qualified", 0),
        booked=booked,
        booked_by=booked_by,
        cancelled=cancelled,
        still_booked=still_booked,
        kept=starts.kept,
        upcoming=starts.dated - starts.kept,
        booked_time_unknown=still_booked - starts.dated,
        rebooked=c.get("rebooked", 0),
        revenue_cents=money.revenue_cents,
        cancelled_revenue_cents=money.cancelled_cents,
        booked_unpriced=money.unpriced,
        handoffs=c.get("handoffs", 0),
        urgent=c.get("urgent", 0),
        opted_out=c.get("opted_out", 0),
        wrong_number=c.get("wrong_number", 0),
        no_reply=c.get("no_reply", 0),
        lost=c.get("lost", 0),
        rates=rates,
        resolved=c.get("resolved", 0),
    )


@dataclass(frozen=True, slots=True)
class ReasonFigures:
    """Why calls were missed, and how many of each were recovered (booked and not
    cancelled; ``booked`` counts every booking made, ``cancelled`` those since cancelled)."""

    reason: str
    label: str
    missed: int
    recoverable: int
    texted: int
    replied: int
    booked: int
    cancelled: int
    revenue_cents: int  # of the bookings not cancelled
    recovery_rate: float | None  # (booked - cancelled) / missed
    recovery_rate_of_recoverable: float | None  # (booked - cancelled) / recoverable


@dataclass(frozen=True, slots=True)
class DayFigures:
    day: date
    missed: int
    texted: int
    replied: int
    booked: int
    cancelled: int = 0


@dataclass(frozen=True, slots=True)
class Heatmap:
    """Missed calls by local weekday (Monday first) and local hour."""

    counts: list[list[int]]
    peak_weekday: int | None
    peak_hour: int | None
    peak_count: int


def heatmap_of(counts: list[list[int]]) -> Heatmap:
    peak = max(
        ((counts[d][h], -d, -h) for d in range(7) for h in range(24)),
        default=(0, 0, 0),
    )
    if peak[0] == 0:
        return Heatmap(counts=counts, peak_weekday=None, peak_hour=None, peak_count=0)
    return Heatmap(counts=counts, peak_weekday=-peak[1], peak_hour=-peak[2], peak_count=peak[0])


@dataclass(frozen=True, slots=True)
class VariantFigures:
    """One text-back template, over the text-backs in it that were sent."""

    variant: str
    texted: int
    replied: int
    reply_rate: float | None
    reply_interval: Interval | None
    booked: int
    booking_rate: float | None
    booking_interval: Interval | None


@dataclass(frozen=True, slots=True)
class VariantComparison:
    """A variant against the baseline (the first), on reply or booking rate."""

    metric: str  # reply | booking
    baseline: str
    variant: str
    baseline_rate: float | None
    variant_rate: float | None
    difference: float | None  # variant - baseline, in rate points (0.05 = 5 points)
    z: float | None
    p_value: float | None
    significant: bool
    verdict: str


def variant_figures(variant: str, texted: int, replied: int, booked: int) -> VariantFigures:
    return VariantFigures(
        variant=variant,
        texted=texted,
        replied=replied,
        reply_rate=ratio(replied, texted),
        reply_interval=wilson(replied, texted),
        booked=booked,
        booking_rate=ratio(booked, texted),
        booking_interval=wilson(booked, texted),
    )


def compare_variants(variants: Sequence[VariantFigures]) -> list[VariantComparison]:
    """Each variant against the first, on reply and on booking rate."""
    if len(variants) < 2:
        return []
    base = variants[0]
    out: list[VariantComparison] = []
    for other in variants[1:]:
        for metric, base_hits, hits in (
            ("reply", base.replied, other.replied),
            ("booking", base.booked, other.booked),
        ):
            test = two_proportion_z(base_hits, base.texted, hits, other.texted)
            base_rate, rate = ratio(base_hits, base.texted), ratio(hits, other.texted)
            difference = rate - base_rate if rate is not None and base_rate is not None else None
            out.append(
                VariantComparison(
                    metric=metric,
                    baseline=base.variant,
                    variant=other.variant,
                    baseline_rate=base_rate,
                    variant_rate=rate,
                    difference=difference,
                    z=test.z if test else None,
                    p_value=test.p_value if test else None,
                    significant=bool(test and test.significant),
                    verdict=_verdict(metric, base, other, test, difference),
                )
            )
    return out


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _verdict(
    metric: str,
    base: VariantFigures,
    other: VariantFigures,
    test: ZTest | None,
    difference: float | None,
) -> str:
    noun = "replies" if metric == "reply" else "bookings"
    if test is None or difference is None:
        return f"Not enough texts yet to compare {noun}."
    if not test.significant:
        return (
            f"No clear difference in {noun} between {base.variant} and {other.variant} yet "
            f"(p = {test.p_value:.2f}); keep both running."
        )
    better, worse = (other, base) if difference > 0 else (base, other)
    return (
        f"Template {better.variant} gets more {noun} than {worse.variant} "
        f"({abs(difference) * 100:.1f} points, {_p(test.p_value)}): the difference is "
        f"unlikely to be chance."
    )


@dataclass(frozen=True, slots=True)
class Variants:
    variants: list[VariantFigures]
    comparisons: list[VariantComparison]


@dataclass(frozen=True, slots=True)
class LocationFigures:
    id: str
    name: str
    timezone: str
    funnel: Funnel
    latency: Latency


@dataclass(frozen=True, slots=True)
class Finding:
    """One sentence of diagnosis: ``kind`` is problem, good or info."""

    kind: str
    headline: str
    detail: str


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the report, the API and the dashboard show for a range of local days."""

    since: date
    until: date
    generated_at: datetime
    location_ids: list[str]
    total: Funnel
    locations: list[LocationFigures]
    reasons: list[ReasonFigures]
    daily: list[DayFigures]
    heatmap: Heatmap
    latency: Latency
    variants: Variants
    diagnosis: list[Finding]
    pending_changes: int = 0  # changes that arrived while this was built (next read has them)
    # Keeping the booking: the appointments starting in the period, reminders, no-shows.
    retention: Retention = field(default_factory=Retention)
    # Refilling and coming back: the waitlist, rebooking and review texts.
    refills: Refills = field(default_factory=Refills)


# --- words and numbers for people -----------------------------------------------------------


def percent(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value * 100:.{digits}f}%"


def money(cents: int) -> str:
    return f"${cents / 100:,.0f}" if cents % 100 == 0 else f"${cents / 100:,.2f}"


def duration(ms: int | None) -> str:
    """'850 ms', '1.5 s', '4 min', '2.5 h'."""
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        seconds = ms / 1000
        return f"{seconds:.1f} s".replace(".0 s", " s") if seconds < 10 else f"{seconds:.0f} s"
    if ms < 3_600_000:
        minutes = ms / 60_000
        return f"{minutes:.1f} min".replace(".0 min", " min")
    hours = ms / 3_600_000
    return f"{hours:.1f} h".replace(".0 h", " h")


def hour_label(hour: int) -> str:
    """'9 AM', '12 PM', '12 AM'."""
    return f"{hour % 12 or 12} {'AM' if hour < 12 else 'PM'}"


def hour_range(hour: int) -> str:
    return f"{hour_label(hour)}–{hour_label((hour + 1) % 24)}"


def _share(part: int, whole: int) -> str:
    return percent(ratio(part, whole))


def _lower(label: str) -> str:
    """'Hidden caller ID' -> 'hidden caller ID', for the middle of a sentence."""
    return label[:1].lower() + label[1:]


# --- diagnosis ----------------------------------------------------------------------------

# Below these the figures are too few to say anything about a rate.
MIN_CALLS = 10
MIN_TEXTS = 10
MIN_REPLIES = 8
MIN_BOOKINGS = 3
# What counts as a problem (or as going well), as shares of the step before.
SCREENED_OUT_HIGH = 0.25
NOT_SENT_HIGH = 0.05
DELIVERY_LOW = 0.90
REPLY_LOW = 0.25
REPLY_GOOD = 0.40
BOOKED_OF_REPLIED_LOW = 0.30
HANDOFFS_HIGH = 0.30
OPT_OUT_HIGH = 0.05
NO_REPLY_HIGH = 0.60
CANCELLED_HIGH = 0.20
TEXTBACK_SLOW_MS = 60_000
TEXTBACK_FAST_MS = 10_000
BOT_SLOW_MS = 30_000

SCREENED_OUT_ADVICE = {
    "anonymous": "These callers hid their number, so there is nothing to text back: "
    "answer more calls at those times, or invite callers in your greeting to text you.",
    "cooldown": "These are repeat calls from people texted in the last day: they already "
    "have a conversation, so answer it fast.",
    "landline": "Landlines can't receive texts: call these people back.",
    "not_textable": "The carrier says these numbers can't receive texts: call them back.",
    "opted_out": "These callers opted out of texts earlier: call them back instead.",
    "wrong_number": "These callers told us before that they dialled the wrong number.",
    "invalid_number": "The caller's number was not a real phone number.",
    "own_number": "These were calls from your own lines.",
    "blocklisted": "These numbers are on your blocklist.",
    "other": "Screening gave an unusual outcome for these calls.",
}
MISS_REASON_ADVICE = {
    "staff_busy": "the front desk was on another call: an extra person or line at the "
    "busiest hours would catch more of them",
    "no_answer": "the phone rang out with nobody picking up",
    "after_hours": "they called while you were closed: the text-back is your night shift, "
    "so make sure it says when someone will answer",
    "caller_hung_up": "callers gave up before anyone answered: a shorter ring before the "
    "text-back, or answering faster, keeps them",
    "failed": "the call failed on the line",
}


def diagnose(
    total: Funnel,
    reasons: Sequence[ReasonFigures],
    heatmap: Heatmap,
    latency: Latency,
    variants: Variants,
) -> list[Finding]:
    """The funnel's shape in plain words, for a clinic owner: where callers are lost and
    what usually helps. Problems come in the order a caller meets them."""
    f = total
    out: list[Finding] = []
    if f.missed == 0:
        return [Finding("info", "No missed calls", "No calls were missed in this period.")]

    top_reason = max(reasons, key=lambda r: r.missed, default=None)
    if top_reason is not None and top_reason.missed:
        why = MISS_REASON_ADVICE.get(top_reason.reason, "")
        out.append(
            Finding(
                "info",
                f"Most missed calls: {_lower(top_reason.label)}",
                f"{top_reason.missed:,} of {f.missed:,} missed calls "
                f"({_share(top_reason.missed, f.missed)}): {why}.",
            )
        )
    if heatmap.peak_weekday is not None and heatmap.peak_hour is not None:
        out.append(
            Finding(
                "info",
                "Busiest time for missed calls",
                f"{WEEKDAY_NAMES[heatmap.peak_weekday]}s {hour_range(heatmap.peak_hour)} "
                f"({heatmap.peak_count:,} missed calls, local time).",
            )
        )

    if f.missed >= MIN_CALLS and f.screened_out / f.missed >= SCREENED_OUT_HIGH:
        ranked = sorted(f.screened_out_by_reason.items(), key=lambda kv: (-kv[1], kv[0]))
        named = " and ".join(
            f"{_lower(SCREENED_OUT_LABELS.get(reason, reason))} ({count:,})"
            for reason, count in ranked[:2]
        )
        out.append(
            Finding(
                "problem",
                "Many missed callers can't be texted",
                f"{f.screened_out:,} of {f.missed:,} missed calls "
                f"({_share(f.screened_out, f.missed)}) were screened out, mostly {named}. "
                f"{SCREENED_OUT_ADVICE.get(ranked[0][0], '')}",
            )
        )

    not_sent = f.to_text - f.texted
    if f.to_text >= MIN_TEXTS and not_sent / f.to_text >= NOT_SENT_HIGH:
        out.append(
            Finding(
                "problem",
                "Some text-backs didn't go out",
                f"{not_sent:,} of {f.to_text:,} text-backs ({_share(not_sent, f.to_text)}) were "
                "not sent: they failed, the number could not be texted, or they are held "
                "until texting hours.",
            )
        )
    if f.texted >= MIN_TEXTS and f.delivered / f.texted < DELIVERY_LOW:
        out.append(
            Finding(
                "problem",
                "Carriers aren't delivering every text-back",
                f"Only {f.delivered:,} of {f.texted:,} sent text-backs "
                f"({_share(f.delivered, f.texted)}) were confirmed delivered. Check your "
                "number's A2P 10DLC registration and whether the wording looks like spam to "
                "carriers.",
            )
        )

    tb = latency.textback
    if tb.n >= MIN_TEXTS and tb.p90_ms is not None and tb.p90_ms > TEXTBACK_SLOW_MS:
        out.append(
            Finding(
                "problem",
                "Text-backs are slow",
                f"Half left within {duration(tb.p50_ms)}, but 1 in 10 took longer than "
                f"{duration(tb.p90_ms)}. Callers ring the next clinic within minutes: the "
                "first text should leave in seconds (texts held for texting hours count "
                "here too).",
            )
        )
    elif tb.n >= MIN_TEXTS and tb.p50_ms is not None and tb.p50_ms <= TEXTBACK_FAST_MS:
        out.append(
            Finding(
                "good",
                "Text-backs are fast",
                f"Half of the text-backs left within {duration(tb.p50_ms)} of the missed "
                f"call, 9 in 10 within {duration(tb.p90_ms)}.",
            )
        )

    reply_rate = ratio(f.replied, f.texted)
    if f.texted >= MIN_TEXTS and reply_rate is not None and reply_rate < REPLY_LOW:
        out.append(
            Finding(
                "problem",
                "Few callers reply",
                f"Only {f.replied:,} of {f.texted:,} texted callers ({percent(reply_rate)}) "
                "replied. Look at the first message and its speed: a text that names the "
                "clinic, says sorry and asks one easy question, sent within seconds, gets "
                "the most answers (compare your templates below).",
            )
        )
    elif f.texted >= MIN_TEXTS and reply_rate is not None and reply_rate >= REPLY_GOOD:
        out.append(
            Finding(
                "good",
                "Callers answer the text-back",
                f"{f.replied:,} of {f.texted:,} texted callers ({percent(reply_rate)}) replied.",
            )
        )

    if f.replied >= MIN_REPLIES and f.booked / f.replied < BOOKED_OF_REPLIED_LOW:
        qualified_not_booked = max(0, f.qualified - f.booked)
        out.append(
            Finding(
                "problem",
                "Replies aren't turning into bookings",
                f"{f.replied:,} callers replied but {f.booked:,} booked "
                f"({_share(f.booked, f.replied)}). {qualified_not_booked:,} were qualified and "
                "offered a booking without booking: that points to booking friction (the "
                "booking page, deposits) or no open times soon enough (availability).",
            )
        )
    if f.replied >= MIN_REPLIES and f.handoffs / f.replied >= HANDOFFS_HIGH:
        urgent = f" ({f.urgent:,} urgent)" if f.urgent else ""
        out.append(
            Finding(
                "info",
                "Many conversations need staff",
                f"{f.handoffs:,} of {f.replied:,} conversations ({_share(f.handoffs, f.replied)}) "
                f"were handed to staff{urgent}. How fast staff answer decides these.",
            )
        )
    rl = latency.reply
    if rl.n >= MIN_TEXTS and rl.p90_ms is not None and rl.p90_ms > BOT_SLOW_MS:
        out.append(
            Finding(
                "problem",
                "The bot answers slowly",
                f"1 in 10 answers took longer than {duration(rl.p90_ms)} after the patient's "
                "text: check the workers and the queue.",
            )
        )
    if f.texted >= MIN_TEXTS and f.opted_out / f.texted >= OPT_OUT_HIGH:
        out.append(
            Finding(
                "problem",
                "Opt-outs are high",
                f"{f.opted_out:,} of {f.texted:,} texted callers ({_share(f.opted_out, f.texted)}) "
                "opted out. Make the first text clearly about their call, and keep it short.",
            )
        )
    if f.texted >= MIN_TEXTS and f.no_reply / f.texted >= NO_REPLY_HIGH:
        out.append(
            Finding(
                "info",
                "Most conversations end without a reply",
                f"{f.no_reply:,} of {f.texted:,} ({_share(f.no_reply, f.texted)}) closed with no "
                "reply to the last text. A call back during opening hours can still win some.",
            )
        )

    worst = min(
        (r for r in reasons if r.missed >= MIN_CALLS and r.recovery_rate is not None),
        key=lambda r: (r.recovery_rate or 0.0, r.reason),
        default=None,
    )
    best = max(
        (r for r in reasons if r.missed >= MIN_CALLS and r.recovery_rate is not None),
        key=lambda r: (r.recovery_rate or 0.0, r.reason),
        default=None,
    )
    if worst is not None and best is not None and worst.reason != best.reason:
        out.append(
            Finding(
                "info",
                "Recovery by reason",
                f"Calls missed with {_lower(best.label)} are recovered best "
                f"({percent(best.recovery_rate)} booked), with {_lower(worst.label)} least "
                f"({percent(worst.recovery_rate)}).",
            )
        )

    for comparison in variants.comparisons:
        if comparison.metric == "reply" or comparison.significant:
            out.append(
                Finding(
                    "good" if comparison.significant else "info",
                    f"Templates {comparison.baseline} and {comparison.variant}: "
                    f"{'replies' if comparison.metric == 'reply' else 'bookings'}",
                    comparison.verdict,
                )
            )

    leak = f.booked >= MIN_BOOKINGS and f.cancelled / f.booked >= CANCELLED_HIGH
    if leak:
        out.append(
            Finding(
                "problem",
                "Bookings are being cancelled",
                f"{f.cancelled:,} of {f.booked:,} bookings from missed calls "
                f"({_share(f.cancelled, f.booked)}) were cancelled, "
                f"{money(f.cancelled_revenue_cents)} that is not counted as recovered. A "
                "reminder the day before that offers to move the time (reply R) rather "
                "than only to cancel, and booking sooner (fewer days between the call and "
                "the visit), keeps more of them.",
            )
        )
    if f.still_booked:
        cancelled = (
            f"; {f.cancelled:,} more were booked and then cancelled "
            f"({money(f.cancelled_revenue_cents)}, not counted)"
            if f.cancelled
            else ""
        )
        out.append(
            Finding(
                "good",
                "Revenue recovered",
                f"{f.still_booked:,} bookings from missed calls not cancelled, worth "
                f"{money(f.revenue_cents)} ({money(f.revenue_cents // f.missed)} per missed "
                f"call){cancelled}"
                + (
                    f"; {f.booked_unpriced:,} had no price in your service list"
                    if f.booked_unpriced
                    else ""
                )
                + ".",
            )
        )
    elif f.cancelled and not leak:
        out.append(
            Finding(
                "problem",
                "No booking from missed calls stands",
                f"All {f.cancelled:,} bookings from missed calls were cancelled "
                f"({money(f.cancelled_revenue_cents)}): nothing recovered yet.",
            )
        )
    return out


# --- keeping the booking ------------------------------------------------------------------

MIN_APPOINTMENTS = 10
NO_SHOWS_HIGH = 0.10
NO_SHOWS_LOW = 0.05
CONFIRMED_LOW = 0.40
CANCELLED_HIGH = 0.15


def diagnose_retention(r: Retention) -> list[Finding]:
    """Where the retention funnel leaks, in plain words: unreminded visits, no-shows,
    patients who do not confirm, cancellations that were not moved to another time."""
    out: list[Finding] = []
    if r.appointments < MIN_APPOINTMENTS:
        return out
    if r.reminders_sent == 0 and r.upcoming + r.kept + r.no_shows:
        out.append(
            Finding(
                "problem",
                "No appointment reminders went out",
                f"None of the {r.appointments:,} appointments got a reminder. Check "
                "`reminders` in the locations file, and that imported patients agreed to "
                "texts.",
            )
        )
    due = r.kept + r.no_shows
    if due >= MIN_APPOINTMENTS and r.no_shows / due >= NO_SHOWS_HIGH:
        out.append(
            Finding(
                "problem",
                "Patients are not showing up",
                f"{r.no_shows:,} of {due:,} visits that came due were no-shows "
                f"({_share(r.no_shows, due)}). A reminder two days before and another two "
                "hours before, each asking for a C, cuts no-shows; the no-show text offers "
                "another time.",
            )
        )
    elif due >= MIN_APPOINTMENTS and r.no_shows / due < NO_SHOWS_LOW:
        out.append(
            Finding(
                "good",
                "Patients show up",
                f"Only {r.no_shows:,} of {due:,} visits that came due were no-shows "
                f"({_share(r.no_shows, due)}).",
            )
        )
    if r.reminded >= MIN_APPOINTMENTS and r.reminded_confirmed / r.reminded < CONFIRMED_LOW:
        out.append(
            Finding(
                "problem",
                "Few patients confirm after a reminder",
                f"{r.reminded_confirmed:,} of {r.reminded:,} reminded appointments were "
                f"confirmed ({_share(r.reminded_confirmed, r.reminded)}). A shorter reminder "
                "that names the day and time and asks for a one-letter reply gets more "
                "answers; call the unconfirmed ones the day before.",
            )
        )
    lost = r.cancelled + r.rescheduled
    if lost / r.appointments >= CANCELLED_HIGH:
        out.append(
            Finding(
                "problem",
                "Appointments lost to cancellations",
                f"{r.cancelled:,} of {r.appointments:,} appointments were cancelled "
                f"({_share(r.cancelled, r.appointments)}) and {r.rescheduled:,} moved to "
                "another time. Replying R to a reminder reschedules in the thread: "
                "mention it at the desk so patients move a visit instead of dropping it.",
            )
        )
    return out


# --- refilling and coming back ------------------------------------------------------------

MIN_FREED = 3
REFILLED_LOW = 0.30
REBOOKED_LOW = 0.10


def diagnose_refills(r: Refills, k: Retention) -> list[Finding]:
    """Where the retention funnel leaks after a booking is lost or a visit is over, in
    plain words: cancelled slots nobody refills, rebooking texts nobody answers."""
    out: list[Finding] = []
    if r.refilled:
        out.append(
            Finding(
                "good",
                "The waitlist refills cancelled slots",
                f"{r.refilled:,} cancelled slots were booked again from the waitlist "
                f"({money(r.refilled_revenue_cents)}).",
            )
        )
    if r.slots_freed >= MIN_FREED and r.refilled / r.slots_freed < REFILLED_LOW:
        out.append(
            Finding(
                "problem",
                "Cancelled slots stay empty",
                f"Only {r.refilled:,} of {r.slots_freed:,} slots freed for the waitlist were "
                f"booked again ({_share(r.refilled, r.slots_freed)}); "
                f"{r.waitlist_offers:,} offers went out. Put more patients on the waitlist "
                "(anyone who asks for a full day) and with wider times.",
            )
        )
    elif k.cancelled >= MIN_APPOINTMENTS and r.slots_freed == 0:
        out.append(
            Finding(
                "problem",
                "Nobody waits for a cancelled slot",
                f"{k.cancelled:,} appointments were cancelled and no one was on the waitlist "
                "for them. Add patients who want an earlier time to the waitlist: a freed "
                "slot is then texted to them and the first yes books it.",
            )
        )
    if r.rebook_texts >= MIN_APPOINTMENTS and r.rebooked / r.rebook_texts < REBOOKED_LOW:
        out.append(
            Finding(
                "problem",
                "Patients do not come back when due",
                f"{r.rebooked:,} of {r.rebook_texts:,} patients texted that their treatment "
                f"was due again booked ({_share(r.rebooked, r.rebook_texts)}). Check the "
                "treatment intervals, and offer times on the days they used to come.",
            )
        )
    return out
