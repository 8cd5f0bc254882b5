"""The funnel's arithmetic and wording, without a database: Wilson intervals, the z-test,
histogram percentiles, and the diagnosis a clinic owner reads."""

from __future__ import annotations

import math

import pytest

from ringback.funnel.figures import (
    Finding,
    Funnel,
    Heatmap,
    Histogram,
    Latency,
    LatencyStats,
    Money,
    ReasonFigures,
    Variants,
    bucket_of,
    compare_variants,
    diagnose,
    duration,
    funnel_from,
    heatmap_of,
    money,
    two_proportion_z,
    variant_figures,
    wilson,
)
from ringback.models import FUNNEL_LATENCY_BOUNDS_MS

# --- Wilson intervals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("successes", "n", "low", "high"),
    [
        # Worked by hand from (p + z²/2n ± z√(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964.
        (2, 3, 0.207660, 0.938508),
        (0, 10, 0.0, 0.277533),
        (10, 10, 0.722467, 1.0),
        (45, 100, 0.356145, 0.547553),
    ],
)
def test_wilson_interval(successes: int, n: int, low: float, high: float) -> None:
    interval = wilson(successes, n)
    assert interval is not None
    assert interval.low == pytest.approx(low, abs=1e-6)
    assert interval.high == pytest.approx(high, abs=1e-6)


def test_wilson_needs_a_sample_and_a_possible_count() -> None:
    assert wilson(0, 0) is None
    with pytest.raises(ValueError, match="successes: expected 0 to 3, got 4"):
        wilson(4, 3)


# --- two-proportion z-test ----------------------------------------------------------------------


def test_clear_difference_is_significant() -> None:
    test = two_proportion_z(40, 200, 70, 200)
    assert test is not None
    # pooled p = 0.275, se = √(0.275·0.725·(2/200)) = 0.0446514, z = 0.15 / se
    assert test.z == pytest.approx(3.359357, abs=1e-5)
    assert test.p_value == pytest.approx(math.erfc(3.359357 / math.sqrt(2)), rel=1e-4)
    assert test.p_value == pytest.approx(0.000781, abs=1e-5)
    assert test.significant


def test_small_difference_is_not_significant() -> None:
    test = two_proportion_z(20, 100, 25, 100)
    assert test is not None
    assert test.z == pytest.approx(0.846668, abs=1e-5)  # pooled 0.225, se 0.0590551
    assert test.p_value == pytest.approx(0.397182, abs=1e-5)
    assert not test.significant


def test_z_test_edge_cases() -> None:
    assert two_proportion_z(0, 0, 1, 2) is None
    same = two_proportion_z(0, 10, 0, 10)  # no variance at all
    assert same is not None
    assert (same.z, same.p_value, same.significant) == (0.0, 1.0, False)


def test_variant_comparison_words_the_verdict() -> None:
    a = variant_figures("A", texted=200, replied=40, booked=20)
    b = variant_figures("B", texted=200, replied=70, booked=22)
    reply, booking = compare_variants([a, b])
    assert (reply.metric, reply.baseline, reply.variant) == ("reply", "A", "B")
    assert reply.significant
    assert reply.difference == pytest.approx(0.15)
    assert reply.verdict == (
        "Template B gets more replies than A (15.0 points, p < 0.001): the difference is "
        "unlikely to be chance."
    )
    assert not booking.significant
    assert booking.verdict.startswith("No clear difference in bookings between A and B yet (p = ")
    assert compare_variants([a]) == []


# --- latency histograms ------------------------------------------------------------------------


def test_buckets_are_inclusive_upper_bounds() -> None:
    assert bucket_of(0) == 0
    assert bucket_of(100) == 0
    assert bucket_of(101) == 1
    assert bucket_of(1_250) == FUNNEL_LATENCY_BOUNDS_MS.index(1_250)
    assert bucket_of(86_400_001) == len(FUNNEL_LATENCY_BOUNDS_MS)


def test_percentiles_are_nearest_rank_bucket_bounds_capped_by_the_slowest() -> None:
    histogram = Histogram.of([600, 800, 900, 1200, 1400, 2500, 45_000])
    assert histogram.n == 7
    assert histogram.percentile(50) == 1_250  # 4th of 7 is 1.2 s, in the <= 1.25 s bucket
    assert histogram.percentile(90) == 45_000  # 7th of 7
    assert histogram.percentile(99) == 45_000
    assert histogram.percentile(1) == 600
    small = Histogram.of([130])
    assert small.percentile(50) == 130  # the bound (200) is tightened to the slowest seen
    huge = Histogram.of([100_000_000])
    assert huge.percentile(99) == 100_000_000  # past the last bound: the maximum itself
    assert Histogram().percentile(50) is None


def test_histograms_add_up_and_clamp_negative_latencies() -> None:
    total = Histogram.of([-5, 300]) + Histogram.of([2_000])
    assert total.n == 3
    assert total.sum_ms == 2_300
    assert total.max_ms == 2_000
    stats = LatencyStats.of(total)
    assert (stats.n, stats.mean_ms, stats.p50_ms, stats.max_ms) == (3, 767, 300, 2_000)


def test_people_read_durations_and_money() -> None:
    assert [duration(v) for v in (None, 850, 1_250, 1_000, 45_000, 90_000, 5_400_000)] == [
        "–",
        "850 ms",
        "1.2 s",
        "1 s",
        "45 s",
        "1.5 min",
        "1.5 h",
    ]
    assert money(157_900) == "$1,579"
    assert money(11_278) == "$112.78"


def test_heatmap_peak_is_the_busiest_hour_earliest_in_the_week() -> None:
    grid = [[0] * 24 for _ in range(7)]
    grid[4][10] = 3
    grid[1][17] = 3
    heatmap = heatmap_of(grid)
    assert (heatmap.peak_weekday, heatmap.peak_hour, heatmap.peak_count) == (1, 17, 3)
    empty = heatmap_of([[0] * 24 for _ in range(7)])
    assert (empty.peak_weekday, empty.peak_hour, empty.peak_count) == (None, None, 0)


# --- diagnosis --------------------------------------------------------------------------------


def funnel(**counters: int) -> Funnel:
    return funnel_from(counters, Money(revenue_cents=counters.pop("revenue", 0)))


def latency(textback: list[int] | None = None, reply: list[int] | None = None) -> Latency:
    return Latency(
        textback=LatencyStats.of(Histogram.of(textback or [])),
        reply=LatencyStats.of(Histogram.of(reply or [])),
    )


NO_VARIANTS = Variants(variants=[], comparisons=[])
QUIET = heatmap_of([[0] * 24 for _ in range(7)])


def headlines(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.kind, f.headline) for f in findings]


def test_no_missed_calls_says_so() -> None:
    assert diagnose(funnel(), [], QUIET, latency(), NO_VARIANTS) == [
        Finding("info", "No missed calls", "No calls were missed in this period.")
    ]


def test_low_reply_rate_points_at_the_message_and_its_speed() -> None:
    f = funnel(missed=100, to_text=80, texted=80, delivered=78, replied=12, qualified=8,
               booked_bot=6)  # fmt: skip
    findings = diagnose(f, [], QUIET, latency(textback=[90_000] * 20), NO_VARIANTS)
    assert ("problem", "Few callers reply") in headlines(findings)
    assert ("problem", "Text-backs are slow") in headlines(findings)
    few = next(x for x in findings if x.headline == "Few callers reply")
    assert few.detail.startswith("Only 12 of 80 texted callers (15%) replied.")
    assert "first message and its speed" in few.detail
    slow = next(x for x in findings if x.headline == "Text-backs are slow")
    assert "1 in 10 took longer than 1.5 min" in slow.detail


def test_replies_without_bookings_point_at_booking_friction_or_availability() -> None:
    f = funnel(missed=100, to_text=80, texted=80, delivered=80, replied=40, qualified=30,
               booked_page=4, booked_bot=2)  # fmt: skip
    findings = diagnose(f, [], QUIET, latency(textback=[800] * 20), NO_VARIANTS)
    assert ("good", "Callers answer the text-back") in headlines(findings)
    assert ("good", "Text-backs are fast") in headlines(findings)
    stuck = next(x for x in findings if x.headline == "Replies aren't turning into bookings")
    assert stuck.kind == "problem"
    assert stuck.detail == (
        "40 callers replied but 6 booked (15%). 24 were qualified and offered a booking "
        "without booking: that points to booking friction (the booking page, deposits) or "
        "no open times soon enough (availability)."
    )


def test_many_screened_out_names_the_main_reasons_and_what_to_do() -> None:
    f = funnel(missed=100, screened_out=40, screened_anonymous=25, screened_landline=10,
               screened_cooldown=5, to_text=60, texted=60, delivered=60, replied=30,
               booked_bot=12, revenue=576_000)  # fmt: skip
    findings = diagnose(f, [], QUIET, latency(), NO_VARIANTS)
    screened = next(x for x in findings if x.headline == "Many missed callers can't be texted")
    assert screened.detail == (
        "40 of 100 missed calls (40%) were screened out, mostly hidden caller ID (25) and "
        "landline (10). These callers hid their number, so there is nothing to text back: "
        "answer more calls at those times, or invite callers in your greeting to text you."
    )
    revenue = findings[-1]
    assert revenue == Finding(
        "good",
        "Revenue recovered",
        "12 bookings from missed calls not cancelled, worth $5,760 ($57.60 per missed call).",
    )


def test_delivery_and_sending_problems_are_named() -> None:
    f = funnel(missed=50, to_text=50, texted=40, delivered=30, replied=15)
    findings = dict((h, k) for k, h in headlines(diagnose(f, [], QUIET, latency(), NO_VARIANTS)))
    assert findings["Some text-backs didn't go out"] == "problem"
    assert findings["Carriers aren't delivering every text-back"] == "problem"


def test_reasons_and_peak_are_worded() -> None:
    reasons = [
        ReasonFigures("staff_busy", "Front desk busy", 30, 30, 25, 12, 9, 0, 0, 0.3, 0.3),
        ReasonFigures("after_hours", "After hours", 20, 18, 15, 4, 1, 0, 0, 0.05, 0.055),
    ]
    grid = [[0] * 24 for _ in range(7)]
    grid[1][10] = 7
    heatmap: Heatmap = heatmap_of(grid)
    findings = diagnose(funnel(missed=50), reasons, heatmap, latency(), NO_VARIANTS)
    assert findings[0] == Finding(
        "info",
        "Most missed calls: front desk busy",
        "30 of 50 missed calls (60%): the front desk was on another call: an extra person or "
        "line at the busiest hours would catch more of them.",
    )
    assert findings[1] == Finding(
        "info",
        "Busiest time for missed calls",
        "Tuesdays 10 AM–11 AM (7 missed calls, local time).",
    )
    assert findings[-1] == Finding(
        "info",
        "Recovery by reason",
        "Calls missed with front desk busy are recovered best (30% booked), with after hours "
        "least (5%).",
    )


def test_significant_template_difference_is_reported() -> None:
    a = variant_figures("A", texted=200, replied=40, booked=20)
    b = variant_figures("B", texted=200, replied=70, booked=22)
    variants = Variants(variants=[a, b], comparisons=compare_variants([a, b]))
    findings = diagnose(funnel(missed=5), [], QUIET, latency(), variants)
    assert ("good", "Templates A and B: replies") in headlines(findings)
    # An insignificant booking difference is left to the table, not the diagnosis.
    assert ("info", "Templates A and B: bookings") not in headlines(findings)
