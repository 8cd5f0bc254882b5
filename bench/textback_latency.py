"""Text-back latency: from a signed dial-result webhook to Twilio receiving the text.

Run from the repository root::

    .venv/bin/python bench/textback_latency.py [--rate 50] [--seconds 60]
    .venv/bin/python bench/textback_latency.py --seconds 30 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --queue-url redis://127.0.0.1:6379/14

It starts ``ringback serve`` as a subprocess (plus ``ringback worker`` on a Redis queue)
against a fake Twilio served from this process, sends signed ``/twilio/voice/dial-result``
webhooks (``DialCallStatus=no-answer``, one new caller and CallSid each) at a steady
open-loop rate, and times each one from the moment it is sent to the moment the fake
receives the Messages request for that caller. Both ends read this machine's monotonic
clock. It prints p50/p90/p99/max, lost and duplicated texts, the webhook answer times,
where the time goes (from the timestamps the service stores per call), the CPU each
process used while sending (the machine may be shared: other processes' use is shown and
warned about), and a floor: a bare web app, also a subprocess, that forwards each webhook
straight to the fake (no signature check, no database, no queue) before answering.
``--samples FILE`` writes every call's figures as CSV, to look at the tail.

On a PostgreSQL URL it creates a database of its own next to the one named and drops it
at the end; on a Redis URL it empties the ``ringback`` queue in that Redis database first
and last. The exit status is 0 whether or not the target is met (this is a measurement),
2 when the benchmark could not be set up, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

import httpx
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

import ringback
from ringback.db import make_engine
from ringback.fakes.twilio import FakeTwilio, FakeTwilioServer, RecordedMessage
from ringback.jobs import build_huey
from ringback.models import Call, Message, ProviderEvent
from ringback.phones import InvalidPhoneNumber, normalize_e164

ROOT = Path(__file__).resolve().parents[1]
DEMO_LOCATIONS = Path(ringback.__file__).parent / "demo" / "locations.yaml"
DIAL_RESULT_FIXTURE = ROOT / "tests" / "fixtures" / "twilio" / "dial_result_no_answer.json"
DIAL_RESULT_PATH = "/twilio/voice/dial-result"
# glow-downtown in the demo locations: rings its front desk, so misses come as dial results.
CLINIC_NUMBER = "+13105550100"
# Los Angeles area codes for the simulated callers; 310 is left out, the clinic lives there.
CALLER_AREA_CODES = ("213", "323", "818", "626", "562", "747")
ACCOUNT_SID = "AC" + "b7" * 16
AUTH_TOKEN = "bench-auth-token-" + "5e" * 8

TARGET_P50_MS = 100.0
TARGET_P99_MS = 500.0
STARTUP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 15.0
# After every text has arrived, how long to keep listening for a second one.
DUPLICATE_SETTLE_SECONDS = 1.0

FLOOR_APP = textwrap.dedent(
    """
    import os

    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    SID = os.environ["FLOOR_ACCOUNT_SID"]
    MESSAGES = f"{os.environ['FLOOR_TWILIO_URL']}/2010-04-01/Accounts/{SID}/Messages.json"
    STATUS_CALLBACK = os.environ["FLOOR_PUBLIC_URL"] + "/twilio/sms/status"
    BODY = "Hi, this is Glow Med Spa - sorry we missed your call! Reply STOP to opt out."
    TWIML = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        "<Response><Say>Thanks for calling.</Say><Hangup/></Response>"
    )
    client = httpx.AsyncClient(
        auth=(SID, os.environ["FLOOR_AUTH_TOKEN"]),
        timeout=10,
        trust_env=False,
        limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
    )


    async def dial_result(request):
        form = await request.form()
        await client.post(
            MESSAGES,
            data={
                "To": form["From"],
                "From": form["To"],
                "Body": BODY,
                "StatusCallback": STATUS_CALLBACK,
            },
        )
        return Response(TWIML, media_type="application/xml")


    async def healthz(request):
        return PlainTextResponse("ok")


    app = Starlette(
        routes=[
            Route("/twilio/voice/dial-result", dial_result, methods=["POST"]),
            Route("/healthz", healthz),
        ]
    )
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=int(os.environ["FLOOR_PORT"]),
        log_config=None,
        access_log=False,
    )
    """
)


class SetupError(Exception):
    """The benchmark could not be set up or its warm-up failed; nothing was measured."""


# --- what is sent and what came back ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimulatedCall:
    """One missed call: a new caller, a new CallSid, and its signed dial-result webhook."""

    caller: str
    call_sid: str
    body: bytes
    signature: str


@dataclass(slots=True)
class Outcome:
    """What happened to one webhook on the sending side."""

    call: SimulatedCall
    scheduled_monotonic: float
    sent_monotonic: float = math.nan
    sent_wall: datetime | None = None
    answered_monotonic: float = math.nan
    answered_wall: datetime | None = None
    status: int | None = None
    error: str | None = None


def caller_numbers() -> Iterator[str]:
    """Distinct valid US numbers, each accepted by the service's own E.164 check."""
    for area_code in CALLER_AREA_CODES:
        for line in range(10000):
            number = f"+1{area_code}555{line:04d}"
            try:
                yield normalize_e164(number)
            except InvalidPhoneNumber:
                continue


def dial_result_template() -> dict[str, str]:
    data: dict[str, Any] = json.loads(DIAL_RESULT_FIXTURE.read_text(encoding="utf-8"))
    data.pop("_comment", None)
    return {key: str(value) for key, value in data.items()}


def make_calls(
    count: int, numbers: Iterator[str], public_url: str, template: Mapping[str, str]
) -> list[SimulatedCall]:
    """Build and sign every webhook up front, so the timed loop only sends."""
    validator = RequestValidator(AUTH_TOKEN)
    url = public_url + DIAL_RESULT_PATH
    calls = []
    for _ in range(count):
        caller = next(numbers, None)
        if caller is None:
            raise SetupError("ran out of distinct caller numbers; lower --rate or --seconds")
        params = {
            **template,
            "AccountSid": ACCOUNT_SID,
            "CallSid": "CA" + secrets.token_hex(16),
            "DialCallSid": "CA" + secrets.token_hex(16),
            "DialCallStatus": "no-answer",
            "From": caller,
            "Caller": caller,
            "To": CLINIC_NUMBER,
            "Called": CLINIC_NUMBER,
        }
        signature = str(validator.compute_signature(url, params))
        calls.append(
            SimulatedCall(caller, params["CallSid"], urlencode(params).encode(), signature)
        )
    return calls


async def _send_one(client: httpx.AsyncClient, outcome: Outcome) -> None:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": outcome.call.signature,
        "User-Agent": "TwilioProxy/1.1",
    }
    outcome.sent_wall = datetime.now(UTC)
    outcome.sent_monotonic = time.monotonic()
    try:
        response = await client.post(DIAL_RESULT_PATH, content=outcome.call.body, headers=headers)
    except httpx.HTTPError as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
    else:
        outcome.status = response.status_code
        if response.status_code != 200:
            outcome.error = response.text[:200]
    outcome.answered_monotonic = time.monotonic()
    outcome.answered_wall = datetime.now(UTC)


async def _send_all(base_url: str, calls: Sequence[SimulatedCall], rate: float) -> list[Outcome]:
    """Open loop: call ``i`` goes out at ``start + i / rate`` whatever came back before."""
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(
        base_url=base_url, limits=limits, timeout=30.0, trust_env=False
    ) as client:
        start = time.monotonic() + 0.05
        outcomes = [Outcome(call, start + index / rate) for index, call in enumerate(calls)]
        tasks = []
        for outcome in outcomes:
            delay = outcome.scheduled_monotonic - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_send_one(client, outcome)))
        await asyncio.gather(*tasks)
    return outcomes


def send(base_url: str, calls: Sequence[SimulatedCall], rate: float) -> list[Outcome]:
    return asyncio.run(_send_all(base_url, calls, rate))


def wait_for_texts(
    fake: FakeTwilio, callers: set[str], timeout: float
) -> dict[str, list[RecordedMessage]]:
    """Texts per expected caller once all have one, or when ``timeout`` runs out."""
    deadline = time.monotonic() + timeout
    while True:
        texts: dict[str, list[RecordedMessage]] = {}
        for message in fake.messages:
            texts.setdefault(message.to, []).append(message)
        if callers <= texts.keys() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if callers <= texts.keys():
        time.sleep(DUPLICATE_SETTLE_SECONDS)
        texts = {}
        for message in fake.messages:
            texts.setdefault(message.to, []).append(message)
    return texts


# --- figures ----------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


@dataclass(frozen=True, slots=True)
class Distribution:
    count: int
    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution:
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 0.50),
            p90=percentile(ordered, 0.90),
            p99=percentile(ordered, 0.99),
            max=ordered[-1] if ordered else math.nan,
        )

    def as_json(self) -> dict[str, float | int | None]:
        def rounded(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 1)

        return {
            "count": self.count,
            "p50_ms": rounded(self.p50),
            "p90_ms": rounded(self.p90),
            "p99_ms": rounded(self.p99),
            "max_ms": rounded(self.max),
        }


def ms(value: float) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:.1f} ms" if abs(value) < 10 else f"{value:.0f} ms"


@dataclass
class PhaseResult:
    """One timed phase (ringback or the floor) and what it measured."""

    label: str
    rate: float
    seconds: float
    outcomes: list[Outcome]
    texts: dict[str, list[RecordedMessage]]
    unexpected_texts: int
    violations: list[str]
    # Percent of one core during the sending, per process (see CpuMeter).
    cpu: dict[str, float]
    latency: Distribution = field(init=False)
    response: Distribution = field(init=False)
    send_lag: Distribution = field(init=False)

    def __post_init__(self) -> None:
        self.latency = Distribution.of(
            [
                (self.texts[o.call.caller][0].received_monotonic - o.sent_monotonic) * 1000
                for o in self.outcomes
                if self.texts.get(o.call.caller)
            ]
        )
        self.response = Distribution.of(
            [(o.answered_monotonic - o.sent_monotonic) * 1000 for o in self.outcomes]
        )
        self.send_lag = Distribution.of(
            [(o.sent_monotonic - o.scheduled_monotonic) * 1000 for o in self.outcomes]
        )

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def answered_ok(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200)

    @property
    def answer_failures(self) -> Counter[str]:
        return Counter(
            str(o.status) if o.status is not None else "no answer"
            for o in self.outcomes
            if o.status != 200
        )

    @property
    def first_answer_error(self) -> str | None:
        return next((o.error for o in self.outcomes if o.error), None)

    @property
    def texted(self) -> int:
        return sum(1 for o in self.outcomes if self.texts.get(o.call.caller))

    @property
    def lost(self) -> int:
        return self.sent - self.texted

    @property
    def duplicated(self) -> int:
        return sum(1 for o in self.outcomes if len(self.texts.get(o.call.caller, [])) > 1)

    @property
    def achieved_rate(self) -> float:
        times = [o.sent_monotonic for o in self.outcomes]
        if len(times) < 2:
            return math.nan
        return (len(times) - 1) / (max(times) - min(times))

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rate_per_s": self.rate,
            "seconds": self.seconds,
            "achieved_rate_per_s": round(self.achieved_rate, 2),
            "sent": self.sent,
            "answered_200": self.answered_ok,
            "answer_failures": dict(self.answer_failures),
            "texted": self.texted,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "unexpected_texts": self.unexpected_texts,
            "contract_violations": len(self.violations),
            "webhook_to_messages_request": self.latency.as_json(),
            "webhook_response": self.response.as_json(),
            "sender_lag": self.send_lag.as_json(),
            "cpu_percent_of_one_core": {name: round(value) for name, value in self.cpu.items()},
        }


# --- where the time goes ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    name: str
    what: str
    times: Distribution


STAGES = (
    (
        "edge",
        "sent -> event stamped (HTTP, form, signature, thread pool)",
        "sent",
        "event_received",
    ),
    (
        "to handler",
        "event stamped -> screened (insert, commit, enqueue, queue wait)",
        "event_received",
        "screened",
    ),
    (
        "handler",
        "screened -> event handled (conversation, outbox row, ...)",
        "screened",
        "handled",
    ),
    (
        "to sender",
        "event handled -> text claimed (0: claimed by the handler)",
        "handled",
        "claimed",
    ),
    (
        "send",
        "handled and claimed -> Messages request received (commit, HTTP)",
        "claimed",
        "fake_received",
    ),
)


def stored_moments(database_url: str) -> dict[str, dict[str, datetime | None]]:
    """Per CallSid, the moments the service stored while handling the call (wall clock).

    Each is read from the clock before the write that stores it: ``received_at`` before
    the event's insert (so before waiting for SQLite's write lock), ``screened_at`` and
    ``handled_at`` inside the handler's transaction, ``claimed_at`` before the claim commits.
    The handler claims the text-back itself, in its own transaction (before ``handled_at``);
    a text that went through a delivery job (a retry) is claimed after it. "claimed" is the
    later of the two: when the text was both decided and claimed.
    """
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.select(
                    Call.call_sid,
                    ProviderEvent.received_at,
                    Call.screened_at,
                    ProviderEvent.handled_at,
                    Message.claimed_at,
                )
                .join(
                    ProviderEvent,
                    sa.and_(
                        ProviderEvent.kind == "dial_result",
                        ProviderEvent.external_id == Call.call_sid,
                    ),
                )
                .outerjoin(Message, sa.and_(Message.call_id == Call.id, Message.kind == "textback"))
            ).all()
    finally:
        engine.dispose()
    return {
        row.call_sid: {
            "event_received": _utc(row.received_at),
            "screened": _utc(row.screened_at),
            "handled": _utc(row.handled_at),
            "claimed": _later(_utc(row.handled_at), _utc(row.claimed_at)),
        }
        for row in rows
    }


def _later(handled: datetime | None, claimed: datetime | None) -> datetime | None:
    if handled is None or claimed is None:
        return claimed
    return max(handled, claimed)


def per_call_timings(
    result: PhaseResult, stored: Mapping[str, Mapping[str, datetime | None]]
) -> list[dict[str, float | None]]:
    """One row per timed call: when it was sent, its latency, and each stage, in ms."""
    first_sent = min(o.sent_monotonic for o in result.outcomes)
    rows = []
    for outcome in result.outcomes:
        texts = result.texts.get(outcome.call.caller)
        row: dict[str, float | None] = {
            "sent_s": round(outcome.sent_monotonic - first_sent, 4),
            "sent_epoch": outcome.sent_wall.timestamp() if outcome.sent_wall else None,
            "latency_ms": (
                (texts[0].received_monotonic - outcome.sent_monotonic) * 1000 if texts else None
            ),
            "response_ms": (outcome.answered_monotonic - outcome.sent_monotonic) * 1000,
            "texts": len(texts or []),
        }
        moments = {
            **stored.get(outcome.call.call_sid, {}),
            "sent": outcome.sent_wall,
            "fake_received": texts[0].received_at if texts else None,
        }
        for name, _, start, end in STAGES:
            begun, ended = moments.get(start), moments.get(end)
            row[name] = (
                (ended - begun).total_seconds() * 1000
                if begun is not None and ended is not None
                else None
            )
        rows.append(row)
    return rows


def breakdown(timings: Sequence[Mapping[str, float | None]]) -> list[Stage]:
    """The distribution of each stage over the calls that were texted."""
    stages = []
    for name, what, _, _ in STAGES:
        values = [value for row in timings if (value := row[name]) is not None]
        stages.append(Stage(name, what, Distribution.of(values)))
    return stages


def write_samples(path: Path, timings: Sequence[Mapping[str, float | None]]) -> None:
    """Every call's figures as CSV, to look at the tail: when it happened and where."""
    if not timings:
        return
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(timings[0]))
        writer.writeheader()
        for row in timings:
            writer.writerow({k: "" if v is None else f"{v:.3f}" for k, v in row.items()})


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ManagedProcess:
    """A subprocess with its output in a log file, stopped with SIGINT, then harder."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path):
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        # A session of its own: a Ctrl-C in the terminal reaches this script, which then
        # stops the child in order, instead of every process at once.
        self.process = subprocess.Popen(
            argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                progress(f"{self.name} did not stop on SIGINT; sending SIGTERM")
                self.process.terminate()
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        self._log.close()

    def log_tail(self, lines: int = 12, width: int = 600) -> str:
        """The last lines of its output, each cut to ``width`` (JSON logs carry tracebacks)."""
        self._log.flush()
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        tail = text.splitlines()[-lines:]
        return "\n".join(line if len(line) <= width else line[:width] + " ..." for line in tail)


def wait_until_healthy(base_url: str, process: ManagedProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last = "no answer yet"
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if not process.running():
                raise SetupError(
                    f"{process.name} exited with status {process.process.returncode} "
                    f"before answering /healthz:\n{process.log_tail()}"
                )
            try:
                response = client.get(base_url + "/healthz")
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            else:
                if response.status_code == 200:
                    return
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            time.sleep(0.1)
    raise SetupError(
        f"{process.name} did not become healthy in {STARTUP_TIMEOUT_SECONDS:.0f} s "
        f"({last}):\n{process.log_tail()}"
    )


def ringback_command() -> str:
    beside = Path(sys.executable).parent / "ringback"
    found = str(beside) if beside.exists() else shutil.which("ringback")
    if found is None:
        raise SetupError("the ringback command is not installed (pip install -e . in a venv)")
    return found


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This environment without any Ringback or Twilio settings, plus ``overrides``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RINGBACK_", "TWILIO_"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


# --- backends ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backends:
    database_url: str
    queue_url: str

    @property
    def embedded_queue(self) -> bool:
        return self.queue_url.startswith("sqlite")

    @property
    def servers(self) -> frozenset[str]:
        """Command names of the server processes these backends run in (for the CPU meter)."""
        names = set()
        if self.database_url.startswith("postgresql"):
            names.add("postgres")
        if not self.embedded_queue:
            names.add("redis-server")
        return frozenset(names)

    def describe(self, workers: int, worker_processes: bool = False) -> str:
        database = "PostgreSQL" if self.database_url.startswith("postgresql") else "SQLite"
        if self.embedded_queue:
            return f"embedded: {database} + SQLite queue, {workers} workers in the web process"
        where = "worker processes" if worker_processes else "workers in ringback worker"
        return f"production: {database} + Redis queue, {workers} {where}"


@contextlib.contextmanager
def own_postgres_database(url: str) -> Iterator[str]:
    """A new, empty database beside the one ``url`` names; dropped on the way out."""
    name = f"ringback_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.SQLAlchemyError as exc:
        admin.dispose()
        raise SetupError(f"cannot create a database on {url}: {exc}") from exc
    try:
        yield sa.make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def empty_redis_queue(url: str) -> Iterator[None]:
    """Start and finish with no ringback jobs in that Redis database: ids restart at 1."""
    try:
        build_huey(url).flush()
    except Exception as exc:
        raise SetupError(f"cannot reach the Redis queue {url}: {exc}") from exc
    try:
        yield
    finally:
        build_huey(url).flush()


# --- how busy the machine was ------------------------------------------------------------


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat (Linux)."""
    try:
        fields = Path("/proc/stat").read_text(encoding="ascii").splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    ticks = [int(value) for value in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def _process_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system clock ticks of all its threads), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _process_ticks(pid: int, *, descendants: bool = True) -> int | None:
    """Clock ticks used so far by a process and its live descendants (worker processes)."""
    if not descendants:
        own = _process_stat(pid)
        return None if own is None else own[1]
    stats = {
        int(entry.name): stat
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and (stat := _process_stat(int(entry.name))) is not None
    }
    if pid not in stats:
        return None
    children: dict[int, list[int]] = {}
    for child, (parent, _) in stats.items():
        children.setdefault(parent, []).append(child)
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        total += stats[current][1]
        pending.extend(children.get(current, []))
    return total


def _server_ticks(commands: frozenset[str]) -> int:
    """Clock ticks used so far by every process whose command name is in ``commands``."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text(encoding="ascii").strip()
        except OSError:
            continue
        stat = _process_stat(int(entry.name)) if command in commands else None
        if stat is not None:
            total += stat[1]
    return total


class CpuMeter:
    """CPU used during the timed phase, in percent of one core, per process and in total.

    ``servers`` names the database and queue servers the service uses (``postgres``,
    ``redis-server``), counted together. The machine is shared: "other processes" is what
    none of these used, and a high figure there means the numbers are disturbed.
    """

    SERVERS = "PostgreSQL/Redis servers"
    OTHERS = "other processes"
    TOTAL = "machine total"

    def __init__(self, processes: Mapping[str, int], servers: frozenset[str]) -> None:
        self._processes = {"benchmark (sender + fake)": os.getpid(), **processes}
        self._servers = servers
        self._started_at = 0.0
        self._machine: tuple[int, int] | None = None
        self._ticks: dict[str, int | None] = {}
        self._server_ticks = 0

    def _ticks_of(self, pid: int) -> int | None:
        # The services are this process's children: count them apart, not in its total.
        return _process_ticks(pid, descendants=pid != os.getpid())

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._machine = _machine_jiffies()
        self._ticks = {name: self._ticks_of(pid) for name, pid in self._processes.items()}
        self._server_ticks = _server_ticks(self._servers) if self._servers else 0

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._started_at
        if elapsed <= 0:
            return {}
        hertz = os.sysconf("SC_CLK_TCK")
        usage: dict[str, float] = {}
        for name, pid in self._processes.items():
            before, after = self._ticks.get(name), self._ticks_of(pid)
            if before is not None and after is not None:
                usage[name] = 100 * (after - before) / hertz / elapsed
        if self._servers:
            # Backends that exited during the run are missed: a lower bound.
            used = _server_ticks(self._servers) - self._server_ticks
            usage[self.SERVERS] = max(0.0, 100 * used / hertz / elapsed)
        machine = _machine_jiffies()
        if self._machine is not None and machine is not None and machine[1] > self._machine[1]:
            busy = (machine[0] - self._machine[0]) / (machine[1] - self._machine[1])
            total = 100 * busy * (os.cpu_count() or 1)
            usage[self.OTHERS] = max(0.0, total - sum(usage.values()))
            usage[self.TOTAL] = total
        return usage


# --- the phases -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Plan:
    rate: float
    seconds: float
    warmup: int
    grace: float
    contract: bool


def new_fake(plan: Plan) -> FakeTwilio:
    """The fake for one phase: checking the OpenAPI contract, or only the credentials."""
    if plan.contract:
        return FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    return FakeTwilio(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)


def measure(
    label: str,
    base_url: str,
    fake: FakeTwilio,
    plan: Plan,
    numbers: Iterator[str],
    seconds: float,
    processes: Mapping[str, int],
    servers: frozenset[str] = frozenset(),
) -> PhaseResult:
    """Warm up, then send ``rate * seconds`` webhooks and collect what the fake received.

    The service's public URL is ``base_url`` itself, so that is what the webhooks are signed for.
    """
    public_url = base_url
    template = dial_result_template()
    warmup = make_calls(plan.warmup, numbers, public_url, template)
    count = max(1, round(plan.rate * seconds))
    calls = make_calls(count, numbers, public_url, template)

    if warmup:
        progress(f"{label}: warm-up, {len(warmup)} calls")
        outcomes = send(base_url, warmup, plan.rate)
        refused = [o for o in outcomes if o.status != 200]
        if refused:
            raise SetupError(
                f"{label}: warm-up webhook answered {refused[0].status}: {refused[0].error}"
            )
        texts = wait_for_texts(fake, {c.caller for c in warmup}, timeout=15)
        missing = len({c.caller for c in warmup} - texts.keys())
        if missing:
            raise SetupError(f"{label}: {missing} of {len(warmup)} warm-up calls got no text")

    progress(f"{label}: sending {count} calls at {plan.rate:g}/s")
    meter = CpuMeter(processes, servers)
    meter.start()
    outcomes = send(base_url, calls, plan.rate)
    cpu = meter.stop()
    progress(f"{label}: waiting up to {plan.grace:g} s for the last texts")
    expected = {c.caller for c in calls}
    texts = wait_for_texts(fake, expected, timeout=plan.grace)
    known = expected | {c.caller for c in warmup}
    unexpected = sum(len(found) for caller, found in texts.items() if caller not in known)
    return PhaseResult(
        label=label,
        rate=plan.rate,
        seconds=seconds,
        outcomes=outcomes,
        texts={caller: found for caller, found in texts.items() if caller in expected},
        unexpected_texts=unexpected,
        violations=fake.violations,
        cpu=cpu,
    )


def run_ringback(
    args: argparse.Namespace,
    plan: Plan,
    numbers: Iterator[str],
    backends: Backends,
    workdir: Path,
    logdir: Path,
) -> tuple[PhaseResult, list[Stage]]:
    locations = workdir / "locations.yaml"
    shutil.copy(DEMO_LOCATIONS, locations)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    fake = new_fake(plan)
    command = ringback_command()
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(FakeTwilioServer(fake))
        env = child_env(
            {
                "RINGBACK_DATABASE_URL": backends.database_url,
                "RINGBACK_QUEUE_URL": backends.queue_url,
                "RINGBACK_CONFIG": str(locations),
                "RINGBACK_PUBLIC_URL": base_url,
                "RINGBACK_DATA_DIR": str(workdir / "data"),
                "RINGBACK_WORKERS": str(args.workers),
                "RINGBACK_LOG_LEVEL": args.service_log_level,
                "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
                "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                "TWILIO_API_BASE_URL": server.url,
                "TWILIO_LOOKUP_BASE_URL": server.url,
            }
        )
        serve = [command, "serve", "--host", "127.0.0.1", "--port", str(port)]
        if not backends.embedded_queue:
            serve.append("--no-worker")
        service = ManagedProcess("ringback serve", serve, env, logdir / "serve.log")
        stack.callback(service.stop)
        progress(f"ringback serve: pid {service.pid} on {base_url}")
        wait_until_healthy(base_url, service)
        processes = [service]
        if not backends.embedded_queue:
            argv = [command, "worker"]
            if args.worker_processes:
                argv.append("--processes")
            worker = ManagedProcess("ringback worker", argv, env, logdir / "worker.log")
            stack.callback(worker.stop)
            processes.append(worker)
            progress(f"ringback worker: pid {worker.pid}")
        try:
            pids = {p.name: p.pid for p in processes}
            result = measure(
                "ringback", base_url, fake, plan, numbers, plan.seconds, pids, backends.servers
            )
        except SetupError as exc:
            tails = "\n".join(f"--- {p.name} log ---\n{p.log_tail()}" for p in processes)
            raise SetupError(f"{exc}\n{tails}") from None
        for process in processes:
            if not process.running():
                raise SetupError(f"{process.name} died during the run:\n{process.log_tail()}")
    # The service is stopped: read its timestamps without disturbing anything.
    timings = per_call_timings(result, stored_moments(backends.database_url))
    if args.samples is not None:
        write_samples(args.samples, timings)
    return result, breakdown(timings)


def run_floor(
    args: argparse.Namespace, plan: Plan, numbers: Iterator[str], logdir: Path
) -> PhaseResult:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    fake = new_fake(plan)
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(FakeTwilioServer(fake))
        env = child_env(
            {
                "FLOOR_PORT": str(port),
                "FLOOR_PUBLIC_URL": base_url,
                "FLOOR_TWILIO_URL": server.url,
                "FLOOR_ACCOUNT_SID": ACCOUNT_SID,
                "FLOOR_AUTH_TOKEN": AUTH_TOKEN,
            }
        )
        floor = ManagedProcess(
            "floor", [sys.executable, "-c", FLOOR_APP], env, logdir / "floor.log"
        )
        stack.callback(floor.stop)
        progress(f"floor: pid {floor.pid} on {base_url}")
        wait_until_healthy(base_url, floor)
        pids = {floor.name: floor.pid}
        return measure("floor", base_url, fake, plan, numbers, args.floor_seconds, pids)


# --- report -----------------------------------------------------------------------------


def report(
    args: argparse.Namespace,
    plan: Plan,
    backends: Backends,
    result: PhaseResult,
    stages: list[Stage],
    floor: PhaseResult | None,
) -> dict[str, Any]:
    latency = result.latency
    met = (
        latency.p50 <= TARGET_P50_MS
        and latency.p99 <= TARGET_P99_MS
        and result.lost == 0
        and result.duplicated == 0
    )
    contract = (
        "Twilio OpenAPI contract checked on every request"
        if plan.contract
        else "contract check OFF (credentials only)"
    )
    print(f"Ringback text-back latency ({backends.describe(args.workers, args.worker_processes)})")
    print(
        f"rate {plan.rate:g}/s for {plan.seconds:g} s "
        f"(achieved {result.achieved_rate:.1f}/s, sender lag p99 {ms(result.send_lag.p99)}, "
        f"after {plan.warmup} warm-up calls)"
    )
    print(
        f"sent {result.sent}, answered 200 {result.answered_ok}, texted {result.texted}, "
        f"lost {result.lost}, duplicated {result.duplicated}, "
        f"texts to unknown callers {result.unexpected_texts}"
    )
    if result.lost:
        print(f"  lost: no text within {plan.grace:g} s of the last webhook (--grace)")
    if result.answer_failures:
        failures = ", ".join(f"{k} x{v}" for k, v in sorted(result.answer_failures.items()))
        print(f"  webhook answers other than 200: {failures}; first: {result.first_answer_error}")
    print(f"fake Twilio: {contract}; violations {len(result.violations)}")
    for violation in result.violations[:3]:
        print(f"  {violation}")
    print(
        f"webhook -> Messages request: p50 {ms(latency.p50)}  p90 {ms(latency.p90)}  "
        f"p99 {ms(latency.p99)}  max {ms(latency.max)}"
    )
    print(
        f"webhook answered (200):      p50 {ms(result.response.p50)}  "
        f"p90 {ms(result.response.p90)}  p99 {ms(result.response.p99)}  "
        f"max {ms(result.response.max)}"
    )
    print(f"CPU while sending (% of one core; {os.cpu_count()} cores): {cpu_line(result.cpu)}")
    if stages:
        print("where the time goes (wall-clock timestamps the service stored per call):")
        width = max(len(stage.what) for stage in stages)
        for stage in stages:
            times = stage.times
            print(
                f"  {stage.what:<{width}}  p50 {ms(times.p50):>8}  p90 {ms(times.p90):>8}  "
                f"p99 {ms(times.p99):>8}"
            )
    ratio = math.nan
    if floor is not None:
        print(
            f"floor (bare forwarder, {floor.rate:g}/s for {floor.seconds:g} s): "
            f"p50 {ms(floor.latency.p50)}  p90 {ms(floor.latency.p90)}  "
            f"p99 {ms(floor.latency.p99)}  max {ms(floor.latency.max)}  "
            f"(sent {floor.sent}, texted {floor.texted}, lost {floor.lost}, "
            f"duplicated {floor.duplicated}, violations {len(floor.violations)})"
        )
        print(f"  floor CPU while sending: {cpu_line(floor.cpu)}")
        ratio = latency.p50 / floor.latency.p50
        print(f"ringback p50 = {ratio:.1f} x floor p50")
    if result.achieved_rate < 0.95 * plan.rate or result.send_lag.p99 > 50:
        print("warning: the sender fell behind its schedule; the load was lower than asked")
    for phase in (result, floor):
        if phase is not None and disturbed(phase):
            print(
                f"warning: other processes used {phase.cpu[CpuMeter.OTHERS]:.0f}% of a core "
                f"during the {phase.label} phase; its figures are disturbed"
            )
    print(
        f"target p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms, "
        f"nothing lost or duplicated: {'MET' if met else 'NOT MET'}"
    )
    return {
        "mode": backends.describe(args.workers, args.worker_processes),
        "workers": args.workers,
        "contract_checked": plan.contract,
        "warmup_calls": plan.warmup,
        "ringback": result.as_json(),
        "stages": {stage.name: {"what": stage.what, **stage.times.as_json()} for stage in stages},
        "floor": floor.as_json() if floor is not None else None,
        "p50_vs_floor": None if math.isnan(ratio) else round(ratio, 2),
        "target": {"p50_ms": TARGET_P50_MS, "p99_ms": TARGET_P99_MS, "met": met},
    }


def cpu_line(cpu: Mapping[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f}%" for name, value in cpu.items()) or "not measured"


def disturbed(result: PhaseResult) -> bool:
    """Other processes used over a quarter of a core: someone else was busy."""
    return result.cpu.get(CpuMeter.OTHERS, 0.0) > 25.0


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="missed calls per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the timed phase")
    parser.add_argument(
        "--database-url",
        help="default: a SQLite file in a temporary folder; on postgresql+psycopg://.../db "
        "a fresh database is created beside db and dropped afterwards",
    )
    parser.add_argument(
        "--queue-url",
        help="default: an embedded SQLite queue in a temporary folder; redis://host:port/db "
        "runs ringback worker as a separate process",
    )
    parser.add_argument("--workers", type=int, default=4, help="job workers (RINGBACK_WORKERS)")
    parser.add_argument(
        "--worker-processes",
        action="store_true",
        help="on a Redis queue, run ringback worker --processes (one process per worker)",
    )
    parser.add_argument("--skip-floor", action="store_true", help="do not measure the floor")
    parser.add_argument(
        "--floor-seconds", type=float, help="length of the floor's timed phase (default --seconds)"
    )
    parser.add_argument(
        "--warmup", type=int, default=20, help="untimed calls sent first, per phase"
    )
    parser.add_argument(
        "--grace", type=float, default=10.0, help="seconds to wait for the last texts"
    )
    parser.add_argument(
        "--no-contract",
        action="store_true",
        help="run the fake without the OpenAPI contract check (credentials are still checked)",
    )
    parser.add_argument(
        "--service-log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="RINGBACK_LOG_LEVEL of the service",
    )
    parser.add_argument(
        "--log-dir", type=Path, help="keep the subprocesses' logs here (default: discarded)"
    )
    parser.add_argument("--json", action="store_true", help="also print a JSON summary")
    parser.add_argument(
        "--samples", type=Path, help="write every timed call's figures to this CSV file"
    )
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.seconds <= 0 or args.workers < 1 or args.warmup < 0:
        parser.error("--rate and --seconds must be positive, --workers at least 1")
    if args.floor_seconds is None:
        args.floor_seconds = args.seconds
    return args


def _interrupt_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Handled as a Ctrl-C, so asyncio cancels the sender cleanly and the cleanup runs.
    signal.raise_signal(signal.SIGINT)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Interruptible even when started from a script with SIGINT ignored (``cmd &``).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    plan = Plan(
        rate=args.rate,
        seconds=args.seconds,
        warmup=args.warmup,
        grace=args.grace,
        contract=not args.no_contract,
    )
    numbers = caller_numbers()
    try:
        with contextlib.ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rb-bench-")))
            logdir: Path = args.log_dir or workdir
            logdir.mkdir(parents=True, exist_ok=True)
            database_url = args.database_url or f"sqlite:///{workdir / 'ringback.db'}"
            if database_url.startswith("postgresql"):
                database_url = stack.enter_context(own_postgres_database(database_url))
            queue_url = args.queue_url or f"sqlite:///{workdir / 'queue.db'}"
            if queue_url.startswith(("redis://", "rediss://", "unix://")):
                stack.enter_context(empty_redis_queue(queue_url))
            backends = Backends(database_url, queue_url)
            result, stages = run_ringback(args, plan, numbers, backends, workdir, logdir)
            floor = None if args.skip_floor else run_floor(args, plan, numbers, logdir)
            summary = report(args, plan, backends, result, stages, floor)
    except SetupError as exc:
        print(f"textback_latency: setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("textback_latency: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
