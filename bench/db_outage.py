"""Missed calls while the database is unavailable, with and without the webhook spool.

Run from the repository root::

    .venv/bin/python bench/db_outage.py [--rate 20] [--pg-seconds 10] [--sqlite-seconds 30]

Two faults, each run with the spool (the default) and without (``RINGBACK_SPOOL_MAX_MB=0``):

* PostgreSQL refusing connections for ``--pg-seconds``: the service reaches its database
  (a fresh one next to ``--pg-url``) only through a TCP proxy this script starts
  (:class:`ringback.fakes.tcp_proxy.TcpProxy`), which closes every connection and refuses
  new ones for the outage;
* SQLite held by a long writer for ``--sqlite-seconds`` (``BEGIN IMMEDIATE`` on another
  connection, as a long import did).

The service runs in this process (the app under uvicorn, the embedded queue and worker on
a SQLite file of its own, the recovery sweep, a fake Twilio). Signed
``/twilio/voice/dial-result`` webhooks (no-answer, one new caller each) are sent at
``--rate`` per second from 3 s before the outage to 3 s after it; each waits at most 15 s
for its answer, as Twilio does, and Twilio does not retry a Dial action. Every caller
should get exactly one text. Per run it prints: calls, answered 200, texts expected,
sent, lost, duplicated, and the time to drain: from the end of the outage until the last
caller who called during it got a text (or 60 s passed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from twilio.request_validator import RequestValidator

import ringback
from ringback.app import create_app
from ringback.config import Settings, load_locations
from ringback.db import make_engine
from ringback.fakes.tcp_proxy import TcpProxy
from ringback.fakes.twilio import BackgroundServer, FakeTwilio, FakeTwilioServer
from ringback.schema import upgrade

ROOT = Path(__file__).resolve().parents[1]
DEMO_LOCATIONS = Path(ringback.__file__).parent / "demo" / "locations.yaml"
CLINIC = "+13105550100"  # glow-downtown: rings the front desk, misses come as dial results
PUBLIC_URL = "http://ringback.bench"
ACCOUNT_SID = "AC" + "c3" * 16
AUTH_TOKEN = "bench-auth-token-" + "7a" * 8
# A Tuesday at 10:00 in Los Angeles: open, and inside texting hours.
OPEN_HOURS = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
TWILIO_TIMEOUT = 15.0
LEAD_SECONDS = 3.0
DRAIN_LIMIT = 60.0


class Clock:
    """Real time, starting in opening hours (text-backs wait for texting hours)."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return OPEN_HOURS + timedelta(seconds=time.monotonic() - self._t0)


DIAL_RESULT = {
    k: v
    for k, v in json.loads(
        (ROOT / "tests" / "fixtures" / "twilio" / "dial_result_no_answer.json").read_text()
    ).items()
    if not k.startswith("_")
}


def dial_result(caller: str) -> dict[str, str]:
    return {
        **DIAL_RESULT,
        "AccountSid": ACCOUNT_SID,
        "CallSid": "CA" + uuid.uuid4().hex,
        "From": caller,
        "Caller": caller,
        "To": CLINIC,
    }


def run(
    label: str,
    database_url: str,
    outage: Callable[[], Any],
    seconds: float,
    rate: float,
    workdir: Path,
    *,
    spool: bool,
) -> dict[str, Any]:
    state = FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    run_dir = workdir / uuid.uuid4().hex[:8]
    settings = Settings(
        RINGBACK_DATABASE_URL=database_url,
        RINGBACK_QUEUE_URL=f"sqlite:///{run_dir / 'queue.db'}",
        RINGBACK_DATA_DIR=run_dir,
        RINGBACK_CONFIG=DEMO_LOCATIONS,
        RINGBACK_PUBLIC_URL=PUBLIC_URL,
        RINGBACK_WORKERS=4,
        RINGBACK_SEND_TIMEOUT=2,
        RINGBACK_SPOOL_MAX_MB=64 if spool else 0,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
    )
    validator = RequestValidator(AUTH_TOKEN)
    path = "/twilio/voice/dial-result"
    answers: Counter[str] = Counter()
    callers: list[str] = []
    called_at: dict[str, float] = {}
    with FakeTwilioServer(state) as twilio:
        settings = settings.model_copy(
            update={"twilio_api_base_url": twilio.url, "twilio_lookup_base_url": twilio.url}
        )
        from ringback.runtime import build_runtime

        runtime = build_runtime(settings, load_locations(DEMO_LOCATIONS), clock=Clock())
        app = create_app(runtime, run_worker=True, run_sweeper=True)
        with BackgroundServer(app) as server, httpx.Client(timeout=TWILIO_TIMEOUT) as http:

            def call(index: int) -> None:
                caller = f"+1213{5550000 + index:07d}"
                callers.append(caller)
                called_at[caller] = time.monotonic()
                params = dial_result(caller)
                signature = validator.compute_signature(PUBLIC_URL + path, params)
                try:
                    response = http.post(
                        server.url + path, data=params, headers={"X-Twilio-Signature": signature}
                    )
                    answers[str(response.status_code)] += 1
                except httpx.TimeoutException:
                    answers["timeout"] += 1
                except httpx.HTTPError:
                    answers["error"] += 1

            total = int((2 * LEAD_SECONDS + seconds) * rate)
            started = time.monotonic()
            outage_ended = threading.Event()
            ended_at: list[float] = []
            began_at: list[float] = []

            def fault() -> None:
                time.sleep(LEAD_SECONDS)
                began_at.append(time.monotonic())
                with outage():
                    time.sleep(seconds)
                ended_at.append(time.monotonic())
                outage_ended.set()

            fault_thread = threading.Thread(target=fault)
            fault_thread.start()
            with ThreadPoolExecutor(64) as pool:
                for index in range(total):
                    due = started + index / rate
                    time.sleep(max(0.0, due - time.monotonic()))
                    pool.submit(call, index)
            fault_thread.join()
            end = ended_at[0]
            # Wait for every caller's text, or until the count stops moving for long.
            deadline = end + DRAIN_LIMIT
            while time.monotonic() < deadline:
                texted = {m.to for m in state.messages}
                if all(c in texted for c in callers):
                    break
                time.sleep(0.1)
            # Drained: the last text to a caller who called during the outage, after it ended.
            during = {c for c, at in called_at.items() if began_at[0] <= at <= end}
            first_text: dict[str, float] = {}
            for message in state.messages:
                first_text.setdefault(message.to, message.received_monotonic)
            last = max((first_text[c] for c in during if c in first_text), default=end)
            time.sleep(1.0)  # late duplicates
            per_caller = Counter(m.to for m in state.messages)
        runtime.close()
    sent = sum(1 for c in callers if per_caller[c] >= 1)
    return {
        "label": label,
        "spool": "yes" if spool else "no",
        "calls": len(callers),
        "answered_200": answers["200"],
        "expected": len(callers),
        "sent": sent,
        "lost": len(callers) - sent,
        "duplicated": sum(max(per_caller[c] - 1, 0) for c in callers),
        "drain": max(0.0, last - end),
        "answers": dict(answers),
    }


@contextmanager
def postgres_database(pg_url: str) -> Iterator[str]:
    name = f"ringback_outage_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def postgres_runs(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    results = []
    url = sa.make_url(args.pg_url)
    for spool in (False, True):
        with (
            postgres_database(args.pg_url) as database,
            TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy,
        ):
            proxied = (
                sa.make_url(database)
                .set(host="127.0.0.1", port=proxy.port)
                .render_as_string(hide_password=False)
            )

            @contextmanager
            def refused() -> Iterator[None]:
                proxy.refuse()
                try:
                    yield
                finally:
                    proxy.restore()

            label = f"PostgreSQL refused {args.pg_seconds:.0f} s"
            results.append(
                run(label, proxied, refused, args.pg_seconds, args.rate, workdir, spool=spool)
            )
    return results


def sqlite_runs(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    results = []
    for spool in (False, True):
        path = workdir / f"rb-{uuid.uuid4().hex[:6]}.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()

        @contextmanager
        def locked(path: Path = path) -> Iterator[None]:
            writer = sqlite3.connect(path, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            try:
                yield
            finally:
                writer.execute("ROLLBACK")
                writer.close()

        label = f"SQLite locked {args.sqlite_seconds:.0f} s"
        results.append(
            run(
                label,
                f"sqlite:///{path}",
                locked,
                args.sqlite_seconds,
                args.rate,
                workdir,
                spool=spool,
            )
        )
    return results


def main() -> None:
    logging.getLogger("ringback").setLevel(logging.CRITICAL)
    logging.getLogger("huey").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn").setLevel(logging.CRITICAL)
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--pg-seconds", type=float, default=10.0)
    parser.add_argument("--sqlite-seconds", type=float, default=30.0)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("postgres", "sqlite"))
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="rb-outage-") as workdir:
        if args.only != "sqlite":
            results += postgres_runs(args, Path(workdir))
        if args.only != "postgres":
            results += sqlite_runs(args, Path(workdir))
    print(
        f"{'fault':<26}{'spool':>6}{'calls':>7}{'200s':>6}{'expected':>10}{'sent':>6}"
        f"{'lost':>6}{'dup':>5}{'drain (s)':>11}  answers"
    )
    for r in results:
        print(
            f"{r['label']:<26}{r['spool']:>6}{r['calls']:>7}{r['answered_200']:>6}"
            f"{r['expected']:>10}{r['sent']:>6}{r['lost']:>6}{r['duplicated']:>5}"
            f"{r['drain']:>11.1f}  {r['answers']}"
        )


if __name__ == "__main__":
    main()
