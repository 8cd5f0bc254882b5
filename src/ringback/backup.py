"""Backing up and restoring the database, while the service runs.

SQLite
    SQLite's online backup API (``sqlite3.Connection.backup``) copies the live file page by
    page inside one read transaction; in WAL mode writers carry on meanwhile, and the copy
    is the database as of one commit. The backup is a plain SQLite file (journal mode
    DELETE, so it stands alone). Restoring copies it back with the same API, which takes
    the target's locks like any writer instead of swapping the file under open
    connections.

PostgreSQL
    ``pg_dump --format=custom`` (one consistent snapshot; the service keeps serving).
    Restoring turns the archive into SQL with ``pg_restore`` and runs it with ``psql`` in
    one transaction together with dropping the target's tables, so a restore that fails
    leaves the target as it was.

Either way ``restore`` refuses a target that holds data unless forced, refuses a backup
made by a newer Ringback (a schema revision this version does not know) before touching
anything, and migrates the restored database to this version's schema. The job queue is
not backed up: its jobs are re-driven from the database by the sweep.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import URL, Engine, make_url

from ringback.db import make_engine
from ringback.schema import alembic_config, upgrade

Kind = Literal["sqlite", "postgresql"]
SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why. Nothing was changed."""


@dataclass(frozen=True)
class BackupResult:
    path: Path
    kind: Kind
    size_bytes: int
    seconds: float
    revision: str | None


@dataclass(frozen=True)
class RestoreResult:
    kind: Kind
    seconds: float
    restored_revision: str | None
    revision: str | None


def backup(database_url: str, destination: Path, *, overwrite: bool = False) -> BackupResult:
    """Copy the database at ``database_url`` to ``destination`` (written whole, then
    renamed into place, so a failed backup never leaves a half file under that name)."""
    url, kind = _parse(database_url)
    if destination.exists() and not overwrite:
        raise BackupError(f"{destination}: already exists (use --force to replace it)")
    if not destination.parent.is_dir():
        raise BackupError(f"{destination.parent}: no such directory")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    started = time.monotonic()
    try:
        if kind == "sqlite":
            _sqlite_backup(_sqlite_path(url), partial)
            revision = _sqlite_revision(partial)
        else:
            _run(["pg_dump", "--format=custom", f"--file={partial}", _conninfo(url)], url)
            revision = _dump_revision(partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return BackupResult(
        path=destination,
        kind=kind,
        size_bytes=destination.stat().st_size,
        seconds=time.monotonic() - started,
        revision=revision,
    )


def restore(database_url: str, source: Path, *, force: bool = False) -> RestoreResult:
    """Replace the database at ``database_url`` with the backup in ``source``, then
    migrate it to this version's schema. Stop the web and worker processes first."""
    url, kind = _parse(database_url)
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    found = backup_kind(source)
    if found is None:
        raise BackupError(
            f"{source}: not a Ringback backup (expected a SQLite file or a pg_dump "
            "custom-format archive)"
        )
    if found != kind:
        raise BackupError(
            f"{source}: a {found} backup, but RINGBACK_DATABASE_URL is a {kind} database "
            "(restore it into the same kind of database it came from)"
        )
    started = time.monotonic()
    revision = _sqlite_revision(source) if kind == "sqlite" else _dump_revision(source)
    _check_known(revision, source)
    if kind == "sqlite":
        folder = _sqlite_path(url).parent
        try:  # a new machine's data folder may not exist yet
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackupError(f"{folder}: cannot create the database's folder ({exc})") from None
    engine = make_engine(database_url)
    try:
        try:
            filled = tables_with_rows(engine)
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0]
            raise BackupError(f"cannot open the database at {_display(url)}: {reason}") from None
        if not force and filled:
            raise BackupError(
                f"the database at {_display(url)} is not empty (rows in "
                f"{', '.join(filled[:5])}{', ...' if len(filled) > 5 else ''}); "
                "use --force to replace it"
            )
        if kind == "sqlite":
            engine.dispose()
            _sqlite_restore(source, _sqlite_path(url))
        else:
            existing = sa.inspect(engine).get_table_names()
            engine.dispose()
            _pg_restore(url, source, drop=existing)
        upgrade(engine)
        with engine.connect() as connection:
            current = connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()
    return RestoreResult(
        kind=kind,
        seconds=time.monotonic() - started,
        restored_revision=revision,
        revision=current,
    )


def backup_kind(path: Path) -> Kind | None:
    """What a backup file holds, from its first bytes."""
    with path.open("rb") as handle:
        head = handle.read(len(SQLITE_MAGIC))
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "postgresql"
    return None


def tables_with_rows(engine: Engine) -> list[str]:
    """The tables (other than Alembic's own) holding at least one row."""
    names = [n for n in sa.inspect(engine).get_table_names() if n != "alembic_version"]
    filled: list[str] = []
    with engine.connect() as connection:
        for name in sorted(names):
            table = sa.table(name)
            if connection.scalar(sa.select(sa.literal(1)).select_from(table).limit(1)):
                filled.append(name)
    return filled


# --- SQLite ----------------------------------------------------------------------------


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError("RINGBACK_DATABASE_URL: an in-memory SQLite database has no backup")
    return Path(url.database)


def _sqlite_backup(path: Path, destination: Path) -> None:
    if not path.is_file():
        raise BackupError(f"{path}: no such database file")
    source = sqlite3.connect(path, timeout=30)
    target = sqlite3.connect(destination)
    try:
        # One step (pages=-1): one read transaction, so the copy is the database as of
        # one commit; in WAL mode writers are not held up while it runs.
        source.backup(target)
        target.execute("PRAGMA journal_mode=DELETE")
        problem = target.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"{path}: the copy failed its integrity check: {problem}")
    finally:
        target.close()
        source.close()


def _sqlite_restore(source: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    target = sqlite3.connect(path, timeout=30)
    try:
        problem = backup_db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise BackupError(f"{source}: the backup failed its integrity check: {problem}")
        backup_db.backup(target)
        target.execute("PRAGMA journal_mode=WAL")
    finally:
        target.close()
        backup_db.close()


def _sqlite_revision(path: Path) -> str | None:
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path}: not a Ringback database ({exc})") from None
    finally:
        connection.close()
    return str(row[0]) if row else None


# --- PostgreSQL ------------------------------------------------------------------------


def _conninfo(url: URL) -> str:
    """A libpq URI without the password (that goes in PGPASSWORD, never on a command line)."""
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)


def _run(command: list[str], url: URL) -> str:
    tool = command[0]
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} not found: install the PostgreSQL client (postgresql-client)")
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()
        raise BackupError(f"{tool} failed: {detail[-1] if detail else result.returncode}")
    return result.stdout


def _dump_revision(path: Path) -> str | None:
    """The schema revision inside a custom-format dump (read without a database)."""
    script = _run(
        ["pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(path)],
        URL.create("postgresql"),
    )
    lines = script.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("COPY ") and "alembic_version" in line and index + 1 < len(lines):
            value = lines[index + 1].strip()
            return None if value == "\\." else value
    return None


def _pg_restore(url: URL, source: Path, *, drop: list[str]) -> None:
    """Replace the target's tables with the dump's, all in one transaction: the dump is
    turned into SQL first (a damaged archive fails here, before the database is touched),
    then psql drops the existing tables (those a newer migration made too) and runs it,
    stopping and rolling back at the first error."""
    with tempfile.TemporaryDirectory(prefix="ringback-restore-") as scratch:
        script = Path(scratch) / "restore.sql"
        _run(
            ["pg_restore", "--no-owner", "--no-privileges", f"--file={script}", str(source)],
            url,
        )
        drops = [f'DROP TABLE IF EXISTS "{name}" CASCADE;' for name in drop]
        _run(
            [
                "psql",
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={_conninfo(url)}",
                *(["--command=" + " ".join(drops)] if drops else []),
                f"--file={script}",
            ],
            url,
        )


# --- both ------------------------------------------------------------------------------


def _parse(database_url: str) -> tuple[URL, Kind]:
    try:
        url = make_url(database_url)
    except sa.exc.ArgumentError:
        raise BackupError(f"RINGBACK_DATABASE_URL: not a database URL: {database_url!r}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return url, "sqlite"
    if backend == "postgresql":
        return url, "postgresql"
    raise BackupError(f"RINGBACK_DATABASE_URL: cannot back up a {backend} database")


def _check_known(revision: str | None, source: Path) -> None:
    if revision is None:
        raise BackupError(f"{source}: holds no schema revision (not a Ringback backup?)")
    try:
        known = ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"{source}: made by a newer Ringback (schema revision {revision} is unknown "
            "here); restore it with that version"
        )


def _display(url: URL) -> str:
    return url.render_as_string(hide_password=True).split("@")[-1]
