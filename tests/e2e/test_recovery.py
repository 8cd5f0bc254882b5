"""Recovery sends each lost text exactly once: sweeps running together, duplicated
reconcile jobs, a Messages list that is slow or keeps failing, receipts nobody sent."""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from ringback.db import single_flight
from ringback.inbox import events
from ringback.jobs import make_consumer
from ringback.messaging import outbox
from ringback.messaging.claims import LEASE
from ringback.models import Message, ProviderEvent
from ringback.runtime import SWEEP_LOCK, run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.recovery import seed_stuck_text
from tests.support.workers import worker_process_env
from tests.twilio_payloads import caller_number, new_message_sid, payload

STUCK = 16
RUNS = 10  # per sweep count: 20 runs in all


def _settled(service: Service, ids: list[int]) -> bool:
    rows = service.rows(select(Message).where(Message.id.in_(ids)))
    return all(row.provider_sid is not None and row.claim_token is None for row in rows)


def _sweep_together(service: Service, sweeps: int, ids: list[int]) -> list[dict[str, int]]:
    """``sweeps`` sweeps at once, past the single-flight lock on purpose (the rows must be
    safe on their own), each then queueing every reconcile it can see a second time, as a
    re-driven job would."""
    deps = service.runtime.deps
    start = threading.Barrier(sweeps)
    counts: list[dict[str, int]] = []

    def sweep() -> None:
        start.wait()
        counts.append(outbox.sweep(deps))
        claimed = select(Message.id, Message.claim_token).where(Message.id.in_(ids))
        with service.db() as session:
            for message_id, token in session.execute(claimed):
                if token is not None:
                    deps.jobs.reconcile_sms(message_id, token)

    threads = [threading.Thread(target=sweep) for _ in range(sweeps)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return counts


@pytest.mark.parametrize("sweeps", [2, 4])
def test_concurrent_sweeps_and_duplicate_jobs_send_each_stuck_text_once(
    make_service: Callable[..., Service], sweeps: int
) -> None:
    # Enough workers for both reconciles of a row to run together, a Twilio slow to take
    # any request in, and Messages lists that are 0.3 s old when they arrive: the old code
    # sent 14-26 duplicates in 160 texts so (bench/recovery_faults.py).
    service = make_service(now=datetime.now(UTC))
    service.twilio.answer_late("list_messages", 0.3)
    more_workers = make_consumer(service.runtime.huey, 12, embedded=True, periodic=False)
    more_workers.start()
    try:
        for run in range(RUNS):
            _sweep_stuck_texts_together(service, sweeps, run)
    finally:
        more_workers.stop(graceful=True)


def _sweep_stuck_texts_together(service: Service, sweeps: int, run: int) -> None:
    """One run: 16 stuck texts (half Twilio has), swept together; each sent once."""
    callers = [caller_number(2000 + sweeps * 1000 + run * STUCK + i) for i in range(STUCK)]
    # Half were taken by Twilio before their worker died; half never reached it.
    service.twilio.delay_seconds = 0
    ids = [seed_stuck_text(service, c, already_sent=i % 2 == 0) for i, c in enumerate(callers)]
    service.twilio.delay_seconds = 0.2
    counts = _sweep_together(service, sweeps, ids)
    wait_for(lambda: _settled(service, ids), timeout=30, what=f"run {run}: all settled")
    settle(0.3)
    # Each row was handed out by exactly one sweep.
    assert sum(c["stuck"] for c in counts) == STUCK, (run, counts)
    sent = {c: [m.sid for m in service.twilio.messages if m.to == c] for c in callers}
    assert {c: len(sids) for c, sids in sent.items()} == dict.fromkeys(callers, 1), run
    rows = service.rows(select(Message).where(Message.id.in_(ids)).order_by(Message.id))
    assert [row.provider_sid for row in rows] == [sent[c][0] for c in callers]
    # A text Twilio already had was recorded, not sent again.
    assert [row.attempts for row in rows] == [1 if i % 2 == 0 else 2 for i in range(STUCK)]


def test_one_sweep_at_a_time_across_processes(make_service: Callable[..., Service]) -> None:
    service = make_service(now=datetime.now(UTC), run_worker=False)
    engine = service.runtime.deps.sessions.kw["bind"]
    with single_flight(engine, SWEEP_LOCK) as held:
        assert held
        assert run_sweep(service.runtime.deps) == {"skipped": 1}
        result = subprocess.run(
            [sys.executable, "-m", "ringback.cli", "sweep"],
            env=worker_process_env(service),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"skipped": 1}
    assert "skipped" not in run_sweep(service.runtime.deps)


def test_a_failing_message_list_backs_off_counts_and_ends_failed(
    make_service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    # Revoked credentials: every Messages-list lookup answers 401.
    service = make_service(now=datetime.now(UTC), run_worker=False)
    deps = service.runtime.deps
    service.twilio.fail_next(1000, status=401, code=20003, operation="list_messages")
    message_id = seed_stuck_text(service, caller_number(3900))
    assert run_sweep(deps)["stuck"] == 1
    caplog.set_level(logging.WARNING, logger="ringback.messaging.outbox")
    waits: list[float] = []
    for lookup in range(1, outbox.MAX_LOOKUP_FAILURES + 1):
        row = service.scalar(select(Message).where(Message.id == message_id))
        assert (row.status, row.lookup_failures) == ("sending", lookup - 1)
        # Its reconcile job (run here, in place of a worker) asks Twilio once.
        outbox.reconcile(deps, message_id, row.claim_token)
        row = service.scalar(select(Message).where(Message.id == message_id))
        if row.status == "failed":
            break
        assert row.lookup_failures == lookup
        waits.append((row.lease_until - LEASE - deps.clock()).total_seconds())
        # While it waits, sweeps leave it alone: no second chain of lookups.
        assert run_sweep(deps)["stuck"] == 0
        # Past the wait and its lease (its job lost): the sweep takes it over, once.
        service.clock.advance(timedelta(seconds=waits[-1]) + LEASE + timedelta(seconds=1))
        assert run_sweep(deps)["stuck"] == 1
    lookups = [r for r in service.twilio.requests if r.operation == "list_messages"]
    assert len(lookups) == outbox.MAX_LOOKUP_FAILURES
    # Growing (0.5-1 s, 1-2 s, 2-4 s ...), capped at five minutes.
    assert 0.25 < waits[0] <= 1.0
    assert all(later > earlier for earlier, later in itertools.pairwise(waits[:8]))
    assert max(waits) <= outbox.LOOKUP_BACKOFF_CAP_SECONDS
    assert waits[-1] >= outbox.LOOKUP_BACKOFF_CAP_SECONDS / 2
    row = service.scalar(select(Message).where(Message.id == message_id))
    assert (row.status, row.claim_token, row.lookup_failures) == (
        "failed",
        None,
        outbox.MAX_LOOKUP_FAILURES,
    )
    failures = outbox.MAX_LOOKUP_FAILURES
    assert row.error_detail.startswith(f"not confirmed: the message list failed {failures} times")
    # Nothing more to do, however often the sweep runs.
    service.clock.advance(timedelta(hours=1))
    assert run_sweep(deps)["stuck"] == 0
    assert service.twilio.messages == []
    # Each wait is logged with its fraction of a second.
    delays = [
        r.fields["delay_s"]  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "sms.reconcile_failed"
    ]
    # (the wait was read back a moment after it was logged)
    assert waits[0] <= delays[0] <= waits[0] + 0.25
    assert delays[0] != int(delays[0])


def test_a_receipt_for_a_message_nobody_sent_stops_being_redriven(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(now=datetime.now(UTC), run_worker=False)
    deps = service.runtime.deps
    response = service.post(
        "/twilio/sms/status",
        payload("sms_status_delivered", MessageSid=new_message_sid(), MessageStatus="delivered"),
    )
    assert response.status_code in (200, 204), response.text
    event_id = service.scalar(select(ProviderEvent.id))
    handle_event = service.runtime.jobs._handle_event
    redriven = 0
    for _ in range(events.MAX_SWEEP_ATTEMPTS + 5):
        service.clock.advance(events.REDRIVE_LEASE + timedelta(seconds=1))
        counts = run_sweep(deps)
        redriven += counts["events"]
        # Handed out once per lease, not by every sweep.
        assert run_sweep(deps)["events"] == 0
        if counts["events"]:
            with pytest.raises(Exception, match="no message with sid"):
                handle_event.call_local(event_id)
    event = service.scalar(select(ProviderEvent))
    assert event.handled_at is None
    assert event.attempts == events.MAX_SWEEP_ATTEMPTS
    assert redriven == events.MAX_SWEEP_ATTEMPTS
    assert "not ready" in event.last_error
