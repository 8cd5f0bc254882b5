"""How long ``ringback backup`` and ``ringback restore`` take on a seeded history.

Run from the repository root::

    .venv/bin/python bench/backup_restore.py                       # 200,000 calls, both
    .venv/bin/python bench/backup_restore.py --calls 50000 --backends sqlite

For each backend: a fresh database (a SQLite file in a temporary folder; a new PostgreSQL
database next to the one ``--pg-url`` names, dropped at the end), migrated and seeded with
``ringback seed-demo-data``'s code on the demo locations, then backed up, restored into a
second fresh database, and the row counts of every table compared. Prints the seconds,
the backup's size and the database's rows. Exit status 0 when the counts match, 1 when
they do not, 2 when the benchmark could not be set up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import sqlalchemy as sa

from ringback.backup import backup, restore
from ringback.config import load_locations
from ringback.db import Base, make_engine, make_sessionmaker
from ringback.funnel.seed import seed_history
from ringback.schema import upgrade

DEMO = Path(__file__).resolve().parents[1] / "src" / "ringback" / "demo" / "locations.yaml"


def counts(url: str) -> dict[str, int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: int(
                    connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0
                )
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def run(backend: str, calls: int, pg_url: str, folder: Path) -> bool:
    made: list[str] = []
    admin = (
        sa.create_engine(pg_url, isolation_level="AUTOCOMMIT") if backend == "postgres" else None
    )

    def fresh() -> str:
        name = f"ringback_bench_{uuid.uuid4().hex[:8]}"
        if admin is None:
            return f"sqlite:///{folder / name}.db"
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return pg_url.rsplit("/", 1)[0] + "/" + name

    try:
        source, target = fresh(), fresh()
        engine = make_engine(source)
        upgrade(engine)
        started = time.perf_counter()
        summary = seed_history(
            make_sessionmaker(engine),
            list(load_locations(DEMO)),
            calls=calls,
            days=365,
            end=date(2026, 11, 23),
        )
        engine.dispose()
        print(f"{backend}: seeded {summary.calls:,} calls in {time.perf_counter() - started:.0f} s")
        rows = counts(source)
        made_backup = backup(source, folder / f"{backend}.backup")
        restored = restore(target, made_backup.path)
        same = counts(target) == rows
        print(
            f"{backend}: {sum(rows.values()):,} rows; backup {made_backup.seconds:.2f} s, "
            f"{made_backup.size_bytes / 1e6:.1f} MB; restore (with migrations) "
            f"{restored.seconds:.2f} s; row counts {'match' if same else 'DIFFER'}",
            flush=True,
        )
        return same
    finally:
        if admin is not None:
            with admin.connect() as connection:
                for name in made:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="ringback-bench-") as scratch:
        for backend in args.backends:
            try:
                ok = run(backend, args.calls, args.pg_url, Path(scratch)) and ok
            except sa.exc.OperationalError as exc:
                print(f"{backend}: could not set up: {exc}", file=sys.stderr)
                return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
