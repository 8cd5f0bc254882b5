"""Real conversations through signed webhooks, then the figures read back four ways: the
``ringback report`` command (a subprocess on the same database), ``/api/v1/funnel``,
``/metrics`` and the per-call CSV. They agree with each other and with what happened, and
each shows only what its reader may see."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ringback.models import Message
from tests.conftest import Service, wait_for
from tests.staff.conftest import add_user, sign_in
from tests.support.api import Token, make_token
from tests.support.funnel import cli_report as support_cli_report
from tests.support.funnel import ringback, staff_books, without_time
from tests.support.phone import FORWARDED_TO, conversation, miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number, new_call_sid, payload

DAY = "2026-11-24"  # the test clock's Tuesday, in Los Angeles
RANGE = {"since": DAY, "until": DAY}


@dataclass
class Story:
    """What happened, to compare the figures with."""

    booked_caller: str
    qualified_caller: str
    service: Service


def _anonymous_miss(service: Service) -> None:
    call_sid = new_call_sid()
    for path, name, extra in (
        ("/twilio/voice", "voice_incoming", {}),
        ("/twilio/voice/dial-result", "dial_result_no_answer", {"DialCallStatus": "no-answer"}),
    ):
        response = service.post(
            path, payload(name, CallSid=call_sid, From="anonymous", To="+13105550100", **extra)
        )
        assert response.status_code == 200, response.text


def play(service: Service) -> Story:
    """Six missed calls at the two locations, and what their callers did."""
    qualified = caller_number(401)
    miss(service, qualified)
    next_text(service, qualified, 1)
    text_in(service, qualified, "bottox pls")
    next_text(service, qualified, 2)
    text_in(service, qualified, "thursday morning")
    next_text(service, qualified, 3)
    text_in(service, qualified, "first time!")
    assert "book?service=Botox" in next_text(service, qualified, 4)

    urgent = caller_number(402)
    miss(service, urgent)
    next_text(service, urgent, 1)
    text_in(service, urgent, "my lip is really swollen and turning white after filler yesterday")
    next_text(service, urgent, 2)
    wait_for(lambda: conversation(service).status == "urgent", what="urgent handoff")

    wrong = caller_number(403)
    miss(service, wrong, status="busy")
    next_text(service, wrong, 1)
    text_in(service, wrong, "wrong number sorry")
    next_text(service, wrong, 2)
    wait_for(lambda: conversation(service).close_reason == "wrong_number", what="wrong number")

    silent = caller_number(404)
    miss(service, silent, status="canceled")
    next_text(service, silent, 1)

    _anonymous_miss(service)

    westside = caller_number(405)
    miss(service, westside, to=FORWARDED_TO)
    next_text(service, westside, 1)

    # The carrier confirms the first text-back.
    sent = texts_to(service, qualified)[0]
    wait_for(
        lambda: service.scalar(select(Message.id).where(Message.provider_sid == sent.sid)),
        what="sid recorded",
    )
    response = service.post(
        "/twilio/sms/status",
        payload(
            "sms_status_delivered", MessageSid=sent.sid, MessageStatus="delivered", To=qualified
        ),
    )
    assert response.status_code == 204
    wait_for(
        lambda: (
            service.scalar(select(Message.status).where(Message.provider_sid == sent.sid))
            == "delivered"
        ),
        what="delivered",
    )
    return Story(booked_caller=urgent, qualified_caller=qualified, service=service)


def cli_report(service: Service, *extra: str) -> dict[str, Any]:
    return support_cli_report(service, DAY, DAY, *extra)


def api_funnel(service: Service, token: Token, **params: str) -> httpx.Response:
    return service.http.get(service.url + "/api/v1/funnel", params=params, headers=token.headers)


@pytest.fixture
def story(service: Service) -> Story:
    told = play(service)
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    staff_books(service, owner, told.booked_caller, "650")
    return told


@pytest.mark.slow
def test_the_report_the_api_and_metrics_agree_with_what_happened(story: Story) -> None:
    service = story.service
    owner = make_token(service, "cfo@glow.example")
    from_cli = cli_report(service)
    response = api_funnel(service, owner, **RANGE)
    assert response.status_code == 200, response.text
    from_api = response.json()
    assert without_time(from_api) == without_time(from_cli)
    assert without_time(cli_report(service, "--rebuild")) == without_time(from_cli)

    f = from_api["total"]
    assert (f["missed"], f["screened_out"], f["recoverable"], f["to_text"], f["texted"]) == (
        6, 1, 5, 5, 5,
    )  # fmt: skip
    assert f["screened_out_by_reason"] == {"anonymous": 1}
    assert (f["delivered"], f["replied"], f["qualified"], f["booked"]) == (1, 3, 1, 1)
    assert f["booked_by"] == {"bot": 0, "page": 0, "staff": 1, "other": 0}
    assert f["revenue_cents"] == 65_000  # what staff entered
    assert (f["handoffs"], f["urgent"], f["wrong_number"]) == (1, 1, 1)
    reasons = {r["reason"]: (r["missed"], r["booked"]) for r in from_api["reasons"]}
    # Three callers and the anonymous one rang out downtown; Westside's forwarded miss too.
    assert reasons == {"staff_busy": (1, 0), "no_answer": (4, 1), "caller_hung_up": (1, 0)}
    textback = from_api["latency"]["textback"]
    assert textback["n"] == 5
    assert textback["p99_ms"] < 10_000  # the fake answers in milliseconds
    assert from_api["latency"]["reply"]["n"] == 5  # 3 + 1 + 1 bot answers
    by_location = {loc["id"]: loc["funnel"]["missed"] for loc in from_api["locations"]}
    assert by_location == {"glow-downtown": 5, "glow-westside": 1}
    assert from_api["heatmap"]["counts"][1][10] == 6  # Tuesday, 10 AM in Los Angeles

    metrics = service.http.get(service.url + "/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }

    def total(name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in samples.items()
            if sample == name and all(dict(sample_labels).get(k) == v for k, v in labels.items())
        )

    assert total("ringback_missed_calls_total") == f["missed"]
    assert total("ringback_textbacks_sent_total") == f["texted"]
    assert total("ringback_textbacks_delivered_total") == f["delivered"]
    assert total("ringback_replies_total") == f["replied"]
    assert total("ringback_bookings_total", booked_by="staff") == 1
    assert total("ringback_urgent_alerts_total") == 1
    assert total("ringback_screened_out_total", screening="anonymous") == 1
    assert total("ringback_textback_latency_seconds_count") == textback["n"]
    assert total("ringback_textback_latency_seconds_bucket", le="+Inf") == textback["n"]
    assert total("ringback_recovered_revenue_dollars") == 650
    assert total("ringback_missed_calls_total", location="glow-westside") == 1
    assert "+1213555" not in metrics.text  # no patient data


@pytest.mark.slow
def test_a_location_and_a_staff_member_see_only_theirs(story: Story) -> None:
    service = story.service
    staff = make_token(service, "amy@glow.example", role="staff", locations=["glow-downtown"])
    mine = api_funnel(service, staff, **RANGE)
    assert mine.status_code == 200, mine.text
    assert mine.json()["location_ids"] == ["glow-downtown"]
    assert mine.json()["total"]["missed"] == 5
    assert without_time(mine.json()) == without_time(
        cli_report(service, "--location", "glow-downtown")
    )
    other = api_funnel(service, staff, location="glow-westside", **RANGE)
    assert other.status_code == 422
    assert other.json()["detail"][0]["msg"].startswith("location: no location")
    bad = api_funnel(service, staff, since="2026-11-25", until="2026-11-24")
    assert bad.status_code == 422
    assert "since" in bad.json()["detail"][0]["msg"]
    nobody = service.http.get(service.url + "/api/v1/funnel")
    assert nobody.status_code == 401
    assert nobody.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_csv_export_has_one_row_per_missed_call(story: Story) -> None:
    service = story.service
    result = ringback(service, "export-calls", "--since", DAY, "--until", DAY)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6
    assert sorted(r["screening"] for r in rows) == ["anonymous"] + ["texted"] * 5
    booked = [r for r in rows if r["outcome"] == "booked"]
    assert [(r["booked_by"], r["revenue_cents"]) for r in booked] == [("staff", "65000")]
    assert {r["missed_at"][-6:] for r in rows} == {"-08:00"}  # Los Angeles time

    owner = sign_in(service, "owner@glow.example")
    download = owner.get("/staff/reports/calls.csv", params=RANGE)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert "attachment" in download.headers["content-disposition"]
    assert download.text.replace("\r\n", "\n") == result.stdout.replace("\r\n", "\n")

    add_user(service, "amy@glow.example", role="staff", locations=["glow-westside"])
    amy = sign_in(service, "amy@glow.example")
    hers = list(csv.DictReader(io.StringIO(amy.get("/staff/reports/calls.csv", params=RANGE).text)))
    assert [r["location_id"] for r in hers] == ["glow-westside"]
    assert (
        amy.get("/staff/reports/calls.csv", params={"location": "glow-downtown"}).status_code == 404
    )
    stranger = service.http.get(service.url + "/staff/reports/calls.csv", follow_redirects=False)
    assert stranger.status_code == 303
    assert stranger.headers["location"].startswith("/staff/login")


def test_metrics_token_guards_the_scrape(
    make_service: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RINGBACK_METRICS_TOKEN", "scrape-secret-0123")
    service = make_service()
    url = service.url + "/metrics"
    assert service.http.get(url).status_code == 401
    assert service.http.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = service.http.get(url, headers={"Authorization": "Bearer scrape-secret-0123"})
    assert ok.status_code == 200
    names = {family.name for family in text_string_to_metric_families(ok.text)}
    assert {"ringback_missed_calls", "ringback_textback_latency_seconds"} <= names


def test_report_command_words_and_formats(service: Service) -> None:
    table = ringback(service, "report", "--since", DAY, "--until", DAY)
    assert table.returncode == 0, table.stderr
    assert "Recovery report: Glow Med Spa, Glow Med Spa Westside" in table.stdout
    assert "No missed calls" in table.stdout
    as_csv = ringback(service, "report", "--format", "csv", "--location", "glow-downtown")
    assert as_csv.returncode == 0, as_csv.stderr
    header, row = as_csv.stdout.strip().splitlines()
    assert header.startswith("location_id,since,until,missed,")
    assert row.startswith("glow-downtown,")
    unknown = ringback(service, "report", "--location", "nowhere")
    assert unknown.returncode == 2
    assert "--location: no location 'nowhere'" in unknown.stderr
    bad = ringback(service, "report", "--since", "yesterday")
    assert bad.returncode == 2
    assert "--since: expected a date like 2026-11-24, got 'yesterday'" in bad.stderr
