"""Recovery under faults: sweeps running together, and a Messages list that keeps failing.

Run from the repository root::

    .venv/bin/python bench/recovery_faults.py [--runs 10] [--lookup-seconds 20]

``sweeps``: 16 texts left ``sending`` by a worker that died (half of them Twilio had
taken), then 2 (and 4) sweeps started together while 16 embedded workers run the jobs
they queue, with Twilio taking 200 ms to take any request in and Messages-list answers
arriving 300 ms after they were true. Per run it
counts the texts each number got: lost (none), duplicated (more than one), and the time
until every row is settled. ``lookups``: one such text, every Messages-list lookup
answering 401 (revoked credentials), a sweep every second; it prints the lookups per
second over the last half and where the row ended. Everything runs on SQLite files in a
temporary directory. It only uses APIs the code had before the recovery work
(``outbox.sweep``, the embedded consumer), so it measures either tree: point
``PYTHONPATH`` at the one to measure.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

import ringback
from ringback.config import Settings, load_locations
from ringback.db import make_engine
from ringback.fakes.twilio import FakeTwilio, FakeTwilioServer
from ringback.jobs import make_consumer
from ringback.messaging import outbox
from ringback.models import Message, Patient
from ringback.ports import OutboundSms, SentSms
from ringback.runtime import Runtime, build_runtime
from ringback.schema import upgrade

DEMO_LOCATIONS = Path(ringback.__file__).parent / "demo" / "locations.yaml"
FROM = "+13105550100"
STUCK = 16
# Worker threads running the jobs: enough for both reconciles of a row to run together.
WORKERS = 16


def build(workdir: Path, twilio_url: str, state: FakeTwilio) -> Runtime:
    database = f"sqlite:///{workdir / f'rb-{uuid.uuid4().hex[:6]}.db'}"
    engine = make_engine(database)
    upgrade(engine)
    engine.dispose()
    settings = Settings(
        RINGBACK_DATABASE_URL=database,
        RINGBACK_QUEUE_URL=f"sqlite:///{workdir / f'q-{uuid.uuid4().hex[:6]}.db'}",
        RINGBACK_CONFIG=DEMO_LOCATIONS,
        RINGBACK_PUBLIC_URL="http://127.0.0.1:9",
        RINGBACK_WORKERS=4,
        RINGBACK_SEND_TIMEOUT=2,
        TWILIO_ACCOUNT_SID=state.account_sid,
        TWILIO_AUTH_TOKEN=state.auth_token,
        TWILIO_API_BASE_URL=twilio_url,
        TWILIO_LOOKUP_BASE_URL=twilio_url,
    )
    return build_runtime(settings, load_locations(DEMO_LOCATIONS))


def seed(runtime: Runtime, number: str, *, sent: bool) -> int:
    now = datetime.now(UTC)
    body = f"Sorry we missed your call ({number[-4:]})."
    if sent:
        runtime.deps.sms.send(OutboundSms(to=number, from_=FROM, body=body))
    with runtime.deps.sessions() as session:
        patient = Patient(location_id="glow-downtown", phone=number, created_at=now, updated_at=now)
        session.add(patient)
        session.flush()
        message = Message(
            location_id="glow-downtown",
            patient_id=patient.id,
            direction="outbound",
            kind="textback",
            from_number=FROM,
            to_number=number,
            body=body,
            idempotency_key=f"bench:{number}:{uuid.uuid4().hex[:6]}",
            status="sending",
            attempts=1,
            created_at=now - timedelta(minutes=5),
            send_after=now - timedelta(minutes=5),
            claimed_at=now - timedelta(minutes=5),
        )
        session.add(message)
        session.commit()
        return message.id


def answer_lists_late(runtime: Runtime, seconds: float) -> None:
    """The Messages list answers ``seconds`` late: what it says is that old when it comes."""
    sender = runtime.deps.sms
    find_sent = sender.find_sent

    def late(sms: OutboundSms, since: datetime) -> SentSms | None:
        found = find_sent(sms, since)
        time.sleep(seconds)
        return found

    sender.find_sent = late  # type: ignore[method-assign]


def _sweep_at(gate: threading.Barrier, runtime: Runtime) -> None:
    gate.wait()
    outbox.sweep(runtime.deps)


def sweeps(workdir: Path, runs: int) -> None:
    print("fault                         runs  expected  sent  lost  duplicated  drain max (s)")
    for together in (2, 4):
        state = FakeTwilio.checked_against_spec()
        with FakeTwilioServer(state) as server:
            runtime = build(workdir, server.url, state)
            state.delay_seconds = 0.2  # every request, sends too
            answer_lists_late(runtime, 0.3)
            consumer = make_consumer(runtime.huey, WORKERS, embedded=True, periodic=False)
            consumer.start()
            expected = sent = lost = duplicated = 0
            drains: list[float] = []
            try:
                for run in range(runs):
                    base = together * 1000 + run * STUCK
                    numbers = [f"+1213555{(base + i) % 10000:04d}" for i in range(STUCK)]
                    ids = [seed(runtime, n, sent=i % 2 == 0) for i, n in enumerate(numbers)]
                    gate = threading.Barrier(together)
                    started = time.monotonic()
                    threads = [
                        threading.Thread(target=_sweep_at, args=(gate, runtime))
                        for _ in range(together)
                    ]
                    for thread in threads:
                        thread.start()
                    for thread in threads:
                        thread.join()
                    deadline = started + 30
                    while time.monotonic() < deadline:
                        with runtime.deps.sessions() as session:
                            rows = session.scalars(select(Message).where(Message.id.in_(ids))).all()
                        if all(r.provider_sid and r.status != "sending" for r in rows):
                            break
                        time.sleep(0.05)
                    drains.append(time.monotonic() - started)
                    time.sleep(1.0)  # late duplicates
                    for number in numbers:
                        got = sum(1 for m in state.messages if m.to == number)
                        expected += 1
                        sent += min(got, 1)
                        lost += got == 0
                        duplicated += max(got - 1, 0)
            finally:
                consumer.stop(graceful=True)
                runtime.close()
        label = f"{together} sweeps at once, 16 stuck"
        print(
            f"{label:<30}{runs:>4}{expected:>10}{sent:>6}{lost:>6}{duplicated:>12}"
            f"{max(drains):>15.1f}"
        )


def lookups(workdir: Path, seconds: float) -> None:
    state = FakeTwilio.checked_against_spec()
    state.fail_next(100_000, status=401, code=20003, operation="list_messages")
    with FakeTwilioServer(state) as server:
        runtime = build(workdir, server.url, state)
        consumer = make_consumer(runtime.huey, 4, embedded=True, periodic=False)
        consumer.start()
        try:
            message_id = seed(runtime, "+12135559000", sent=False)
            started = time.monotonic()
            while time.monotonic() - started < seconds:
                outbox.sweep(runtime.deps)
                time.sleep(1.0)
            half = started + seconds / 2
            recent = [
                r
                for r in state.requests
                if r.operation == "list_messages" and r.received_monotonic >= half
            ]
            total = sum(1 for r in state.requests if r.operation == "list_messages")
            with runtime.deps.sessions() as session:
                row = session.get(Message, message_id)
                assert row is not None
                failures = getattr(row, "lookup_failures", "n/a")
                print(
                    f"failing Messages list, sweep every 1 s for {seconds:.0f} s: {total} lookups, "
                    f"{len(recent) / (seconds / 2):.1f}/s in the last half; row {row.status}, "
                    f"lookup failures counted: {failures}"
                )
        finally:
            consumer.stop(graceful=True)
            runtime.close()


def main() -> None:
    logging.getLogger("ringback").setLevel(logging.CRITICAL)
    logging.getLogger("huey").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--lookup-seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rb-recovery-") as workdir:
        sweeps(Path(workdir), args.runs)
        lookups(Path(workdir), args.lookup_seconds)


if __name__ == "__main__":
    main()
