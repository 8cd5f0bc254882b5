"""Recovery report and dashboard speed on a year of 1,000,000 missed calls at 50 locations.

Run from the repository root::

    .venv/bin/python bench/funnel_report.py
    .venv/bin/python bench/funnel_report.py --calls 100000 --backends sqlite --runs 10

For each backend it makes a fresh database (a new SQLite file in a temporary folder; a new
PostgreSQL database next to the one ``--pg-url`` names, dropped at the end), runs the
migrations, seeds the history with ``ringback seed-demo-data``'s code (50 made-up
locations in six US time zones, written to a locations file here), and then times, on a
fresh engine:

* ``report``: what ``ringback report`` and ``/api/v1/funnel`` compute (bring the rollups up
  to date, sum them, price the bookings, word the diagnosis), for all locations over the
  year, for one location over the year, and for all locations over the last 30 days;
* ``report after a change``: the same right after a day of every location was marked
  changed (50 days recomputed from the rows first, as after a busy minute of webhooks);
* ``dashboard page``: a signed-in ``GET /staff/dashboard`` through the real app (figures,
  charts and template), for all locations over the year.

Each is run ``--runs`` times; the first run on the fresh engine is shown as "cold" (the
database's files may still be in the OS cache from seeding: this is a cold connection and
cold database caches, not a cold disk). p50 and p99 are over the warm runs. Targets: 0.5 s
on PostgreSQL, 2 s on SQLite. Exit status 0 whether or not they are met (a measurement), 2
when the benchmark could not be set up.
"""

from __future__ import annotations

import argparse
import math
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from ringback.app import create_app
from ringback.config import Locations, Settings, load_locations
from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.funnel import queries
from ringback.funnel.report import load_report
from ringback.funnel.seed import seed_history
from ringback.runtime import build_runtime
from ringback.schema import upgrade
from ringback.staff import auth

TARGETS = {"postgres": 0.5, "sqlite": 2.0}
ZONES = (
    ("America/Los_Angeles", "310"),
    ("America/Denver", "303"),
    ("America/Chicago", "312"),
    ("America/New_York", "212"),
    ("America/Phoenix", "602"),
    ("Pacific/Honolulu", "808"),
)
SERVICES = [
    {"name": "Botox", "aliases": ["tox"], "minutes": 30, "price": 480},
    {"name": "Filler", "aliases": ["lip filler"], "minutes": 60, "price": 750},
    {"name": "HydraFacial", "aliases": ["facial"], "minutes": 60, "price": 199},
    {"name": "Laser Hair Removal", "aliases": ["lhr"], "minutes": 45, "price": 250},
    {"name": "Chemical Peel", "aliases": ["peel"], "minutes": 45, "price": 175},
    {"name": "Microneedling", "aliases": ["microneedle"], "minutes": 60, "price": 350},
    {"name": "Consultation", "aliases": ["consult"], "minutes": 30, "price": 0, "consult": True},
]
PASSWORD = "bench password, not a secret"


def write_locations(path: Path, count: int) -> Locations:
    """``count`` made-up locations spread over six US time zones."""
    entries = []
    for i in range(count):
        zone, area = ZONES[i % len(ZONES)]
        n = i // len(ZONES)
        entries.append(
            {
                "id": f"spa-{i + 1:02d}",
                "name": f"Bench Spa {i + 1:02d}",
                "phone_number": f"+1{area}55501{2 * n:02d}",
                "front_desk": [f"+1{area}55501{2 * n + 1:02d}"],
                "timezone": zone,
                "hours": {
                    **dict.fromkeys(("mon", "tue", "wed", "fri"), "09:00-18:00"),
                    "thu": "09:00-20:00",
                    "sat": "10:00-16:00",
                    "sun": "closed",
                },
                "booking_url": "https://spa.example/book",
                "services": SERVICES,
            }
        )
    path.write_text(yaml.safe_dump({"locations": entries}, sort_keys=False))
    return load_locations(path)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, list[float]]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples[0], samples[1:] or samples


def database_size(url: str, engine: sa.Engine) -> str:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        total = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return f"{total / 1e9:.2f} GB"
    with engine.connect() as connection:
        size = connection.execute(sa.text("SELECT pg_database_size(current_database())")).scalar()
    return f"{int(size or 0) / 1e9:.2f} GB"


def sign_in(client: TestClient, email: str) -> None:
    page = client.get("/staff/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, "no sign-in form"
    response = client.post(
        "/staff/login",
        data={"email": email, "password": PASSWORD, "csrf_token": match.group(1)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text


def bench_backend(
    name: str, url: str, locations: Locations, config: Path, args: argparse.Namespace, tmp: Path
) -> list[tuple[str, float, float, float]]:
    print(f"\n== {name} ==", flush=True)
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    last_day = date(2026, 11, 23)
    started = time.perf_counter()
    summary = seed_history(
        sessions, list(locations), calls=args.calls, days=args.days, seed=1, end=last_day
    )
    seeded = time.perf_counter() - started
    print(
        f"seeded {summary.calls:,} missed calls, {summary.conversations:,} conversations, "
        f"{summary.messages:,} texts, {summary.patients:,} patients in {seeded:.0f} s "
        f"({summary.calls / seeded:,.0f} calls/s); database {database_size(url, engine)}",
        flush=True,
    )
    with sessions() as session:
        counts = {
            table.name: session.scalar(sa.select(sa.func.count()).select_from(table))
            for table in queries.ROLLUP_TABLES
        }
    print("rollup rows: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)
    engine.dispose()

    # A fresh engine for the timings: nothing cached in this process or connection.
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    year = (last_day - timedelta(days=args.days - 1), last_day)
    month = (last_day - timedelta(days=29), last_day)
    one = [locations.get("spa-01")]
    everywhere = list(locations)
    now = datetime.now(UTC)

    def report(chosen: list[Any], span: tuple[date, date]) -> Callable[[], Any]:
        return lambda: load_report(sessions, locations, chosen, span[0], span[1], now=now)

    day_index = [0]

    def after_change() -> Any:
        # Mark an hour of every location changed, as webhooks would, then report.
        day_index[0] += 1
        evening = datetime.combine(last_day, clock_time(18), tzinfo=UTC)
        changed = evening - timedelta(days=day_index[0])
        with transaction(sessions) as session:
            queries.mark_dirty(session, [(loc.id, changed) for loc in everywhere], now)
        return load_report(sessions, locations, everywhere, year[0], year[1], now=now)

    settings = Settings(
        RINGBACK_DATABASE_URL=url,
        RINGBACK_QUEUE_URL=f"sqlite:///{tmp / f'queue-{name}.db'}",
        RINGBACK_CONFIG=config,
        TWILIO_ACCOUNT_SID="AC" + "0" * 32,
        TWILIO_AUTH_TOKEN=secrets.token_hex(16),
    )
    runtime = build_runtime(settings, locations)
    with transaction(runtime.deps.sessions) as session:
        auth.create_user(
            session,
            email="owner@bench.example",
            name="Owner",
            role="owner",
            password=PASSWORD,
            location_ids=[],
            known_locations={loc.id for loc in locations},
            now=now,
        )
    client = TestClient(create_app(runtime, run_worker=False))
    sign_in(client, "owner@bench.example")
    query = {"since": year[0].isoformat(), "until": year[1].isoformat()}

    def dashboard() -> None:
        response = client.get("/staff/dashboard", params=query)
        assert response.status_code == 200, response.text[:500]

    scenarios: list[tuple[str, Callable[[], Any]]] = [
        (f"report: all {len(everywhere)} locations, {args.days} days", report(everywhere, year)),
        (f"report: one location, {args.days} days", report(one, year)),
        (f"report: all {len(everywhere)} locations, 30 days", report(everywhere, month)),
        (f"report after a change ({len(everywhere)} days recomputed)", after_change),
        (f"dashboard page: all locations, {args.days} days", dashboard),
    ]
    results = []
    target = TARGETS[name]
    print(f"{'':<50}{'cold':>8}{'p50':>8}{'p99':>8}  target {target} s", flush=True)
    for label, fn in scenarios:
        cold, warm = timed(fn, args.runs)
        p50, p99 = statistics.median(warm), percentile(warm, 99)
        verdict = "ok" if max(cold, p99) <= target else "OVER"
        print(f"{label:<50}{cold:>7.3f}s{p50:>7.3f}s{p99:>7.3f}s  {verdict}", flush=True)
        results.append((label, cold, p50, p99))
    client.close()
    runtime.close()
    engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--locations", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per scenario")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server to create the bench database on (it is dropped at the end)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args()
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if not set(backends) <= set(TARGETS):
        print(f"--backends: expected sqlite and/or postgres, got {args.backends!r}")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="ringback-funnel-bench-"))
    config = tmp / "locations.yaml"
    locations = write_locations(config, args.locations)
    print(
        f"{args.calls:,} missed calls over {args.days} days at {args.locations} locations; "
        f"{args.runs} runs per scenario; files in {tmp}"
    )
    for name in backends:
        if name == "sqlite":
            bench_backend(name, f"sqlite:///{tmp / 'bench.db'}", locations, config, args, tmp)
            continue
        database = f"ringback_bench_{secrets.token_hex(4)}"
        admin = sa.create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.execute(sa.text(f'CREATE DATABASE "{database}"'))
        except sa.exc.OperationalError as exc:
            print(f"--pg-url: cannot create a database there: {exc}")
            return 2
        url = args.pg_url.rsplit("/", 1)[0] + "/" + database
        try:
            bench_backend(name, url, locations, config, args, tmp)
        finally:
            if not args.keep:
                with admin.connect() as connection:
                    connection.execute(
                        sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                    )
            admin.dispose()
    if not args.keep:
        for path in sorted(tmp.glob("*")):
            path.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except httpx.HTTPError as exc:
        print(f"bench: {exc}")
        sys.exit(2)
