"""A large patient import while missed calls come in: import speed and text-back latency.

Run from the repository root::

    .venv/bin/python bench/import_load.py [--rows 800000] [--rate 10] [--only sqlite|postgres]

It writes a patients CSV of ``--rows`` rows (generic columns: first_name, last_name,
phone, external_id), starts the service in this process (the app under uvicorn, the
embedded queue and worker, a fake Twilio), and runs ``ringback patients import`` on the
file as a separate process, as an operator would, while sending signed
``/twilio/voice/dial-result`` webhooks (no-answer, a new caller each) at ``--rate`` per
second. Each text-back is timed as in ``bench/textback_latency.py``: from sending the
webhook to the fake receiving the Messages request, both on this machine's monotonic
clock. It prints the import's rows/s, and text-back p50/p95/max before the import
(5 s of calls alone) and during it, on SQLite and on PostgreSQL (a fresh database next to
``--pg-url``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
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
from ringback.fakes.twilio import BackgroundServer, FakeTwilio, FakeTwilioServer
from ringback.runtime import build_runtime
from ringback.schema import upgrade

ROOT = Path(__file__).resolve().parents[1]
DEMO_LOCATIONS = Path(ringback.__file__).parent / "demo" / "locations.yaml"
CLINIC = "+13105550100"
PUBLIC_URL = "http://ringback.bench"
ACCOUNT_SID = "AC" + "d4" * 16
AUTH_TOKEN = "bench-auth-token-" + "9b" * 8
OPEN_HOURS = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
DIAL_RESULT = {
    k: v
    for k, v in json.loads(
        (ROOT / "tests" / "fixtures" / "twilio" / "dial_result_no_answer.json").read_text()
    ).items()
    if not k.startswith("_")
}
BASELINE_SECONDS = 5.0


class Clock:
    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return OPEN_HOURS + timedelta(seconds=time.monotonic() - self._t0)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write("first_name,last_name,phone,external_id\n")
        for i in range(rows):
            # Numbers in LA area codes the callers below never use (818, 626).
            area = "818" if i % 2 else "626"
            out.write(f"Pat{i},Imported,+1{area}{2000000 + i // 2:07d},EXT{i}\n")


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(
    label: str, database_url: str, csv_path: Path, rows: int, rate: float, workdir: Path
) -> dict[str, Any]:
    state = FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    run_dir = workdir / uuid.uuid4().hex[:8]
    validator = RequestValidator(AUTH_TOKEN)
    path = "/twilio/voice/dial-result"
    sent_at: dict[str, tuple[float, str]] = {}  # caller -> (when, phase)
    with FakeTwilioServer(state) as twilio:
        settings = Settings(
            RINGBACK_DATABASE_URL=database_url,
            RINGBACK_QUEUE_URL=f"sqlite:///{run_dir / 'queue.db'}",
            RINGBACK_DATA_DIR=run_dir,
            RINGBACK_CONFIG=DEMO_LOCATIONS,
            RINGBACK_PUBLIC_URL=PUBLIC_URL,
            RINGBACK_WORKERS=4,
            RINGBACK_SEND_TIMEOUT=5,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_API_BASE_URL=twilio.url,
            TWILIO_LOOKUP_BASE_URL=twilio.url,
        )
        runtime = build_runtime(settings, load_locations(DEMO_LOCATIONS), clock=Clock())
        app = create_app(runtime, run_worker=True, run_sweeper=True)
        phase = "alone"
        with BackgroundServer(app) as server, httpx.Client(timeout=15) as http:
            stop = threading.Event()

            def call(index: int) -> None:
                caller = f"+1213{5550000 + index:07d}"
                params = {
                    **DIAL_RESULT,
                    "AccountSid": ACCOUNT_SID,
                    "CallSid": "CA" + uuid.uuid4().hex,
                    "From": caller,
                    "Caller": caller,
                    "To": CLINIC,
                }
                signature = validator.compute_signature(PUBLIC_URL + path, params)
                sent_at[caller] = (time.monotonic(), phase)
                with suppress(httpx.HTTPError):
                    http.post(
                        server.url + path, data=params, headers={"X-Twilio-Signature": signature}
                    )

            def load() -> None:
                with ThreadPoolExecutor(32) as pool:
                    started = time.monotonic()
                    index = 0
                    while not stop.is_set():
                        time.sleep(max(0.0, started + index / rate - time.monotonic()))
                        pool.submit(call, index)
                        index += 1

            sender = threading.Thread(target=load)
            sender.start()
            time.sleep(BASELINE_SECONDS)
            phase = "import"
            env = {
                **os.environ,
                "RINGBACK_DATABASE_URL": database_url,
                "RINGBACK_CONFIG": str(DEMO_LOCATIONS),
                "RINGBACK_LOG_LEVEL": "WARNING",
                "PYTHONPATH": os.pathsep.join(sys.path),
            }
            began = time.monotonic()
            result = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "ringback.cli",
                    "patients",
                    "import",
                    str(csv_path),
                    "--location",
                    "glow-downtown",
                ],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            seconds = time.monotonic() - began
            phase = "after"
            stop.set()
            sender.join()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                texted = {m.to for m in state.messages}
                if all(c in texted for c in sent_at):
                    break
                time.sleep(0.1)
        runtime.close()
    first: dict[str, float] = {}
    for message in state.messages:
        first.setdefault(message.to, message.received_monotonic)
    latencies: dict[str, list[float]] = {"alone": [], "import": []}
    lost = 0
    for caller, (at, when) in sent_at.items():
        if caller not in first:
            lost += 1
        elif when in latencies:
            latencies[when].append((first[caller] - at) * 1000)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    if result.returncode != 0:
        summary = f"exit {result.returncode}: {result.stderr.strip()[-300:]}"
    return {
        "label": label,
        "rows": rows,
        "seconds": seconds,
        "summary": summary,
        "latencies": latencies,
        "lost": lost,
        "calls": len(sent_at),
    }


@contextmanager
def postgres_database(pg_url: str) -> Iterator[str]:
    name = f"ringback_import_{uuid.uuid4().hex[:8]}"
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


def main() -> None:
    for name in ("ringback", "huey", "uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=800_000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--only", choices=("postgres", "sqlite"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rb-import-") as workdir:
        csv_path = Path(workdir) / "patients.csv"
        write_csv(csv_path, args.rows)
        size = csv_path.stat().st_size / 1e6
        print(f"{args.rows} rows, {size:.0f} MB; webhooks at {args.rate:.0f}/s")
        if args.only != "postgres":
            database = Path(workdir) / "ringback.db"
            engine = make_engine(f"sqlite:///{database}")
            upgrade(engine)
            engine.dispose()
            results.append(
                run(
                    "SQLite", f"sqlite:///{database}", csv_path, args.rows, args.rate, Path(workdir)
                )
            )
        if args.only != "sqlite":
            with postgres_database(args.pg_url) as url:
                results.append(
                    run("PostgreSQL", url, csv_path, args.rows, args.rate, Path(workdir))
                )
    print(
        f"{'database':<12}{'rows':>8}{'import s':>10}{'rows/s':>9}"
        f"{'calls':>7}{'lost':>6}  text-back ms p50/p95/max: alone | during import"
    )
    for r in results:
        alone, during = r["latencies"]["alone"], r["latencies"]["import"]

        def figures(values: list[float]) -> str:
            if not values:
                return "-"
            return (
                f"{statistics.median(values):.0f}/{percentile(values, 0.95):.0f}/"
                f"{max(values):.0f} (n={len(values)})"
            )

        print(
            f"{r['label']:<12}{r['rows']:>8}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>9.0f}"
            f"{r['calls']:>7}{r['lost']:>6}  {figures(alone)} | {figures(during)}"
        )
        print(f"{'':<12}import: {r['summary']}")


if __name__ == "__main__":
    main()
