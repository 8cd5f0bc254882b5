"""Honest numbers (issue #12), end to end: missed calls over signed webhooks, three patients
book by text, one cancels by text, the front desk cancels another, the third reschedules,
and staff mark a fourth booked by hand. Every figure is then read on every surface (the
API, ``ringback report`` JSON, table and CSV, ``ringback export-calls``, the dashboard and
``/metrics``), before and after the rescheduled appointment's start has passed. No rebuild
in between: cancelling and rescheduling mark the booking's day for recomputing."""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ringback.booking import service as booking
from ringback.db import transaction
from ringback.models import Appointment
from tests.conftest import Service, wait_for
from tests.staff.conftest import add_user, sign_in
from tests.support.api import make_token
from tests.support.booking import scheduling
from tests.support.funnel import (
    cli_report,
    conversation_for,
    metric_total,
    ringback,
    staff_books,
    without_time,
)
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

DAY = "2026-11-24"  # the test clock's Tuesday, in Los Angeles
RANGE = {"since": DAY, "until": DAY}
BOTOX = 48_000  # the demo spa's list price, cents


def book_by_text(service: Service, caller: str) -> None:
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon, ive been before")
    assert "Reply 1, 2 or 3" in next_text(service, caller, 2)
    text_in(service, caller, "1")
    assert "You're booked!" in next_text(service, caller, 3)


def funnel_now(service: Service, headers: dict[str, str]) -> dict[str, Any]:
    response = service.http.get(service.url + "/api/v1/funnel", params=RANGE, headers=headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def outcome_figures(f: dict[str, Any]) -> dict[str, int]:
    names = (
        "booked",
        "cancelled",
        "still_booked",
        "kept",
        "upcoming",
        "booked_time_unknown",
        "rebooked",
        "revenue_cents",
        "cancelled_revenue_cents",
    )
    return {name: f[name] for name in names}


def test_book_cancel_reschedule_every_figure_on_every_surface(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    cancels_by_text, desk_cancels, reschedules = (caller_number(n) for n in (611, 612, 613))
    for caller in (cancels_by_text, desk_cancels, reschedules):
        book_by_text(service, caller)
    marked = caller_number(614)
    miss(service, marked)
    next_text(service, marked, 1)
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    staff_books(service, owner, marked, "650")
    token = make_token(service, "cfo@glow.example")

    # Four bookings, none cancelled yet: this read also brings the rollups up to date, so
    # what follows must move them through the dirty marks.
    before = funnel_now(service, token.headers)["total"]
    assert outcome_figures(before) == {
        "booked": 4,
        "cancelled": 0,
        "still_booked": 4,
        "kept": 0,
        "upcoming": 3,
        "booked_time_unknown": 1,
        "rebooked": 0,
        "revenue_cents": 3 * BOTOX + 65_000,
        "cancelled_revenue_cents": 0,
    }

    # One cancels by text, the front desk cancels another, the third moves to Friday; each
    # step is read back at once, so each must have marked the day of the call it booked.
    text_in(service, cancels_by_text, "X")
    assert "Reply X again to cancel" in next_text(service, cancels_by_text, 4)
    text_in(service, cancels_by_text, "X")
    assert "is cancelled" in next_text(service, cancels_by_text, 5)
    wait_for(
        lambda: service.scalar(select(Appointment.id).where(Appointment.status == "cancelled")),
        what="the cancelled appointment",
    )
    f = funnel_now(service, token.headers)["total"]
    assert (f["cancelled"], f["still_booked"], f["revenue_cents"]) == (1, 3, 2 * BOTOX + 65_000)
    deps = service.runtime.deps
    location = service.locations.get("glow-downtown")
    assert location is not None
    with transaction(deps.sessions) as session:
        appointment = session.scalars(
            select(Appointment).where(
                Appointment.conversation_id == conversation_for(service, desk_cancels)
            )
        ).one()
        assert booking.cancel(session, deps, location, appointment, by="staff")
    f = funnel_now(service, token.headers)["total"]
    assert (f["cancelled"], f["still_booked"], f["revenue_cents"]) == (2, 2, BOTOX + 65_000)
    text_in(service, reschedules, "can I reschedule to friday morning?")
    next_text(service, reschedules, 4)
    text_in(service, reschedules, "1")
    assert "You're now booked for Botox on Fri Nov 27" in next_text(service, reschedules, 5)
    wait_for(
        lambda: service.scalar(
            select(Appointment.id).where(Appointment.rescheduled_from_id.is_not(None))
        ),
        what="the rescheduled appointment",
    )

    after = funnel_now(service, token.headers)
    f = after["total"]
    assert outcome_figures(f) == {
        "booked": 4,  # every booking made, cancelled ones too
        "cancelled": 2,
        "still_booked": 2,
        "kept": 0,
        "upcoming": 1,  # the rescheduled one, Friday
        "booked_time_unknown": 1,  # marked booked by staff, no appointment time
        "rebooked": 1,  # counted once, at its current value
        "revenue_cents": BOTOX + 65_000,
        "cancelled_revenue_cents": 2 * BOTOX,
    }
    assert f["booked_by"] == {"bot": 3, "page": 0, "staff": 1, "other": 0}
    assert f["missed"] == 4
    assert f["rates"]["recovered_of_missed"] == 2 / 4
    assert f["rates"]["cancelled_of_booked"] == 2 / 4
    assert f["rates"]["booked_of_texted"] == 4 / 4
    (reason,) = after["reasons"]
    assert (reason["booked"], reason["cancelled"], reason["revenue_cents"]) == (
        4,
        2,
        BOTOX + 65_000,
    )
    assert reason["recovery_rate"] == 2 / 4
    (downtown,) = [loc for loc in after["locations"] if loc["id"] == "glow-downtown"]
    assert outcome_figures(downtown["funnel"]) == outcome_figures(f)
    headlines = {d["headline"]: d["detail"] for d in after["diagnosis"]}
    assert headlines["Bookings are being cancelled"].startswith(
        "2 of 4 bookings from missed calls (50%) were cancelled, $960 that is not counted"
    )
    assert headlines["Revenue recovered"] == (
        "2 bookings from missed calls not cancelled, worth $1,130 ($282.50 per missed call); "
        "2 more were booked and then cancelled ($960, not counted)."
    )

    # Friday passes: the rescheduled booking moves from upcoming to kept.
    service.clock.advance(timedelta(days=9))
    later = funnel_now(service, token.headers)
    f = later["total"]
    assert (f["kept"], f["upcoming"], f["booked_time_unknown"], f["still_booked"]) == (1, 0, 1, 2)
    assert f["booked"] == f["cancelled"] + f["kept"] + f["upcoming"] + f["booked_time_unknown"]

    # ``ringback report`` (real time, after the test clock's) agrees with the API.
    assert without_time(cli_report(service, DAY, DAY)) == without_time(later)
    assert without_time(cli_report(service, DAY, DAY, "--rebuild")) == without_time(later)
    table = ringback(service, "report", "--since", DAY, "--until", DAY)
    assert table.returncode == 0, table.stderr
    assert re.search(r"Cancelled since\s+2\s+50% of previous", table.stdout), table.stdout
    assert re.search(r"Still booked \(not cancelled\)\s+2", table.stdout)
    assert re.search(r"Kept \(start passed\)\s+1\n", table.stdout)
    assert re.search(r"Rescheduled \(counted once\)\s+1\n", table.stdout)
    assert re.search(r"Revenue recovered\s+\$1,130  not counting cancelled", table.stdout)
    assert "Bookings are being cancelled" in table.stdout
    as_csv = ringback(service, "report", "--format", "csv", "--since", DAY, "--until", DAY)
    assert as_csv.returncode == 0, as_csv.stderr
    rows = {r["location_id"]: r for r in csv.DictReader(io.StringIO(as_csv.stdout))}
    assert {k: int(v) for k, v in rows["all"].items() if k in outcome_figures(f)} == (
        outcome_figures(f)
    )

    # One row per missed call; its revenue column adds up to revenue recovered.
    export = ringback(service, "export-calls", "--since", DAY, "--until", DAY)
    assert export.returncode == 0, export.stderr
    calls = {r["caller"]: r for r in csv.DictReader(io.StringIO(export.stdout))}
    assert {
        caller: (r["booking"], r["rescheduled"], r["booking_value_cents"], r["revenue_cents"])
        for caller, r in calls.items()
    } == {
        cancels_by_text: ("cancelled", "no", str(BOTOX), "0"),
        desk_cancels: ("cancelled", "no", str(BOTOX), "0"),
        reschedules: ("kept", "yes", str(BOTOX), str(BOTOX)),
        marked: ("booked", "no", "65000", "65000"),
    }
    assert calls[reschedules]["appointment_at"].startswith("2026-11-27T")
    assert sum(int(r["revenue_cents"] or 0) for r in calls.values()) == f["revenue_cents"]

    # The dashboard says the same, in words (signed in again: nine days ended the session).
    page = sign_in(service, "owner@glow.example").get("/staff/dashboard", params=RANGE)
    assert page.status_code == 200
    text = html.unescape(re.sub(r"\s+", " ", page.text))
    kpi = re.search(r'id="kpi-booked">(.*?)</li>', text)
    assert kpi is not None
    parts = [p.strip() for p in re.split(r"<[^>]+>", kpi.group(1)) if p.strip()]
    assert parts[:2] == ["2", "Booked, not cancelled"]
    assert "4 booked, 2 cancelled since" in kpi.group(1)
    revenue = re.search(r'id="kpi-revenue">(.*?)</li>', text)
    assert revenue is not None
    assert ">$1,130<" in revenue.group(1)
    assert "excludes cancelled bookings ($960 cancelled)" in revenue.group(1)
    bookings = re.search(r'id="bookings">(.*?)</table>', text)
    assert bookings is not None
    cells = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", bookings.group(1))
    assert cells == [
        ("Booked", "4"),
        ("Cancelled since", "2"),
        ("Still booked (not cancelled)", "2"),
        ("· kept (start passed, not cancelled; no-shows: see Keeping the booking)", "1"),
        ("· upcoming", "0"),
        ("· no appointment time (marked booked by staff)", "1"),
        ("Rescheduled, still booked (counted once)", "1"),
    ]
    assert "Bookings are being cancelled" in text
    assert "2 of 4 bookings from missed calls (50%) were cancelled" in text

    # /metrics: all-time, from the same rollups.
    scrape = service.http.get(service.url + "/metrics")
    assert scrape.status_code == 200
    metrics = scrape.text
    assert metric_total(metrics, "ringback_bookings_total") == 4
    assert metric_total(metrics, "ringback_bookings_cancelled_total") == 2
    outcomes = {
        name: metric_total(metrics, "ringback_bookings_outcome", outcome=name)
        for name in ("kept", "upcoming", "time_unknown", "cancelled")
    }
    assert outcomes == {"kept": 1, "upcoming": 0, "time_unknown": 1, "cancelled": 2}
    assert metric_total(metrics, "ringback_bookings_rebooked") == 1
    assert metric_total(metrics, "ringback_recovered_revenue_dollars") == 1_130
    assert metric_total(metrics, "ringback_cancelled_revenue_dollars") == 960
    assert "+1213555" not in metrics
