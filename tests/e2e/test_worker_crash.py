"""A worker process killed mid-send loses nothing and sends nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringback.jobs import make_consumer
from ringback.models import Message, ProviderEvent
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.phone import FORWARDED_TO, texts_to
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
