"""Recovery in tests: texts left claimed by a worker that died, a Redis of the test's own."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from ringback.models import Message, Patient
from ringback.ports import OutboundSms
from tests.conftest import Service, free_port

FROM_NUMBER = "+13105550100"  # glow-downtown


def seed_stuck_text(
    service: Service, caller: str, *, already_sent: bool = False, location: str = "glow-downtown"
) -> int:
    """A text a worker claimed and then died with: ``sending``, its lease lapsed a second
    ago. ``already_sent``: the provider took it before the worker died (it is in the
    Messages list), so recovery must record it, not send it again."""
    now = service.clock()
    body = f"Sorry we missed your call ({caller[-4:]}). Text back to book."
    if already_sent:
        service.runtime.deps.sms.send(OutboundSms(to=caller, from_=FROM_NUMBER, body=body))
    with service.db() as session:
        patient = Patient(location_id=location, phone=caller, created_at=now, updated_at=now)
        session.add(patient)
        session.flush()
        message = Message(
            location_id=location,
            patient_id=patient.id,
            direction="outbound",
            kind="textback",
            from_number=FROM_NUMBER,
            to_number=caller,
            body=body,
            idempotency_key=f"textback:stuck:{caller}",
            status="sending",
            attempts=1,
            created_at=now - timedelta(seconds=30),
            send_after=now - timedelta(seconds=30),
            claimed_at=now - timedelta(seconds=30),
            claim_token="dead-worker",
            lease_until=now - timedelta(seconds=1),
        )
        session.add(message)
        session.commit()
        return message.id


class PrivateRedis:
    """A redis-server of the test's own on a free loopback port, to stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        self._process = subprocess.Popen(
            [binary, *options, "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the private redis-server did not start") from None
                time.sleep(0.02)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()
