"""``ringback backup`` / ``ringback restore`` through the command, on the backend under test:
a backup taken while signed webhooks arrive restores into a fresh database, and bad input
changes nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from typer.testing import CliRunner

from ringback.cli.main import app
from ringback.db import Base
from ringback.models import Call, Message
from ringback.schema import head_revision
from tests.conftest import DATABASE, Service, wait_for
from tests.support.cli import ringback
from tests.support.phone import miss, texts_to
from tests.twilio_payloads import caller_number

CALLS = 40


def on(url: str, *args: str) -> Any:
    """``ringback ARGS`` in its own process, on the database at ``url``."""
    return ringback(*args, env={"RINGBACK_DATABASE_URL": url})


def quickly(url: str, *args: str) -> Any:
    """``ringback ARGS`` in this process (the same command, without a Python start-up)."""
    result = CliRunner().invoke(app, list(args), env={"RINGBACK_DATABASE_URL": url})
    result.returncode = result.exit_code
    return result


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every Ringback table, in primary-key order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table.name: [
                    tuple(row)
                    for row in connection.execute(
                        sa.select(table).order_by(*table.primary_key.columns)
                    )
                ]
                for table in Base.metadata.sorted_tables
            }
    finally:
        engine.dispose()


def revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.scalar(sa.text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()


def test_a_backup_taken_while_webhooks_arrive_restores_into_a_fresh_database(
    service: Service, fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    source = service.runtime.settings.resolved_database_url
    callers = [caller_number(100 + i) for i in range(CALLS)]
    answered: list[str] = []
    backed_up = threading.Event()

    def call_in() -> None:
        for index, caller in enumerate(callers):
            if index == CALLS // 4:
                # The backup starts with a quarter answered and runs while the rest arrive.
                backed_up.set()
            miss(service, caller)
            answered.append(caller)

    caller_thread = threading.Thread(target=call_in)
    caller_thread.start()
    backed_up.wait(30)
    before_backup = len(answered)
    first = tmp_path / "during.backup"
    result = on(source, "backup", str(first))
    during_backup = len(answered)
    caller_thread.join(60)
    assert result.returncode == 0, result.stderr
    assert f"to {first}" in result.stdout
    assert before_backup < during_backup  # webhooks were answered while it ran
    for caller in callers:
        wait_for(lambda c=caller: texts_to(service, c), what=f"the text-back to {caller}")

    # The backup is the database as of one moment: the calls answered before it started,
    # perhaps some more, each with what it had then, and a schema at this version's head.
    target = fresh_database()
    restored = on(target, "restore", str(first))
    assert restored.returncode == 0, restored.stderr
    assert revision(target) == head_revision()
    copy = contents(target)
    live = contents(source)
    calls_in_copy = {row[Call.__table__.c.keys().index("call_sid")] for row in copy["calls"]}
    calls_live = {row[Call.__table__.c.keys().index("call_sid")] for row in live["calls"]}
    assert calls_in_copy <= calls_live
    assert before_backup <= len(calls_in_copy)
    live_ids = {row[0] for row in live["provider_events"]}
    assert {row[0] for row in copy["provider_events"]} <= live_ids
    assert {row[0] for row in copy["messages"]} <= {row[0] for row in live["messages"]}

    # A second backup once everything is quiet restores exactly, over the first restore
    # only when forced.
    second = tmp_path / "after.backup"
    assert on(source, "backup", str(second)).returncode == 0
    refused = on(target, "restore", str(second))
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr
    assert "--force" in refused.stderr
    assert contents(target) == copy
    forced = on(target, "restore", str(second), "--force")
    assert forced.returncode == 0, forced.stderr
    assert contents(target) == contents(source)

    # A damaged backup fails before the target is touched, even with --force.
    broken = tmp_path / "broken.backup"
    data = second.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    failed = on(target, "restore", str(broken), "--force")
    assert failed.returncode == 2
    assert "Traceback" not in failed.stderr
    assert contents(target) == contents(source)
    with service.db() as session:
        texts = session.scalar(sa.select(sa.func.count()).select_from(Message))
    assert len(contents(target)["messages"]) == texts >= CALLS


def test_backup_and_restore_refuse_bad_input_and_change_nothing(
    service: Service, fresh_database: Callable[[], str], tmp_path: Path
) -> None:
    source = service.runtime.settings.resolved_database_url
    target = fresh_database()
    good = tmp_path / "good.backup"
    assert quickly(source, "backup", str(good)).returncode == 0

    again = quickly(source, "backup", str(good))
    assert again.returncode == 2
    assert f"{good}: already exists (use --force" in again.stderr
    assert quickly(source, "backup", str(good), "--force").returncode == 0
    nowhere = quickly(source, "backup", str(tmp_path / "missing" / "x.backup"))
    assert nowhere.returncode == 2
    assert "no such directory" in nowhere.stderr

    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    other_kind = tmp_path / "other.backup"
    other_kind.write_bytes(b"PGDMP\x01" if DATABASE == "sqlite" else b"SQLite format 3\x00")
    for path, expected in (
        (tmp_path / "absent.backup", "no such file"),
        (junk, "not a Ringback backup"),
        (other_kind, "restore it into the same kind of database"),
    ):
        result = quickly(target, "restore", str(path))
        assert result.returncode == 2, result.stdout
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
    assert not sa.inspect(sa.create_engine(target)).get_table_names()
    unreachable = (
        f"sqlite:///{junk}/ringback.db"
        if DATABASE == "sqlite"
        else target.rsplit("/", 1)[0] + "/no_such_database_here"
    )
    result = quickly(unreachable, "restore", str(good))
    assert result.returncode == 2
    assert (
        "cannot create the database's folder"
        if DATABASE == "sqlite"
        else "cannot open the database"
    ) in result.stderr

    # A backup from a newer Ringback (a schema revision this one does not know).
    newer_source = fresh_database()
    assert quickly(newer_source, "db", "upgrade").returncode == 0
    engine = sa.create_engine(newer_source)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    newer = tmp_path / "newer.backup"
    assert quickly(newer_source, "backup", str(newer)).returncode == 0
    result = quickly(target, "restore", str(newer))
    assert result.returncode == 2
    assert "made by a newer Ringback (schema revision 9999" in result.stderr
    assert not sa.inspect(sa.create_engine(target)).get_table_names()

    # A backup from an older release comes up at this release's schema.
    older_source = fresh_database()
    assert quickly(older_source, "db", "upgrade", "0005").returncode == 0
    older = tmp_path / "older.backup"
    assert quickly(older_source, "backup", str(older)).returncode == 0
    older_target = fresh_database()
    upgraded = quickly(older_target, "restore", str(older))
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"(schema 0005, now {head_revision()})" in upgraded.stdout
    assert revision(older_target) == head_revision()

    # A migrated but empty database is not "data": restore goes ahead without --force.
    assert quickly(target, "db", "upgrade").returncode == 0
    restored = quickly(target, "restore", str(good))
    assert restored.returncode == 0, restored.stderr
    assert contents(target) == contents(source)
