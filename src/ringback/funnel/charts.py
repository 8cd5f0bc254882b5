"""Charts for the dashboard as server-side SVG: no JavaScript, readable on a phone.

Each chart is sized for a phone (a ~360-unit-wide viewBox, so its text is close to the
page's size there) and scales up on wider screens. Every chart carries a title and a
description for screen readers, and each mark a ``<title>`` with its exact figure.
Labels are escaped; the output is safe to drop into a template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from markupsafe import Markup, escape

from ringback.funnel.figures import DayFigures, Heatmap, ReasonFigures, hour_label, percent

INK = "#1d1b26"
MUTED = "#55526a"
BRAND = "#5b2fe0"
PALE = "#d9d0fb"
GOOD = "#0c6b44"
GRID = "#e6e2f3"
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class Step:
    """One bar of the funnel chart: ``note`` says what it is a share of."""

    label: str
    count: int
    note: str = ""


def _svg(chart_id: str, width: int, height: int, title: str, desc: str, body: str) -> Markup:
    # Every label that reaches the markup went through escape(); the rest are numbers.
    return Markup(  # noqa: S704
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" {FONT}>'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>{body}</svg>'
    )


def funnel_chart(steps: Sequence[Step], chart_id: str = "funnel-chart") -> Markup:
    """Horizontal bars, each as long as its count against the first step's."""
    width, row = 360, 42
    top = max((s.count for s in steps), default=0) or 1
    parts = []
    for i, step in enumerate(steps):
        y = i * row
        bar = max(2.0, 340 * step.count / top) if step.count else 0.0
        parts.append(
            f"<g><title>{escape(step.label)}: {step.count:,}"
            f"{escape(' (' + step.note + ')') if step.note else ''}</title>"
            f'<text x="0" y="{y + 14}" font-size="13" fill="{INK}">{escape(step.label)}</text>'
            f'<text x="{width}" y="{y + 14}" font-size="13" font-weight="700" fill="{INK}" '
            f'text-anchor="end">{step.count:,}'
            + (
                f'<tspan font-weight="400" fill="{MUTED}"> · {escape(step.note)}</tspan>'
                if step.note
                else ""
            )
            + "</text>"
            f'<rect x="0" y="{y + 20}" width="{width}" height="14" rx="4" fill="{GRID}"/>'
            f'<rect x="0" y="{y + 20}" width="{bar:.1f}" height="14" rx="4" '
            f'fill="{GOOD if i == len(steps) - 1 else BRAND}"/></g>'
        )
    desc = "; ".join(f"{s.label} {s.count:,}" + (f" ({s.note})" if s.note else "") for s in steps)
    return _svg(chart_id, width, row * len(steps), "The recovery funnel", desc, "".join(parts))


def _periods(days: Sequence[DayFigures]) -> tuple[str, list[tuple[date, date, DayFigures]]]:
    """Days as they are, or weeks (from Monday) when there are too many to show one by one."""
    if len(days) <= 92:
        return "day", [(d.day, d.day, d) for d in days]
    weeks: dict[date, list[DayFigures]] = {}
    for d in days:
        weeks.setdefault(d.day - timedelta(days=d.day.weekday()), []).append(d)
    out = []
    for start, items in sorted(weeks.items()):
        out.append(
            (
                items[0].day,
                items[-1].day,
                DayFigures(
                    day=start,
                    missed=sum(i.missed for i in items),
                    texted=sum(i.texted for i in items),
                    replied=sum(i.replied for i in items),
                    booked=sum(i.booked for i in items),
                ),
            )
        )
    return "week", out


def _nice_max(value: int) -> int:
    if value <= 5:
        return 5
    magnitude = 10 ** (len(str(value)) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = int(step * magnitude)
        if top >= value:
            return top
    return value  # pragma: no cover


def trend_chart(days: Sequence[DayFigures], chart_id: str = "trend-chart") -> Markup:
    """Missed calls (pale) and bookings (green) per day, or per week for long ranges."""
    width, height, left, bottom = 360, 170, 34, 22
    unit, periods = _periods(days)
    top = _nice_max(max((p[2].missed for p in periods), default=0))
    plot_w, plot_h = width - left, height - bottom - 8
    n = max(1, len(periods))
    slot = plot_w / n
    bar_w = max(0.6, slot * 0.8)
    parts = []
    for fraction in (0.0, 0.5, 1.0):
        y = 8 + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{width}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" font-size="11" fill="{MUTED}" '
            f'text-anchor="end">{round(top * fraction):,}</text>'
        )
    for i, (first, last, figures) in enumerate(periods):
        x = left + i * slot + (slot - bar_w) / 2
        missed_h = plot_h * figures.missed / top
        booked_h = plot_h * figures.booked / top
        when = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
        parts.append(
            f"<g><title>{escape(when)}: {figures.missed:,} missed, {figures.texted:,} texted, "
            f"{figures.replied:,} replied, {figures.booked:,} booked</title>"
            f'<rect x="{x:.2f}" y="{8 + plot_h - missed_h:.2f}" width="{bar_w:.2f}" '
            f'height="{missed_h:.2f}" fill="{PALE}"/>'
            f'<rect x="{x:.2f}" y="{8 + plot_h - booked_h:.2f}" width="{bar_w:.2f}" '
            f'height="{booked_h:.2f}" fill="{GOOD}"/></g>'
        )
    if periods:
        for index, anchor in ((0, "start"), (len(periods) - 1, "end")):
            first = periods[index][0]
            x = left if anchor == "start" else width
            parts.append(
                f'<text x="{x}" y="{height - 6}" font-size="11" fill="{MUTED}" '
                f'text-anchor="{anchor}">{first:%b} {first.day}</text>'
            )
    total_missed = sum(p[2].missed for p in periods)
    total_booked = sum(p[2].booked for p in periods)
    desc = (
        f"Missed calls and bookings per {unit}, {len(periods)} {unit}s: {total_missed:,} "
        f"missed and {total_booked:,} booked in all."
    )
    return _svg(
        chart_id, width, height, f"Missed calls and bookings per {unit}", desc, "".join(parts)
    )


def heatmap_chart(heatmap: Heatmap, chart_id: str = "heatmap-chart") -> Markup:
    """Missed calls by local weekday and hour: darker is more."""
    left, top_pad, cell_w, cell_h = 34, 16, 14, 18
    width = left + 24 * cell_w
    height = top_pad + 7 * cell_h + 4
    peak = max((max(row) for row in heatmap.counts), default=0) or 1
    parts = []
    for hour in range(0, 24, 3):
        parts.append(
            f'<text x="{left + hour * cell_w}" y="11" font-size="10" fill="{MUTED}">'
            f"{hour_label(hour).replace(' ', '').lower()}</text>"
        )
    for day, row in enumerate(heatmap.counts):
        y = top_pad + day * cell_h
        parts.append(f'<text x="0" y="{y + 13}" font-size="11" fill="{INK}">{DAYS[day]}</text>')
        for hour, count in enumerate(row):
            share = count / peak
            # From the page's pale lilac to the brand colour, by share of the busiest hour.
            red = round(0xF1 + (0x5B - 0xF1) * share)
            green = round(0xEE + (0x2F - 0xEE) * share)
            blue = round(0xFC + (0xE0 - 0xFC) * share)
            parts.append(
                f'<rect x="{left + hour * cell_w}" y="{y}" width="{cell_w - 1}" '
                f'height="{cell_h - 2}" rx="2" fill="#{red:02x}{green:02x}{blue:02x}">'
                f"<title>{DAYS[day]} {hour_label(hour)}: {count:,} missed</title></rect>"
            )
    if heatmap.peak_weekday is not None and heatmap.peak_hour is not None:
        desc = (
            f"Busiest: {DAYS[heatmap.peak_weekday]} {hour_label(heatmap.peak_hour)}, "
            f"{heatmap.peak_count:,} missed calls."
        )
    else:
        desc = "No missed calls in this period."
    return _svg(
        chart_id,
        width,
        height,
        "Missed calls by weekday and hour (local time)",
        desc,
        "".join(parts),
    )


def reasons_chart(reasons: Sequence[ReasonFigures], chart_id: str = "reasons-chart") -> Markup:
    """Per miss reason: missed (pale) with the booked part (green), and the recovery rate."""
    width, row = 360, 40
    top = max((r.missed for r in reasons), default=0) or 1
    parts = []
    for i, r in enumerate(reasons):
        y = i * row
        missed_w = 300 * r.missed / top
        booked_w = 300 * r.booked / top
        parts.append(
            f"<g><title>{escape(r.label)}: {r.missed:,} missed, {r.booked:,} booked "
            f"({percent(r.recovery_rate)} recovered)</title>"
            f'<text x="0" y="{y + 13}" font-size="13" fill="{INK}">{escape(r.label)}</text>'
            f'<text x="{width}" y="{y + 13}" font-size="13" fill="{MUTED}" text-anchor="end">'
            f"{r.booked:,} of {r.missed:,} booked</text>"
            f'<rect x="0" y="{y + 19}" width="{missed_w:.1f}" height="13" rx="3" fill="{PALE}"/>'
            f'<rect x="0" y="{y + 19}" width="{booked_w:.1f}" height="13" rx="3" fill="{GOOD}"/>'
            f'<text x="{min(missed_w + 6, 310):.1f}" y="{y + 30}" font-size="11" '
            f'fill="{INK}">{percent(r.recovery_rate)}</text></g>'
        )
    desc = "; ".join(
        f"{r.label}: {r.missed:,} missed, {r.booked:,} booked ({percent(r.recovery_rate)})"
        for r in reasons
    )
    return _svg(
        chart_id,
        width,
        max(row, row * len(reasons)),
        "Why calls were missed, and how many were recovered",
        desc or "No missed calls in this period.",
        "".join(parts),
    )
