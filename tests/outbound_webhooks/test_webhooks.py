"""Outbound webhooks against a real HTTP receiver that checks signatures as the README says:
every event once, retried while the receiver is down or failing, replayable, and never in
the way of a text-back."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ringback.db import transaction
from ringback.fakes.twilio import BackgroundServer
from ringback.inbox import events
from ringback.models import Conversation, ProviderEvent, WebhookDelivery
from ringback.outbound_webhooks import service as webhooks
from ringback.runtime import run_sweep
from ringback.staff import actions
from ringback.web import SignedIn
from tests.conftest import REPO, ServerThread, Service, free_port, settle, wait_for
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.phone import miss, text_in, texts_to
from tests.twilio_payloads import caller_number

# --- the receiver ------------------------------------------------------------------------------


def documented_verifier() -> Callable[[str, str, bytes], bool]:
    """The README's Python verification snippet, run as written: the receiver checks
    every request with it, so the documentation cannot drift from what is sent."""
    section = (REPO / "README.md").read_text().split("## Outbound webhooks", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no Python snippet under Outbound webhooks"
    namespace: dict[str, Any] = {}
    exec(match.group(1), namespace)  # noqa: S102 - our own README
    verify: Callable[[str, str, bytes], bool] = namespace["verify_signature"]
    return verify


verify_signature = documented_verifier()


@dataclass
class Receiver:
    """A clinic's endpoint. Answers ``answers`` in turn (then 200), after ``hang`` seconds."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)
    answer_body: str = "ok"
    hang: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/hooks", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        body = await request.body()
        if not verify_signature(self.secret, request.headers.get("Ringback-Signature", ""), body):
            self.bad_signatures += 1
            return PlainTextResponse("bad signature", status_code=400)
        if self.hang:
            await asyncio.sleep(self.hang)
        with self._lock:
            status = self.answers.pop(0) if self.answers else 200
            self.requests.append(
                {
                    "raw": body,
                    "json": json.loads(body),
                    "headers": dict(request.headers),
                    "status": status,
                }
            )
        return PlainTextResponse(self.answer_body if status != 200 else "ok", status_code=status)

    def delivered(self) -> list[dict[str, Any]]:
        """Payloads the receiver accepted (answered 2xx)."""
        with self._lock:
            return [r["json"] for r in self.requests if r["status"] == 200]

    def types(self) -> list[str]:
        return sorted(p["type"] for p in self.delivered())


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    hooks = Receiver()
    with BackgroundServer(hooks.app()) as server:
        yield hooks, f"{server.url}/hooks"


def add_endpoint(
    service: Service,
    url: str,
    events_wanted: list[str] | None = None,
    location: str | None = None,
    hooks: Receiver | None = None,
) -> int:
    with transaction(service.runtime.deps.sessions) as session:
        endpoint = webhooks.create_endpoint(
            session,
            url=url,
            events=events_wanted or ["all"],
            location_id=location,
            known_locations={loc.id for loc in service.locations},
            now=datetime.now(UTC),
            allow_private=service.runtime.deps.allow_private_webhooks,
        )
        if hooks is not None:
            hooks.secret = endpoint.secret
        return endpoint.id


def deliveries(service: Service) -> list[WebhookDelivery]:
    return service.rows(select(WebhookDelivery).order_by(WebhookDelivery.id))


def all_settled(service: Service) -> bool:
    return all(d.status != "pending" for d in deliveries(service))


def sweep_later(service: Service, by: timedelta) -> None:
    """Move the clock (so retries fall due) and sweep. Callers first wait for any attempt
    in progress to be recorded: jumping past its lease would start a second one."""
    service.clock.advance(by)
    run_sweep(service.runtime.deps)


def next_text(service: Service, caller: str, count: int) -> str:
    texts = wait_for(
        lambda: len(texts_to(service, caller)) >= count and texts_to(service, caller),
        what=f"text #{count}",
    )
    return str(texts[count - 1].body)


# --- tests ---------------------------------------------------------------------------------------


def test_each_event_arrives_once_signed_and_without_message_text(
    service: Service, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    add_endpoint(service, url, hooks=hooks)
    # Another location's endpoint, and one that only wants opt-outs.
    other, only_stop = Receiver(), Receiver()
    with (
        BackgroundServer(other.app()) as other_server,
        BackgroundServer(only_stop.app()) as stop_server,
    ):
        add_endpoint(service, f"{other_server.url}/hooks", location="glow-westside", hooks=other)
        add_endpoint(service, f"{stop_server.url}/hooks", ["patient.opted_out"], hooks=only_stop)

        caller = caller_number(901)
        miss(service, caller)
        next_text(service, caller, 1)
        text_in(service, caller, "bottox pls")
        next_text(service, caller, 2)
        text_in(service, caller, "thursday morning")
        next_text(service, caller, 3)
        text_in(service, caller, "first time!")
        assert "book?service=Botox" in next_text(service, caller, 4)
        text_in(service, caller, "STOP")
        expected = [
            "conversation.qualified",
            "conversation.replied",
            "missed_call.detected",
            "patient.opted_out",
        ]
        wait_for(lambda: hooks.types() == expected, what=f"events {expected}, got {hooks.types()}")
        wait_for(lambda: only_stop.types() == ["patient.opted_out"], what="the opt-out alone")

        # Handling every stored event again (a replay, a duplicate webhook) sends nothing new.
        event_ids = service.rows(select(ProviderEvent.id))
        events.replay(service.runtime.deps, event_ids)
        settle(1.0)
        assert hooks.types() == expected
        assert only_stop.types() == ["patient.opted_out"]
        assert other.requests == []
    assert hooks.bad_signatures == 0

    conv = service.scalar(select(Conversation))
    by_type = {p["type"]: p for p in hooks.delivered()}
    for request in hooks.requests:
        payload = request["json"]
        assert set(payload) == {"id", "type", "created_at", "location_id", "data"}
        assert payload["location_id"] == "glow-downtown"
        assert request["headers"]["ringback-event"] == payload["type"]
        assert request["headers"]["content-type"] == "application/json"
        assert request["headers"]["ringback-delivery"].isdigit()
        assert datetime.fromisoformat(payload["created_at"]).tzinfo is not None
    assert len({p["id"] for p in hooks.delivered()}) == 4

    missed = by_type["missed_call.detected"]["data"]
    assert missed["patient"]["phone"] == caller
    assert missed["call"]["reason"] == "no_answer"
    assert missed["texted_back"] is True
    assert missed["conversation_id"] == conv.id
    assert by_type["conversation.replied"]["data"]["conversation"]["id"] == conv.id
    assert by_type["conversation.qualified"]["data"]["patient"]["phone"] == caller
    opted = by_type["patient.opted_out"]["data"]
    assert (opted["source"], opted["patient"]["phone"]) == ("keyword", caller)

    # No message text, in or out, and no treatment: ids, times, the phone number.
    raw = b"".join(r["raw"] for r in hooks.requests).decode().lower()
    for text in [m.body for m in texts_to(service, caller)] + ["bottox pls", "thursday morning"]:
        assert text.lower() not in raw
    assert "botox" not in raw
    assert '"body"' not in raw

    rows = deliveries(service)
    assert {d.status for d in rows} == {"delivered"}
    assert all(d.attempts == 1 and d.last_status_code == 200 for d in rows)
    assert all(d.last_response == "ok" for d in rows)


def test_handoff_and_a_booking_by_staff(service: Service, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    add_endpoint(service, url, ["conversation.handed_off", "appointment.booked"], hooks=hooks)
    caller = caller_number(902)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox. can someone call me though?")
    wait_for(lambda: hooks.types() == ["conversation.handed_off"], what="the handoff")
    conv = service.scalar(select(Conversation))
    user_id = add_user(service, "owner@glow.example")
    owner = SignedIn(user_id, "owner@glow.example", "Owner", "owner", (), "")
    actions.mark_booked(service.runtime.deps, conv.id, owner, 35_000)
    wait_for(
        lambda: hooks.types() == ["appointment.booked", "conversation.handed_off"],
        what="the booking",
    )
    by_type = {p["type"]: p["data"] for p in hooks.delivered()}
    assert by_type["conversation.handed_off"]["urgent"] is False
    assert by_type["conversation.handed_off"]["conversation"]["status"] == "needs_staff"
    booked = by_type["appointment.booked"]
    assert (booked["booked_by"], booked["value_cents"]) == ("staff", 35_000)
    assert booked["conversation"] == {
        "id": conv.id,
        "status": "booked",
        "opened_at": conv.opened_at.isoformat(),
    }
    assert booked["patient"]["phone"] == caller


def test_a_receiver_that_is_down_gets_every_event_once_when_it_is_back(service: Service) -> None:
    hooks = Receiver()
    port = free_port()
    add_endpoint(service, f"http://127.0.0.1:{port}/hooks", ["missed_call.detected"], hooks=hooks)
    callers = [caller_number(903), caller_number(904), caller_number(905)]
    for caller in callers:
        miss(service, caller)
        wait_for(lambda c=caller: texts_to(service, c), what="the text-back, receiver or not")
    wait_for(
        lambda: (
            len(deliveries(service)) == 3
            and all(d.attempts == 1 and d.last_error for d in deliveries(service))
        ),
        what="a refused first attempt each",
    )
    rows = deliveries(service)
    assert {d.status for d in rows} == {"pending"}
    assert all("ConnectError" in (d.last_error or "") for d in rows)
    assert all(d.next_attempt_at and d.next_attempt_at > service.clock() for d in rows)

    # Still down a while later: the sweep tries again, nothing is lost.
    sweep_later(service, timedelta(minutes=5))
    wait_for(lambda: all(d.attempts >= 2 for d in deliveries(service)), what="second attempts")
    settle(0.5)  # a refused connection is recorded within milliseconds

    with ServerThread(hooks.app(), port):
        sweep_later(service, timedelta(hours=2))
        wait_for(lambda: len(hooks.delivered()) == 3, what="all three once it is back")
        wait_for(lambda: all_settled(service), what="the deliveries recorded")
        sweep_later(service, timedelta(hours=2))
        settle(1.0)
    assert len(hooks.requests) == 3
    assert sorted(p["data"]["patient"]["phone"] for p in hooks.delivered()) == sorted(callers)
    assert hooks.bad_signatures == 0
    rows = deliveries(service)
    assert {d.status for d in rows} == {"delivered"}
    assert all(d.attempts >= 3 and d.last_error is None for d in rows)


def test_server_errors_are_retried_with_the_response_logged(
    service: Service, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.answers = [500, 503]
    hooks.answer_body = "x" * 5000
    add_endpoint(service, url, ["missed_call.detected"], hooks=hooks)
    miss(service, caller_number(906))
    wait_for(lambda: len(hooks.requests) == 1, what="the first attempt")
    first = wait_for(
        lambda: (d := deliveries(service)[0]).last_status_code == 500 and d, what="500 recorded"
    )
    assert first.status == "pending"
    assert first.last_error == "HTTP 500"
    assert first.last_response == "x" * 1024  # the first kilobyte only
    # Exponential backoff: the first retry is about 30 seconds out, with jitter.
    wait = (first.next_attempt_at - service.clock()).total_seconds()
    assert 15 < wait < 40

    sweep_later(service, timedelta(minutes=2))
    wait_for(lambda: len(hooks.requests) == 2, what="the second attempt")
    wait_for(lambda: deliveries(service)[0].last_status_code == 503, what="503 recorded")
    sweep_later(service, timedelta(minutes=10))
    wait_for(lambda: len(hooks.delivered()) == 1, what="delivered on the third attempt")
    wait_for(lambda: deliveries(service)[0].status == "delivered", what="delivered recorded")
    row = deliveries(service)[0]
    assert (row.attempts, row.last_status_code, row.last_response) == (3, 200, "ok")
    # Every attempt is the same delivery of the same event, each freshly signed.
    assert len({r["headers"]["ringback-delivery"] for r in hooks.requests}) == 1
    assert len({r["json"]["id"] for r in hooks.requests}) == 1
    assert hooks.bad_signatures == 0


def test_gives_up_after_a_day_and_an_owner_replays_from_the_staff_app(
    service: Service, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.answers = [500] * 50
    add_endpoint(service, url, ["missed_call.detected"], hooks=hooks)
    miss(service, caller_number(907))
    wait_for(lambda: len(hooks.requests) == 1, what="the first attempt")
    wait_for(lambda: deliveries(service)[0].last_status_code == 500, what="500 recorded")
    sweep_later(service, timedelta(hours=25))
    wait_for(lambda: deliveries(service)[0].status == "failed", what="given up after a day")
    failed = deliveries(service)[0]
    assert failed.next_attempt_at is None
    sweep_later(service, timedelta(hours=1))
    settle()
    assert len(hooks.requests) == 2  # a failed delivery is left for a person

    # Staff who are not owners do not see the page.
    add_user(service, "staff@glow.example", role="staff", locations=["glow-downtown"])
    staff = sign_in(service, "staff@glow.example")
    assert staff.get("/staff/webhooks").status_code == 403

    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    page = owner.get("/staff/webhooks?status=failed")
    assert page.status_code == 200
    assert f'id="delivery-{failed.id}"' in page.text
    assert "HTTP 500" in page.text
    assert url in page.text
    assert "whsec_" not in page.text  # the secret is never shown again
    replay_path = f"/staff/webhooks/deliveries/{failed.id}/replay"
    assert owner.post(replay_path, data={}).status_code == 403  # no CSRF token
    hooks.answers = []
    csrf = page_csrf(owner, "/staff/webhooks")
    done = owner.post(replay_path, data={"csrf_token": csrf})
    assert done.status_code == 303
    assert done.headers["location"] == f"/staff/webhooks?replayed={failed.id}"
    wait_for(lambda: len(hooks.delivered()) == 1, what="the replay delivered")
    wait_for(lambda: deliveries(service)[0].status == "delivered", what="delivered recorded")
    assert hooks.delivered()[0]["id"] == hooks.requests[0]["json"]["id"]
    assert "queued to be sent again" in owner.get(done.headers["location"]).text

    # A replay of a delivered one sends it again (the receiver dedupes on id).
    owner.post(replay_path, data={"csrf_token": csrf})
    wait_for(lambda: len(hooks.delivered()) == 2, what="the second replay")
    assert (
        owner.post("/staff/webhooks/deliveries/99999/replay", data={"csrf_token": csrf}).status_code
        == 404
    )


def test_a_hanging_receiver_never_delays_the_text_back(
    service: Service, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    hooks.hang = 6.0  # longer than the 5 s timeout
    add_endpoint(service, url, ["missed_call.detected"], hooks=hooks)
    # More misses than the queue has workers: a delivery must never hold one.
    callers = [caller_number(910 + n) for n in range(6)]
    slowest = 0.0
    for caller in callers:
        started = time.monotonic()
        miss(service, caller)
        wait_for(lambda c=caller: texts_to(service, c), timeout=3, what="the text-back")
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 1.0, f"a text-back took {slowest:.2f}s behind a hanging receiver"
    wait_for(
        lambda: len(deliveries(service)) == 6 and all(d.last_error for d in deliveries(service)),
        timeout=15,
        what="every attempt timed out",
    )
    assert all("Timeout" in (d.last_error or "") for d in deliveries(service))
    assert {d.status for d in deliveries(service)} == {"pending"}


def test_emit_writes_nothing_without_endpoints_and_rejects_unknown_events(
    service: Service,
) -> None:
    deps = service.runtime.deps
    with transaction(deps.sessions) as session:
        assert webhooks.emit(session, deps, "missed_call.detected", "glow-downtown", {}, "x:1") == 0
        with pytest.raises(ValueError, match="unknown webhook event"):
            webhooks.emit(session, deps, "call.missed", "glow-downtown", {}, "x:2")
    with transaction(deps.sessions) as session, pytest.raises(webhooks.WebhookError) as bad:
        webhooks.create_endpoint(
            session,
            url="ftp://crm.example/hooks",
            events=["all"],
            location_id=None,
            known_locations={"glow-downtown"},
            now=datetime.now(UTC),
        )
    assert bad.value.field == "url"


def test_signature_scheme_matches_the_documentation() -> None:
    body = b'{"id":"evt","type":"missed_call.detected"}'
    header = webhooks.sign("whsec_test", 1_764_000_000, body)
    expected = hmac.new(b"whsec_test", b"1764000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1764000000,v1={expected}"


def test_cli_adds_lists_replays_and_removes(
    service: Service, receiver: tuple[Receiver, str]
) -> None:
    hooks, url = receiver
    settings = service.runtime.settings
    env = {
        **os.environ,
        "RINGBACK_CONFIG": str(service.config_path),
        "RINGBACK_DATABASE_URL": settings.resolved_database_url,
        "RINGBACK_QUEUE_URL": settings.resolved_queue_url,
        "RINGBACK_QUEUE_NAME": settings.queue_name,
        "RINGBACK_LOG_LEVEL": "WARNING",
        "RINGBACK_ALLOW_PRIVATE_WEBHOOKS": "1",  # the receiver is on 127.0.0.1
    }

    def ringback(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringback.cli", "webhooks", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    bad = ringback("add", "--url", url, "--event", "call.missed")
    assert bad.returncode == 2
    assert "--event: unknown event 'call.missed'" in bad.stderr
    added = ringback("add", "--url", url, "--event", "missed_call.detected", "-l", "glow-downtown")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    hooks.secret = secret
    listed = ringback("list")
    assert listed.returncode == 0, listed.stderr
    assert url in listed.stdout
    assert "glow-downtown" in listed.stdout
    assert secret not in listed.stdout

    miss(service, caller_number(920))
    wait_for(lambda: len(hooks.delivered()) == 1, what="the delivery")
    wait_for(lambda: deliveries(service)[0].status == "delivered", what="delivered recorded")
    log = ringback("deliveries")
    assert "delivered\tmissed_call.detected" in log.stdout
    assert ringback("deliveries", "--failed").stdout == ""

    delivery_id = deliveries(service)[0].id
    replayed = ringback("replay", str(delivery_id))
    assert replayed.returncode == 0, replayed.stderr
    # The CLI runs on real time and the service on the test's clock: let the latter catch up.
    sweep_later(
        service, max(datetime.now(UTC) - service.clock(), timedelta()) + timedelta(seconds=5)
    )
    wait_for(lambda: len(hooks.delivered()) == 2, what="the replay")
    assert ringback("replay", "99999").returncode == 2

    endpoint_id = listed.stdout.split("\t", 1)[0]
    assert ringback("remove", endpoint_id).returncode == 0
    assert url not in ringback("list").stdout
    assert url in ringback("list", "--removed").stdout
    miss(service, caller_number(921))
    settle()
    assert len(hooks.requests) == 2
