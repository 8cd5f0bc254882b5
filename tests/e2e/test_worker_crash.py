"""A worker process killed mid-send loses nothing and sends nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringback.jobs import make_consumer
from ringback.models import Message, ProviderEvent
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.phone import FORWARDED_TO, miss, texts_to
from tests.support.workers import worker_process, worker_process_env
from tests.twilio_payloads import caller_number, new_call_sid, payload


@pytest.mark.slow
def test_worker_killed_after_twilio_accepted_is_reconciled_not_resent(
    make_service: Callable[..., Service],
) -> None:
    # Real time: the worker process runs on the real clock.
    service = make_service(now=datetime.now(UTC), run_worker=False)
    service.twilio.hang_after_accepting(1)  # Twilio takes it; the answer never comes back
    worker = worker_process(service)
    try:
        caller = caller_number(60)
        response = service.post(
            "/twilio/voice",
            payload("voice_incoming", CallSid=new_call_sid(), From=caller, To=FORWARDED_TO),
        )
        assert response.status_code == 200
        wait_for(lambda: texts_to(service, caller), timeout=20, what="the worker's send")
        wait_for(
            lambda: service.scalar(select(Message.status)) == "sending", what="claimed, in flight"
        )
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    # Later: the sweep finds the unsettled send; a fresh worker reconciles it with Twilio.
    service.clock.advance(timedelta(minutes=5))
    assert run_sweep(service.runtime.deps)["stuck"] == 1
    consumer = make_consumer(service.runtime.huey, 2, embedded=True, periodic=False)
    consumer.start()
    try:
        message = wait_for(
            lambda: service.scalar(select(Message).where(Message.provider_sid.is_not(None))),
            timeout=20,
            what="the send recorded from Twilio's message list",
        )
        settle(1.0)
    finally:
        consumer.stop(graceful=True)
    assert message.provider_sid == texts_to(service, caller)[0].sid
    assert len(texts_to(service, caller)) == 1


@pytest.mark.slow
def test_missed_call_queued_while_no_worker_runs_is_texted_when_one_starts(
    make_service: Callable[..., Service],
) -> None:
    # The webhook is stored and queued, but no worker is alive to handle it.
    service = make_service(now=datetime.now(UTC), run_worker=False)
    caller = caller_number(61)
    service.post(
        "/twilio/voice",
        payload("voice_incoming", CallSid=new_call_sid(), From=caller, To=FORWARDED_TO),
    )
    worker = worker_process(service)
    try:
        wait_for(lambda: texts_to(service, caller), timeout=20, what="text-back by a new worker")
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
    settle()
    assert len(texts_to(service, caller)) == 1


def test_replaying_stored_events_from_the_cli_sends_nothing_twice(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(now=datetime.now(UTC))
    caller = caller_number(62)
    service.post(
        "/twilio/voice",
        payload("voice_incoming", CallSid=new_call_sid(), From=caller, To=FORWARDED_TO),
    )
    wait_for(lambda: texts_to(service, caller), what="text-back")
    first = wait_for(lambda: service.scalar(select(ProviderEvent.handled_at)), what="handled")
    ids = [str(i) for i in service.rows(select(ProviderEvent.id))]
    env = worker_process_env(service)
    result = subprocess.run(
        [sys.executable, "-m", "ringback.cli", "replay", *ids],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"queued {len(ids)} event(s)" in result.stdout
    wait_for(
        lambda: (at := service.scalar(select(ProviderEvent.handled_at))) and at > first,
        what="the event handled again",
    )
    settle()
    assert len(texts_to(service, caller)) == 1


@pytest.mark.slow
def test_texts_claimed_by_a_killed_worker_go_out_once_within_15_s_of_the_next_worker(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(now=datetime.now(UTC), run_worker=False)
    twilio = service.twilio
    callers = [caller_number(64 + i) for i in range(4)]
    # Two texts Twilio takes but never answers; two that never get in (Twilio is slow, and
    # then the worker is gone).
    twilio.hang_after_accepting(2)
    worker = worker_process(service, workers=4)
    try:
        for caller in callers[:2]:
            miss(service, caller)
        wait_for(lambda: len(twilio.messages) == 2, timeout=20, what="two texts taken")
        twilio.slow_down("create_message", 60)
        for caller in callers[2:]:
            miss(service, caller)
        wait_for(
            lambda: len(service.rows(select(Message.id).where(Message.status == "sending"))) == 4,
            timeout=20,
            what="four texts claimed, two sends in flight",
        )
        settle(0.5)  # the two slow sends reach Twilio
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    twilio.slow_down("create_message", 0)
    assert len(twilio.messages) == 2
    successor = worker_process(service, workers=4)
    started = time.monotonic()
    try:
        wait_for(
            lambda: all(
                row.provider_sid is not None
                for row in service.rows(select(Message).where(Message.direction == "outbound"))
            ),
            timeout=25,
            what="every claimed text settled by the next worker",
        )
        took = time.monotonic() - started
        settle(1.0)
    finally:
        successor.send_signal(signal.SIGINT)
        try:
            successor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            successor.kill()
    assert [len(texts_to(service, caller)) for caller in callers] == [1, 1, 1, 1]
    rows = service.rows(select(Message).order_by(Message.to_number))
    assert [row.provider_sid for row in rows] == [texts_to(service, c)[0].sid for c in callers]
    print(f"worker killed with 4 claimed texts: all settled {took:.1f} s after the next started")
    assert took < 15
