"""The staff inbox over HTTP: sign-in, locations, queues and counts, each action with good
and bad input, CSRF, consent, idempotent replies, the bot pausing and resuming, and the
live event stream. Conversations are driven by signed webhooks, as in the e2e tests."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select

from ringback.models import Message, Note, Patient
from ringback.staff import pages
from tests.conftest import Service, settle, wait_for
from tests.staff.conftest import add_user, page_csrf
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.support.staff import (
    act,
    at_westside,
    handed_off,
    nonce_of,
    page,
    refused_field,
    reload,
    send_reply,
    urgent,
    with_the_bot,
)
from tests.twilio_payloads import caller_number

SPA = "+13105550100"
WESTSIDE = "+13105550200"
StaffClient = Callable[..., httpx.Client]


def staff_texts(service: Service, caller: str) -> list[str]:
    return [str(m.body) for m in texts_to(service, caller) if m.from_ == SPA]


# --- sign-in and locations --------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/staff", "/staff?queue=active", "/staff/conversations/7", "/staff/events"]
)
def test_pages_send_strangers_to_sign_in(service: Service, path: str) -> None:
    response = service.http.get(service.url + path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/staff/login?next={quote(path, safe='/')}"


def test_actions_need_a_session(service: Service) -> None:
    _, conversation_id = handed_off(service, 200)
    response = service.http.post(
        f"{service.url}/staff/conversations/{conversation_id}/booked",
        data={"value": "480"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/staff/login")
    assert reload(service, conversation_id).status == "needs_staff"


def test_staff_see_only_their_locations(service: Service, staff_client: StaffClient) -> None:
    _, downtown = handed_off(service, 201)
    _, westside = at_westside(service, 202)
    staff = staff_client("amy@glow.example", role="staff", locations=["glow-downtown"])

    inbox = staff.get("/staff?queue=active").text + staff.get("/staff").text
    assert f"/staff/conversations/{downtown}" in inbox
    assert f"/staff/conversations/{westside}" not in inbox
    assert 'id="location-filter"' not in inbox  # one location: nothing to filter
    assert page(staff, downtown).status_code == 200
    assert page(staff, westside).status_code == 404
    assert staff.get("/staff?location=glow-westside").status_code == 404

    # Actions on another location's conversation are not found, and change nothing.
    csrf = page_csrf(staff, "/staff")
    for action, data in (
        ("booked", {"value": "100"}),
        ("lost", {"reason": "Price"}),
        ("notes", {"body": "peeking"}),
        ("assign", {"assignee": ""}),
        ("hand-back", {}),
        ("reply", {"body": "hello", "nonce": "n" * 20}),
    ):
        response = staff.post(
            f"/staff/conversations/{westside}/{action}", data={**data, "csrf_token": csrf}
        )
        assert response.status_code == 404, action
    after = reload(service, westside)
    assert (after.is_open, after.status, after.lost_reason) == (True, "active", None)
    assert service.scalar(select(func.count()).select_from(Note)) == 0
    assert service.scalar(select(func.count()).where(Message.kind == "staff")) == 0

    owner = staff_client("owner@glow.example")
    everywhere = owner.get("/staff?queue=active").text
    assert f"/staff/conversations/{westside}" in everywhere
    assert 'id="location-filter"' in everywhere
    westside_only = owner.get("/staff?queue=needs_staff&location=glow-westside").text
    assert f"/staff/conversations/{downtown}" not in westside_only


# --- queues and counts ------------------------------------------------------------------


def count_in_nav(html: str, queue: str) -> int:
    match = re.search(rf'id="queue-{queue}"[^>]*>[^<]*<span class="count">(\d+)</span>', html)
    assert match, f"no count for {queue} in the navigation"
    return int(match.group(1))


def test_queues_counts_and_urgent_on_top(service: Service, staff_client: StaffClient) -> None:
    _, first = handed_off(service, 210)
    _, second = handed_off(service, 211)
    _, bot = with_the_bot(service, 212)
    _, emergency = urgent(service, 213)
    client = staff_client()

    html = client.get("/staff").text
    assert count_in_nav(html, "urgent") == 1
    assert count_in_nav(html, "needs_staff") == 2
    assert count_in_nav(html, "active") == 1
    assert count_in_nav(html, "booked") == 0
    assert 'class="queue q-urgent has-urgent"' in html  # red, and labelled "Urgent"
    # Urgent sits above the queue, then handoffs in the order they arrived.
    positions = [html.index(f'id="conv-{cid}"') for cid in (emergency, first, second)]
    assert positions == sorted(positions)
    assert html.index('id="urgent-title"') < html.index('id="queue-title"')
    assert f'id="conv-{bot}"' not in html
    assert "URGENT" in html.upper()

    active = client.get("/staff?queue=active").text
    assert f'id="conv-{bot}"' in active
    assert 'aria-current="page">With the bot' in active
    assert f'id="conv-{emergency}"' in active  # urgent stays on top of every queue
    assert client.get("/staff?queue=nonsense").status_code == 404


# --- replying ---------------------------------------------------------------------------


def test_reply_texts_from_the_location_and_the_bot_pauses_until_handed_back(
    service: Service, staff_client: StaffClient
) -> None:
    caller, conversation_id = with_the_bot(service, 220)
    client = staff_client()

    response = send_reply(client, conversation_id, "Hi, this is Dana from Glow! Thursday works?")
    assert response.status_code == 303
    assert response.headers["location"] == f"/staff/conversations/{conversation_id}?done=reply"
    sent = wait_for(lambda: staff_texts(service, caller)[2:], what="the staff reply")
    assert sent == ["Hi, this is Dana from Glow! Thursday works?"]
    assert texts_to(service, caller)[-1].from_ == SPA
    conversation = reload(service, conversation_id)
    assert conversation.bot_paused
    assert conversation.assigned_user_id is not None  # the one who replied has it
    message = service.scalar(select(Message).where(Message.kind == "staff"))
    assert (message.conversation_id, message.to_number) == (conversation_id, caller)
    shown = page(client, conversation_id).text
    assert "Hi, this is Dana from Glow! Thursday works?" in shown
    assert "Bot paused" in shown

    # The patient answers: the bot stays quiet, staff have it.
    text_in(service, caller, "thursday morning is great")
    settle(1.0)
    assert len(texts_to(service, caller)) == 3

    response = act(client, conversation_id, "hand-back")
    assert response.status_code == 303
    assert not reload(service, conversation_id).bot_paused
    # Nobody answered "thursday morning is great": the bot does, on hand-back.
    assert "first time" in next_text(service, caller, 4)
    text_in(service, caller, "first time")
    assert "book?service=Botox" in next_text(service, caller, 5)


def test_a_double_submitted_reply_sends_one_text(
    service: Service, staff_client: StaffClient
) -> None:
    caller, conversation_id = handed_off(service, 221)
    client = staff_client()
    nonce = nonce_of(page(client, conversation_id).text)
    csrf = page_csrf(client, "/staff")
    form = {"body": "Calling you in 5 minutes", "nonce": nonce, "csrf_token": csrf}
    results: list[int] = []

    def submit() -> None:
        results.append(
            client.post(f"/staff/conversations/{conversation_id}/reply", data=form).status_code
        )

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [303, 303]
    assert client.post(f"/staff/conversations/{conversation_id}/reply", data=form).status_code == (
        303
    )
    wait_for(lambda: staff_texts(service, caller)[2:], what="the staff reply")
    settle()
    assert staff_texts(service, caller)[2:] == ["Calling you in 5 minutes"]
    assert service.scalar(select(func.count()).where(Message.kind == "staff")) == 1
    # A fresh form is a fresh reply.
    assert send_reply(client, conversation_id, "Calling you in 5 minutes").status_code == 303
    wait_for(lambda: len(staff_texts(service, caller)) == 4, what="the second reply")


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"body": "   "}, "body"),
        ({"body": "x" * 1601}, "body"),
        ({"body": "hello", "nonce": ""}, "nonce"),
    ],
)
def test_bad_replies_are_refused_naming_the_field(
    service: Service, staff_client: StaffClient, form: dict[str, str], field: str
) -> None:
    caller, conversation_id = handed_off(service, 222)
    client = staff_client()
    data = {"nonce": nonce_of(page(client, conversation_id).text), **form}
    response = act(client, conversation_id, "reply", data)
    assert response.status_code == 400
    assert refused_field(response) == field
    assert 'aria-invalid="true"' in response.text
    settle()
    assert staff_texts(service, caller)[2:] == []
    assert not reload(service, conversation_id).bot_paused


def test_an_opted_out_patient_cannot_be_texted_and_the_page_says_why(
    service: Service, staff_client: StaffClient
) -> None:
    caller, conversation_id = with_the_bot(service, 223)
    client = staff_client()
    nonce = nonce_of(page(client, conversation_id).text)  # the form, loaded before the STOP
    text_in(service, caller, "STOP")
    wait_for(
        lambda: service.scalar(select(Patient.opted_out_at).where(Patient.phone == caller)),
        what="opt-out",
    )
    response = act(client, conversation_id, "reply", {"body": "Still there?", "nonce": nonce})
    assert response.status_code == 409
    assert refused_field(response) == "body"
    assert "opted out of texts" in response.text
    shown = page(client, conversation_id).text
    assert "Texting is off for this patient." in shown
    assert "opted out of texts" in shown
    assert 'name="nonce"' not in shown  # no reply form to fill in
    settle()
    assert len(texts_to(service, caller)) == 3  # and the STOP confirmation: nothing from staff
    assert service.scalar(select(func.count()).where(Message.kind == "staff")) == 0


def test_reply_needs_a_valid_csrf_token(service: Service, staff_client: StaffClient) -> None:
    caller, conversation_id = handed_off(service, 224)
    client = staff_client()
    nonce = nonce_of(page(client, conversation_id).text)
    missing = act(client, conversation_id, "reply", {"body": "hi", "nonce": nonce}, csrf=False)
    wrong = client.post(
        f"/staff/conversations/{conversation_id}/reply",
        data={"body": "hi", "nonce": nonce, "csrf_token": "forged"},
    )
    assert (missing.status_code, wrong.status_code) == (403, 403)
    assert "csrf_token" in missing.text
    settle()
    assert staff_texts(service, caller)[2:] == []
    assert not reload(service, conversation_id).bot_paused


# --- booked, lost, hand back, assign, notes ------------------------------------------------


def test_mark_booked_with_a_value(service: Service, staff_client: StaffClient) -> None:
    _, conversation_id = handed_off(service, 230)
    client = staff_client()
    html = page(client, conversation_id).text
    assert 'value="480.00"' in html  # the captured treatment's price, as a starting point

    response = act(client, conversation_id, "booked", {"value": "$1,250.50"})
    assert response.status_code == 303
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.is_open, conversation.booked_by) == (
        "booked",
        False,
        "staff",
    )
    assert conversation.booked_value_cents == 125050
    assert conversation.close_reason == "booked"
    shown = client.get(response.headers["location"]).text
    assert "Marked booked." in shown
    assert "$1,250.50" in shown
    assert count_in_nav(shown, "booked") == 1
    again = act(client, conversation_id, "booked", {"value": "10"})
    assert again.status_code == 409
    assert reload(service, conversation_id).booked_value_cents == 125050


@pytest.mark.parametrize("value", ["abc", "-5", "12.345", "100000000"])
def test_bad_booked_values_change_nothing(
    service: Service, staff_client: StaffClient, value: str
) -> None:
    _, conversation_id = handed_off(service, 231)
    client = staff_client()
    response = act(client, conversation_id, "booked", {"value": value})
    assert response.status_code == 400
    assert refused_field(response) == "value"
    assert "Booked value:" in response.text
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.booked_value_cents) == ("needs_staff", None)


def test_mark_lost_with_a_reason(service: Service, staff_client: StaffClient) -> None:
    _, conversation_id = handed_off(service, 232)
    client = staff_client()
    empty = act(client, conversation_id, "lost", {"reason": "  "})
    assert empty.status_code == 400
    assert refused_field(empty) == "reason"
    assert reload(service, conversation_id).is_open
    assert act(client, conversation_id, "lost", {"reason": "Booked elsewhere"}).status_code == 303
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.close_reason, conversation.lost_reason) == (
        "closed",
        "lost",
        "Booked elsewhere",
    )
    shown = page(client, conversation_id).text
    assert "Booked elsewhere" in shown
    assert 'name="nonce"' not in shown  # closed: no reply form


def test_hand_back_is_refused_for_urgent_threads(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = urgent(service, 233)
    client = staff_client()
    html = page(client, conversation_id).text
    assert "Hand back to the bot" not in html
    assert "Urgent:" in html
    response = act(client, conversation_id, "hand-back")
    assert response.status_code == 409
    assert "urgent conversations stay with staff" in response.text
    assert reload(service, conversation_id).status == "urgent"


def test_hand_back_a_handoff_returns_it_to_the_bot(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = handed_off(service, 234)
    client = staff_client()
    assert act(client, conversation_id, "hand-back").status_code == 303
    conversation = reload(service, conversation_id)
    assert (conversation.status, conversation.bot_paused) == ("active", False)


def test_assign_only_to_colleagues_at_the_location(
    service: Service, staff_client: StaffClient
) -> None:
    _, conversation_id = handed_off(service, 235)
    client = staff_client()
    amy = add_user(service, "amy@glow.example", role="staff", locations=["glow-downtown"])
    west = add_user(service, "wes@glow.example", role="staff", locations=["glow-westside"])
    html = page(client, conversation_id).text
    assert f'<option value="{amy}"' in html
    assert f'<option value="{west}"' not in html

    for bad in (str(west), "99999", "amy"):
        response = act(client, conversation_id, "assign", {"assignee": bad})
        assert response.status_code == 400, bad
        assert refused_field(response) == "assignee"
        assert reload(service, conversation_id).assigned_user_id is None

    assert act(client, conversation_id, "assign", {"assignee": str(amy)}).status_code == 303
    assert reload(service, conversation_id).assigned_user_id == amy
    assert "Assigned to Amy" in page(client, conversation_id).text
    assert act(client, conversation_id, "assign", {"assignee": ""}).status_code == 303
    assert reload(service, conversation_id).assigned_user_id is None


def test_notes(service: Service, staff_client: StaffClient) -> None:
    _, conversation_id = handed_off(service, 236)
    client = staff_client()
    empty = act(client, conversation_id, "notes", {"body": ""})
    assert empty.status_code == 400
    assert refused_field(empty) == "body"
    assert "Note:" in empty.text
    assert service.scalar(select(func.count()).select_from(Note)) == 0
    no_csrf = act(client, conversation_id, "notes", {"body": "x"}, csrf=False)
    assert no_csrf.status_code == 403
    assert service.scalar(select(func.count()).select_from(Note)) == 0

    response = act(client, conversation_id, "notes", {"body": "Prefers a call after 4 <b>pm</b>"})
    assert response.status_code == 303
    html = page(client, conversation_id).text
    assert "Prefers a call after 4 &lt;b&gt;pm&lt;/b&gt;" in html  # escaped
    assert "Owner ·" in html


# --- the conversation page ----------------------------------------------------------------


def test_conversation_page_shows_thread_call_capture_and_patient(
    service: Service, staff_client: StaffClient
) -> None:
    caller, conversation_id = handed_off(service, 240)
    wait_for(
        lambda: all(
            m.status not in ("pending", "sending")
            for m in service.rows(select(Message).where(Message.direction == "outbound"))
        ),
        what="texts handed to Twilio",
    )
    html = page(staff_client(), conversation_id).text
    assert "botox. can someone call me though?" in html
    assert "Hi, this is Glow Med Spa" in html
    assert "Text-back" in html
    assert "Sent to carrier" in html  # each text's delivery status
    assert "Nobody answered" in html  # why the call was missed
    assert "No, during opening hours" in html
    assert "Tue Nov 24, 10:0" in html  # in the location's time zone
    assert "Asked for a person" in html
    assert "<dd>Botox</dd>" in html
    assert "(213) 555-0240" in html
    assert f'href="tel:{caller}"' in html
    assert "Staff alerted" in html


# --- live updates -------------------------------------------------------------------------


@contextmanager
def event_stream(client: httpx.Client) -> Iterator[Iterator[str]]:
    with client.stream("GET", "/staff/events", timeout=httpx.Timeout(20.0)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        yield response.iter_lines()


def next_event(lines: Iterator[str]) -> tuple[str, str]:
    event = data = ""
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, data
    raise AssertionError("the stream ended")


def test_events_announce_new_handoffs(service: Service, staff_client: StaffClient) -> None:
    caller = caller_number(250)
    miss(service, caller)
    next_text(service, caller, 1)
    client = staff_client()
    with event_stream(client) as lines:
        event, marker = next_event(lines)
        assert event == "ready"
        text_in(service, caller, "can someone call me")
        event, moved = next_event(lines)
        assert event == "change"
        assert moved != marker


def test_events_only_watch_the_viewers_locations(
    service: Service, staff_client: StaffClient
) -> None:
    staff = staff_client("amy@glow.example", role="staff", locations=["glow-downtown"])
    with event_stream(staff) as lines:
        _, marker = next_event(lines)
    at_westside(service, 251)
    settle(1.5)
    with event_stream(staff) as lines:
        assert next_event(lines) == ("ready", marker)
    handed_off(service, 252)
    with event_stream(staff) as lines:
        assert next_event(lines)[1] != marker


def test_a_stream_ends_by_itself_and_the_browser_reconnects(
    service: Service, staff_client: StaffClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "STREAM_SECONDS", 1.5)
    client = staff_client()
    started = time.monotonic()
    with event_stream(client) as lines:
        assert next_event(lines)[0] == "ready"
        assert list(lines) == []  # the server ends the response...
    assert time.monotonic() - started < 5
    with event_stream(client) as lines:  # ...and a new one starts where it left off
        assert next_event(lines)[0] == "ready"
