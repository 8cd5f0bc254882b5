"""What checking the settings' version costs every request and job, and what a reload costs.

Run from the repository root::

    .venv/bin/python bench/settings_version_check.py
    .venv/bin/python bench/settings_version_check.py --backends sqlite postgres --runs 2000

For each backend it makes a fresh database (a SQLite file in a temporary folder; a new
PostgreSQL database next to the one ``--pg-url`` names, dropped at the end), runs the
migrations and stores the demo spa's settings. Then it times
:meth:`ringback.settings.store.SettingsWatcher.refresh` when nothing changed (one
primary-key read: what every request and job pays), and when a change was saved (the
read, loading and validating the document, and swapping it in). Prints p50 and p99;
exits 0 either way (a measurement), 2 when it could not be set up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ringback.config import load_locations
from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.schema import upgrade
from ringback.settings import store

DEMO = Path(__file__).resolve().parents[1] / "src" / "ringback" / "demo" / "locations.yaml"
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


@contextmanager
def database(backend: str, pg_url: str) -> Iterator[Engine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            engine = make_engine(f"sqlite:///{folder}/bench.db")
            try:
                yield engine
            finally:
                engine.dispose()
        return
    name = f"rb_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(pg_url).set(database=name).render_as_string(False))
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}"'))
        admin.dispose()


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms"


def run(backend: str, pg_url: str, runs: int) -> None:
    with database(backend, pg_url) as engine:
        upgrade(engine)
        sessions = make_sessionmaker(engine)
        locations = load_locations(DEMO)
        with transaction(sessions) as session:
            store.replace_all(session, store.document_of(locations), actor="bench", now=NOW)
        watcher = store.SettingsWatcher(engine, load_locations(DEMO))
        watcher.refresh()
        unchanged = []
        for _ in range(runs):
            start = time.perf_counter()
            watcher.refresh()
            unchanged.append(time.perf_counter() - start)
        reloads = []
        for index in range(max(runs // 20, 20)):
            with transaction(sessions) as session:
                stored = store.read(session)
                assert stored is not None
                document = stored.document
                document["locations"][0]["ring_seconds"] = 10 + index % 50
                store.replace_all(session, document, actor="bench", now=NOW)
            start = time.perf_counter()
            assert watcher.refresh()
            reloads.append(time.perf_counter() - start)
        print(f"{backend:8} version check, nothing changed ({runs}): {percentiles(unchanged)}")
        print(f"{backend:8} reload after a change ({len(reloads)}): {percentiles(reloads)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite"], choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    for backend in args.backends:
        try:
            run(backend, args.pg_url, args.runs)
        except sa.exc.OperationalError as exc:
            print(f"{backend}: cannot set up: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
