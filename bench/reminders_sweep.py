"""Time the reminder sweep's queries among 1,000,000 appointments.

Run from the repository root::

    .venv/bin/python bench/reminders_sweep.py
    .venv/bin/python bench/reminders_sweep.py --backends sqlite postgres --appointments 1000000

For each backend it makes a fresh database (a SQLite file in a temporary folder; a new
PostgreSQL database next to the one ``--pg-url`` names, dropped at the end), runs the
migrations, and writes a year of appointments at 50 locations (300 days past, 65 ahead),
each with its two reminder rows (48 h and 2 h before): past ones sent or skipped, future
ones pending, a few just due. Then it times what every sweep runs, on a fresh session
each time, with the clock moving a little each run:

* **due**: ``ringback.conversation.reminders.due``, the pending reminders whose time has
  come (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), using the index on (status, due_at);
* **plan**: the booked appointments whose reminders are not written yet (a partial index
  holds only those), as :func:`ringback.conversation.reminders.plan` selects them.

Target: under 100 ms. Prints p50 and p99 per query and backend; exits 0 either way (a
measurement), 2 when it could not be set up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from ringback.conversation import reminders
from ringback.db import make_engine, make_sessionmaker
from ringback.models import Appointment, AppointmentReminder, Patient
from ringback.schema import upgrade

NOW = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
LOCATIONS = 50
PATIENTS = 40_000
CHUNK = 20_000
TARGET_MS = 100.0


def seed(engine: sa.Engine, count: int, rng: random.Random) -> None:
    patients = [
        {
            "id": n + 1,
            "location_id": f"loc-{n % LOCATIONS:02d}",
            "phone": f"+1213{n:07d}",
            "status": "returning",
            "created_at": NOW - timedelta(days=400),
            "updated_at": NOW - timedelta(days=400),
        }
        for n in range(PATIENTS)
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(Patient), patients)
    made = 0
    while made < count:
        size = min(CHUNK, count - made)
        appointments, rows = [], []
        for n in range(made, made + size):
            patient = n % PATIENTS + 1
            start = NOW + timedelta(minutes=rng.randrange(-300 * 24 * 60, 65 * 24 * 60))
            start = start.replace(second=0, microsecond=0)
            status = "cancelled" if rng.random() < 0.08 else "booked"
            appointments.append(
                {
                    "id": n + 1,
                    "location_id": f"loc-{(patient - 1) % LOCATIONS:02d}",
                    "patient_id": patient,
                    "service": "Botox",
                    "starts_at": start,
                    "ends_at": start + timedelta(minutes=30),
                    "status": status,
                    "source": "bot",
                    "created_at": start - timedelta(days=7),
                    "reminders_planned_at": start - timedelta(days=7),
                }
            )
            for offset in (2880, 120):
                due = start - timedelta(minutes=offset)
                past = due <= NOW - timedelta(minutes=10)
                rows.append(
                    {
                        "appointment_id": n + 1,
                        "location_id": f"loc-{(patient - 1) % LOCATIONS:02d}",
                        "patient_id": patient,
                        "offset_minutes": offset,
                        "due_at": due,
                        "status": ("sent" if status == "booked" else "skipped")
                        if past
                        else "pending",
                        "created_at": start - timedelta(days=7),
                        "settled_at": due if past else None,
                    }
                )
        with engine.begin() as conn:
            conn.execute(sa.insert(Appointment), appointments)
            conn.execute(sa.insert(AppointmentReminder), rows)
        made += size
        print(f"  {made:,} appointments", end="\r", file=sys.stderr)
    print(file=sys.stderr)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def run(url: str, count: int, runs: int, label: str) -> dict[str, tuple[float, float]]:
    engine = make_engine(url)
    upgrade(engine)
    rng = random.Random(7)
    started = time.monotonic()
    seed(engine, count, rng)
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    print(f"{label}: seeded {count:,} appointments in {time.monotonic() - started:.0f} s")
    sessions = make_sessionmaker(engine)
    timings: dict[str, list[float]] = {"due": [], "plan": []}
    found = 0
    for n in range(runs):
        now = NOW + timedelta(seconds=5 * n)
        with sessions() as session:
            t0 = time.perf_counter()
            found += len(reminders.due(session, now))
            timings["due"].append((time.perf_counter() - t0) * 1000)
            session.rollback()
        with sessions() as session:
            t0 = time.perf_counter()
            session.scalars(
                sa.select(Appointment.id)
                .where(reminders._UNPLANNED)
                .order_by(Appointment.starts_at)
                .limit(reminders.PLAN_BATCH)
            ).all()
            timings["plan"].append((time.perf_counter() - t0) * 1000)
    engine.dispose()
    figures = {name: _percentiles(samples) for name, samples in timings.items()}
    for name, (p50, p99) in figures.items():
        verdict = "ok" if p99 < TARGET_MS else "OVER TARGET"
        print(f"{label}: {name:<4} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  ({runs} runs, {verdict})")
    print(f"{label}: due reminders found per sweep, on average: {found / runs:.1f}")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--appointments", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                run(f"sqlite:///{Path(tmp) / 'bench.db'}", args.appointments, args.runs, "sqlite")
        elif backend == "postgres":
            name = f"ringback_bench_{uuid.uuid4().hex[:8]}"
            try:
                admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            except sa.exc.OperationalError as exc:
                print(f"cannot reach PostgreSQL at {args.pg_url}: {exc}", file=sys.stderr)
                return 2
            try:
                url = args.pg_url.rsplit("/", 1)[0] + f"/{name}"
                run(url, args.appointments, args.runs, "postgres")
            finally:
                with admin.connect() as conn:
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
        else:
            print(f"unknown backend {backend!r}: expected sqlite or postgres", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
