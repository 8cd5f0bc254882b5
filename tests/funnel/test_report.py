"""The report on a hand-built history (tests/funnel/dataset.py) in a migrated database:
every figure checked against numbers worked out by hand, the rollups kept up to date by
the domain's hooks, the demo seeder's rollups equal to a rebuild, and the per-call CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Locations, load_locations
from ringback.conversation import service as conversation_service
from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.funnel import queries, rollup
from ringback.funnel.export import COLUMNS, stream_calls_csv
from ringback.funnel.figures import Report
from ringback.funnel.report import load_report, report_json
from ringback.funnel.seed import SeedError, seed_history
from ringback.models import Call, Conversation, Message, funnel_dirty
from tests.conftest import DEMO_LOCATIONS
from tests.funnel.dataset import DOWNTOWN, HISTORY, LA, WESTSIDE, Miss, add_history, at

NOW = datetime(2026, 3, 12, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def locations() -> Locations:
    return load_locations(DEMO_LOCATIONS)


@pytest.fixture
def history(sessions: sessionmaker[Session], locations: Locations) -> sessionmaker[Session]:
    with transaction(sessions) as session:
        add_history(session)
    rollup.rebuild(sessions, locations)
    return sessions


def report(
    sessions: sessionmaker[Session],
    locations: Locations,
    ids: tuple[str, ...] = (DOWNTOWN,),
    since: date = date(2026, 3, 6),
    until: date = date(2026, 3, 10),
) -> Report:
    chosen = [loc for loc in locations if loc.id in ids]
    return load_report(sessions, locations, chosen, since, until, now=NOW)


def test_every_step_of_the_funnel(history: sessionmaker[Session], locations: Locations) -> None:
    f = report(history, locations).total
    assert (f.missed, f.screened_out, f.pending, f.recoverable) == (14, 4, 1, 9)
    assert (f.joined_conversation, f.to_text, f.texted, f.delivered) == (1, 8, 7, 6)
    assert (f.replied, f.qualified, f.booked) == (5, 3, 3)
    assert f.booked_by == {"bot": 1, "page": 1, "staff": 1, "other": 0}
    # Botox at list price $480, Filler as staff entered it ($900, list $750), HydraFacial $199.
    assert f.revenue_cents == 48_000 + 90_000 + 19_900
    assert f.booked_unpriced == 0
    assert (f.handoffs, f.urgent, f.opted_out, f.wrong_number, f.no_reply, f.lost) == (
        1, 1, 1, 0, 1, 0,
    )  # fmt: skip
    assert f.rates["replied"] == pytest.approx(5 / 7)
    assert f.rates["recovered_of_missed"] == pytest.approx(3 / 14)
    assert f.rates["recovered_of_recoverable"] == pytest.approx(3 / 9)


def test_screened_out_by_reason(history: sessionmaker[Session], locations: Locations) -> None:
    f = report(history, locations).total
    assert f.screened_out_by_reason == {
        "anonymous": 1,
        "cooldown": 1,
        "landline": 1,
        "wrong_number": 1,
    }


def test_why_calls_were_missed_and_their_recovery(
    history: sessionmaker[Session], locations: Locations
) -> None:
    reasons = {
        r.reason: (r.missed, r.recoverable, r.texted, r.replied, r.booked, r.revenue_cents)
        for r in report(history, locations).reasons
    }
    assert reasons == {
        "staff_busy": (4, 4, 3, 3, 3, 157_900),
        "no_answer": (4, 2, 2, 1, 0, 0),
        "after_hours": (4, 2, 2, 1, 0, 0),
        "caller_hung_up": (2, 1, 0, 0, 0, 0),
    }
    rates = {r.reason: r.recovery_rate for r in report(history, locations).reasons}
    assert rates == {
        "staff_busy": 0.75,
        "no_answer": 0.0,
        "after_hours": 0.0,
        "caller_hung_up": 0.0,
    }
    assert [r.label for r in report(history, locations).reasons] == [
        "Front desk busy",
        "Nobody answered",
        "After hours",
        "Caller hung up",
    ]


def test_heatmap_is_in_local_time_across_the_dst_change(
    history: sessionmaker[Session], locations: Locations
) -> None:
    heatmap = report(history, locations).heatmap
    cells = {
        (day, hour): count
        for day, row in enumerate(heatmap.counts)
        for hour, count in enumerate(row)
        if count
    }
    mon, tue, fri, sat, sun = 0, 1, 4, 5, 6
    assert cells == {
        (fri, 10): 2,
        (fri, 19): 1,
        (sat, 11): 2,
        # 01:30 PST is 09:30 UTC and 03:30 PDT is 10:30 UTC: one UTC hour apart, two local
        # hours apart. A fixed offset would put the second at 02:30, which did not exist.
        (sun, 1): 1,
        (sun, 3): 1,
        (mon, 9): 2,
        (mon, 14): 1,
        (tue, 16): 1,
        (tue, 17): 2,
        (tue, 23): 1,  # 23:30 local on Tuesday is already Wednesday in UTC
    }
    assert (heatmap.peak_weekday, heatmap.peak_hour, heatmap.peak_count) == (mon, 9, 2)


def test_daily_trend_uses_local_days(history: sessionmaker[Session], locations: Locations) -> None:
    daily = [
        (d.day.isoformat(), d.missed, d.texted, d.replied, d.booked)
        for d in report(history, locations).daily
    ]
    assert daily == [
        ("2026-03-06", 3, 3, 2, 2),
        ("2026-03-07", 2, 1, 0, 0),
        ("2026-03-08", 2, 1, 1, 0),
        ("2026-03-09", 3, 1, 1, 0),
        ("2026-03-10", 4, 1, 1, 1),
    ]
    # Thursday 23:30 local is Friday in UTC, and still counts on Thursday.
    thursday = report(history, locations, since=date(2026, 3, 5), until=date(2026, 3, 5))
    assert (thursday.total.missed, thursday.total.texted) == (1, 1)
    assert [d.day for d in thursday.daily] == [date(2026, 3, 5)]


def test_speed_to_lead_percentiles(history: sessionmaker[Session], locations: Locations) -> None:
    latency = report(history, locations).latency
    tb = latency.textback
    # Sent text-backs: 600, 800, 900, 1200, 1400, 2500 and 45 000 ms after the call ended.
    assert (tb.n, tb.mean_ms, tb.max_ms) == (7, 7_486, 45_000)
    assert (tb.p50_ms, tb.p90_ms, tb.p99_ms) == (1_250, 45_000, 45_000)
    reply = latency.reply
    # Bot answers: 700, 900, 1100, 1300, 2000 ms after the patient's text.
    assert (reply.n, reply.mean_ms, reply.p50_ms, reply.p90_ms, reply.p99_ms) == (
        5, 1_200, 1_250, 2_000, 2_000,
    )  # fmt: skip


def test_template_variants_with_intervals(
    history: sessionmaker[Session], locations: Locations
) -> None:
    variants = report(history, locations).variants
    # Sent text-backs of the standard template only: the appointment text-back (A) and
    # the failed one (A) are not part of the comparison.
    rows = {v.variant: (v.texted, v.replied, v.booked) for v in variants.variants}
    assert rows == {"A": (3, 2, 1), "B": (3, 2, 1)}
    a = variants.variants[0]
    assert a.reply_interval is not None
    assert (round(a.reply_interval.low, 4), round(a.reply_interval.high, 4)) == (0.2077, 0.9385)
    reply = variants.comparisons[0]
    assert (reply.metric, reply.z, reply.p_value, reply.significant) == ("reply", 0.0, 1.0, False)


def test_diagnosis_in_plain_words(history: sessionmaker[Session], locations: Locations) -> None:
    findings = [(f.kind, f.headline, f.detail) for f in report(history, locations).diagnosis]
    assert findings == [
        (
            "info",
            "Most missed calls: front desk busy",
            "4 of 14 missed calls (29%): the front desk was on another call: an extra person "
            "or line at the busiest hours would catch more of them.",
        ),
        (
            "info",
            "Busiest time for missed calls",
            "Mondays 9 AM–10 AM (2 missed calls, local time).",
        ),
        (
            "problem",
            "Many missed callers can't be texted",
            "4 of 14 missed calls (29%) were screened out, mostly hidden caller ID (1) and "
            "texted recently (repeat call) (1). These callers hid their number, so there is "
            "nothing to text back: answer more calls at those times, or invite callers in your "
            "greeting to text you.",
        ),
        (
            "info",
            "Templates A and B: replies",
            "No clear difference in replies between A and B yet (p = 1.00); keep both running.",
        ),
        (
            "good",
            "Revenue recovered",
            "3 bookings from missed calls not cancelled, worth $1,579 ($112.78 per missed call).",
        ),
    ]


def test_per_location_and_all_locations(
    history: sessionmaker[Session], locations: Locations
) -> None:
    westside = report(history, locations, ids=(WESTSIDE,))
    assert (westside.total.missed, westside.total.booked, westside.total.revenue_cents) == (
        1, 1, 45_000,  # Botox is $450 at Westside
    )  # fmt: skip
    both = report(history, locations, ids=(DOWNTOWN, WESTSIDE))
    assert (both.total.missed, both.total.booked, both.total.revenue_cents) == (15, 4, 202_900)
    assert [(loc.id, loc.funnel.missed) for loc in both.locations] == [
        (DOWNTOWN, 14),
        (WESTSIDE, 1),
    ]
    assert both.latency.textback.n == 8
    data = report_json(both)
    assert data["total"]["revenue_cents"] == 202_900
    assert data["since"] == "2026-03-06"


def test_domain_hooks_keep_the_rollups_up_to_date(
    sessions: sessionmaker[Session], locations: Locations
) -> None:
    with transaction(sessions) as session:
        calls = add_history(session)
        for call in calls:  # as missed_calls.service does once it has screened a call
            rollup.call_changed(call)
    with sessions() as session:
        assert len(queries.dirty_keys(session)) > 0
    incremental = report_json(report(sessions, locations))
    with sessions() as session:
        assert queries.dirty_keys(session) == []
    rollup.rebuild(sessions, locations)
    rebuilt = report_json(report(sessions, locations))
    assert {**incremental, "generated_at": None} == {**rebuilt, "generated_at": None}

    # Staff mark the open Saturday conversation booked: the conversation hook re-marks
    # its call's day, and the next read shows the booking.
    with transaction(sessions) as session:
        conversation = session.scalars(
            select(Conversation)
            .join(Call, Call.conversation_id == Conversation.id)
            .where(Call.call_sid == "CAhist0004")
        ).one()
        conversation.booked_by, conversation.booked_value_cents = "staff", 25_000
        conversation_service.close(conversation, NOW, "booked")
    after = report(sessions, locations).total
    assert (after.booked, after.booked_by["staff"], after.revenue_cents) == (4, 2, 182_900)

    # A rolled-back change marks nothing.
    def touch_then_fail() -> None:
        with transaction(sessions) as session:
            message = session.scalars(select(Message).where(Message.kind == "textback")).first()
            assert message is not None
            rollup.message_changed(message)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError):
        touch_then_fail()
    with sessions() as session:
        assert session.scalars(select(funnel_dirty.c.location_id)).all() == []


def test_a_delivery_receipt_marks_the_call_day(
    history: sessionmaker[Session], locations: Locations
) -> None:
    from ringback.messaging.outbox import advance_status

    before = report(history, locations).total.delivered
    with transaction(history) as session:
        message = session.scalars(
            select(Message)
            .join(Call, Call.id == Message.call_id)
            .where(
                Call.call_sid == "CAhist0004"  # the Saturday text-back, stuck at 'undelivered'
            )
        ).one()
        message.status = "sent"  # as if it had been retried
        assert advance_status(message, "delivered", NOW)
    assert report(history, locations).total.delivered == before + 1


def rollup_rows(sessions: sessionmaker[Session]) -> dict[str, list[Any]]:
    out = {}
    with sessions() as session:
        for table in queries.ROLLUP_TABLES:
            key = [c for c in table.primary_key.columns]
            out[table.name] = [tuple(r) for r in session.execute(select(table).order_by(*key))]
    return out


def test_seeded_history_reports_the_same_as_a_rebuild(
    sessions: sessionmaker[Session], locations: Locations
) -> None:
    summary = seed_history(
        sessions, list(locations), calls=1_500, days=21, seed=7, end=date(2026, 3, 10)
    )
    assert summary.calls == 1_500
    seeded = rollup_rows(sessions)
    assert sum(r[4] for r in seeded["funnel_daily"]) == 1_500  # the "missed" column
    rollup.rebuild(sessions, locations)
    assert rollup_rows(sessions) == seeded
    whole = report(sessions, locations, (DOWNTOWN, WESTSIDE), date(2026, 2, 18), date(2026, 3, 10))
    assert whole.total.missed == 1_500
    assert whole.total.booked > 0
    assert whole.total.revenue_cents > 0
    assert {v.variant for v in whole.variants.variants} == {"A", "B"}
    with pytest.raises(SeedError, match="already has calls"):
        seed_history(sessions, list(locations), calls=10, days=1)


def test_seeding_next_to_real_calls_recomputes_their_days(
    sessions: sessionmaker[Session], locations: Locations
) -> None:
    with transaction(sessions) as session:
        add_history(session)
    rollup.rebuild(sessions, locations)
    seed_history(
        sessions, list(locations), calls=200, days=3, seed=3, end=date(2026, 3, 10),
        allow_existing=True,
    )  # fmt: skip
    rollup.refresh(sessions, locations)
    incremental = rollup_rows(sessions)
    rollup.rebuild(sessions, locations)
    assert rollup_rows(sessions) == incremental


def export(
    sessions: sessionmaker[Session], locations: Locations, ids: tuple[str, ...]
) -> list[dict[str, str]]:
    chosen = [loc for loc in locations if loc.id in ids]
    text = "".join(stream_calls_csv(sessions, chosen, date(2026, 3, 6), date(2026, 3, 10), now=NOW))
    reader = csv.DictReader(io.StringIO(text))
    assert tuple(reader.fieldnames or ()) == COLUMNS
    return list(reader)


def test_csv_has_one_row_per_missed_call(
    history: sessionmaker[Session], locations: Locations
) -> None:
    rows = export(history, locations, (DOWNTOWN,))
    assert len(rows) == 14
    assert [r["call_sid"] for r in rows] == [f"CAhist{n:04d}" for n in range(1, 15)]
    first = rows[0]
    assert first["missed_at"] == "2026-03-06T10:15:00-08:00"
    assert (first["weekday"], first["local_hour"], first["miss_reason"]) == (
        "Fri",
        "10",
        "staff_busy",
    )
    assert (first["screening"], first["variant"], first["textback_status"]) == (
        "texted",
        "A",
        "delivered",
    )
    assert (first["textback_latency_ms"], first["qualified"], first["treatment"]) == (
        "800",
        "yes",
        "Botox",
    )
    assert (first["outcome"], first["booked_by"], first["revenue_cents"]) == (
        "booked",
        "bot",
        "48000",
    )
    assert first["caller"] == "+12135550001"  # E.164 stays as it is
    assert rows[1]["revenue_cents"] == "90000"  # what staff entered
    sunday_late = rows[6]
    assert sunday_late["missed_at"] == "2026-03-08T03:30:00-07:00"  # after the change to PDT
    pending = rows[12]
    assert (pending["screening"], pending["conversation_id"], pending["outcome"]) == (
        "pending",
        "",
        "",
    )
    assert rows[4]["caller"] == "anonymous"
    both = export(history, locations, (DOWNTOWN, WESTSIDE))
    assert len(both) == 15


def test_csv_cells_cannot_become_spreadsheet_formulas(
    sessions: sessionmaker[Session], locations: Locations
) -> None:
    sneaky = Miss(DOWNTOWN, at(6, 12, 0), "no_answer", "anonymous")
    with transaction(sessions) as session:
        (call,) = add_history(session, [sneaky])
        call.from_raw = '=HYPERLINK("http://x")'
    rows = export(sessions, locations, (DOWNTOWN,))
    assert rows[0]["caller"] == '\'=HYPERLINK("http://x")'


def test_exports_stream_in_pages(
    sessions: sessionmaker[Session], locations: Locations, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ringback.funnel import export as export_module

    monkeypatch.setattr(export_module, "PAGE", 4)
    with transaction(sessions) as session:
        add_history(session)
    rows = export(sessions, locations, (DOWNTOWN,))
    assert [r["call_sid"] for r in rows] == [f"CAhist{n:04d}" for n in range(1, 15)]
    assert len({r["call_sid"] for r in rows}) == 14


def test_history_is_what_the_dataset_says() -> None:
    # Guard for the hand-worked numbers above: 14 calls at downtown inside the range.
    inside = [
        m for m in HISTORY
        if m.location == DOWNTOWN
        and date(2026, 3, 6) <= m.local.replace(tzinfo=LA).date() <= date(2026, 3, 10)
    ]  # fmt: skip
    assert len(inside) == 14


def test_an_import_that_cancels_a_booking_moves_the_figures(
    history: sessionmaker[Session], locations: Locations
) -> None:
    from ringback.models import Appointment
    from ringback.patients.importing import ColumnMapping, import_appointments, read_csv

    downtown = locations.get(DOWNTOWN)
    assert downtown is not None
    start = datetime(2026, 3, 13, 17, 0, tzinfo=UTC)  # 10:00 in Los Angeles
    with transaction(history) as session:
        booked = session.scalars(select(Call).where(Call.call_sid == "CAhist0001")).one()
        conversation = session.get(Conversation, booked.conversation_id)
        assert conversation is not None
        session.add(
            Appointment(
                location_id=DOWNTOWN,
                patient_id=conversation.patient_id,
                conversation_id=conversation.id,
                service="Botox",
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                status="booked",
                source="bot",
                value_cents=48_000,
            )
        )
    rollup.rebuild(history, locations)
    before = report(history, locations).total
    assert (before.booked, before.cancelled, before.upcoming) == (3, 0, 1)
    # The clinic's system says the patient cancelled; its export is imported.
    table = read_csv(
        "phone,start,service,status\r\n2135550001,2026-03-13 10:00,Botox,cancelled\r\n"
    )
    with transaction(history) as session:
        result = import_appointments(
            session, downtown, table.rows, ColumnMapping.preset("appointments"), NOW
        )
        assert result.updated == 1
    after = report(history, locations).total
    assert (after.booked, after.cancelled, after.still_booked, after.upcoming) == (3, 1, 2, 0)
    assert after.revenue_cents == before.revenue_cents - 48_000
    assert after.cancelled_revenue_cents == 48_000
