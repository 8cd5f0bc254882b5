"""Engine, sessions and the declarative base. Only the edge (a request or a job) commits."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    DateTime,
    MetaData,
    TextClause,
    TypeDecorator,
    bindparam,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool

from ringback.logs import log_event

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


SQLITE_BUSY_TIMEOUT_SECONDS = 30


def _sqlite_pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return pragmas


class WriterQueue:
    """This process's writers to one SQLite file, served first come, first served.

    SQLite lets one write transaction run at a time, and a writer that finds the lock
    taken sleeps in its busy handler (1, 2, 5 ... 100 ms) and tries again: a late
    arrival can win while an early one sleeps, and the lock sits free while everyone
    sleeps. Under load that made the tail of the text-back latency seconds long. Here a
    writer waits its turn in line and is woken the moment the one before it ends.
    Other processes still meet SQLite's busy timeout.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._line: deque[threading.Lock] = deque()
        self._held = False
        self._owner: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait for this thread's turn; False if it did not come within ``timeout`` s."""
        with self._mutex:
            if not self._held:
                self._held, self._owner = True, threading.get_ident()
                return True
            if self._owner == threading.get_ident():
                # One thread, two write transactions: waiting for itself would never end.
                return False
            baton = threading.Lock()
            baton.acquire()
            self._line.append(baton)
        got = baton.acquire(timeout=timeout)
        with self._mutex:
            if not got:
                try:
                    self._line.remove(baton)
                except ValueError:
                    got = True  # handed over just as the wait ran out
                else:
                    return False
            self._owner = threading.get_ident()
        return True

    def release(self) -> None:
        """End this turn: hand it to the next writer in line, if any."""
        with self._mutex:
            self._owner = None
            if self._line:
                self._line.popleft().release()  # still held: it passes straight on
            else:
                self._held = False


_writer_queues: dict[str, WriterQueue] = {}
_writer_queues_mutex = threading.Lock()


def _reset_writer_queues_after_fork() -> None:
    # A forked worker process starts with none of its parent's transactions, so with no
    # turns taken (a lock copied while held would never be released in the child).
    global _writer_queues_mutex
    _writer_queues_mutex = threading.Lock()
    for queue in _writer_queues.values():
        queue._reset()


os.register_at_fork(after_in_child=_reset_writer_queues_after_fork)


def writer_queue(path: str) -> WriterQueue:
    """The one queue of this process's writers to the SQLite file at ``path``."""
    key = os.path.realpath(path)
    with _writer_queues_mutex:
        queue = _writer_queues.get(key)
        if queue is None:
            queue = _writer_queues[key] = WriterQueue()
        return queue


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection that holds its :class:`WriterQueue` turn while its write
    transaction is open, and gives it up the moment that transaction ends."""

    writer_queue: WriterQueue | None = None
    busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS
    _turn: WriterQueue | None = None

    def begin_immediate(self) -> None:
        queue = self.writer_queue
        if queue is not None and self._turn is None:
            started = time.monotonic()
            if queue.acquire(self.busy_timeout):
                self._turn = queue
            else:  # leave it to SQLite's busy timeout, which raises "database is locked"
                waited = round(time.monotonic() - started, 3)
                log_event(log, "db.writer_queue_bypassed", logging.WARNING, waited_s=waited)
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._end_turn()
            raise

    def _end_turn(self) -> None:
        turn = self._turn
        if turn is not None and not self.in_transaction:
            self._turn = None
            turn.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            turn, self._turn = self._turn, None
            if turn is not None:
                turn.release()


def _sqlite_begin_immediate(conn: Any) -> None:
    # Take the write lock at BEGIN so two writers queue instead of one failing with
    # "database is locked" when it upgrades a read transaction; in this process they
    # queue in order of arrival (WriterQueue), other processes on busy_timeout.
    dbapi_connection = conn.connection.dbapi_connection
    if isinstance(dbapi_connection, QueuedWriterConnection):
        dbapi_connection.begin_immediate()
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    busy_timeout: float = SQLITE_BUSY_TIMEOUT_SECONDS,
    bounded: float | None = None,
) -> Engine:
    """Create the engine for ``url`` (SQLite file or PostgreSQL via psycopg).

    Statement parameters are hidden from error messages: they hold message bodies and
    phone numbers, and errors end up in logs. ``bounded`` (seconds) makes every wait
    short: SQLite's busy timeout and this process's writer line, PostgreSQL's connect,
    statement and lock timeouts, and the wait for a pooled connection (the webhook
    spool's engine: an event that cannot be stored that fast is spooled).
    """
    if bounded is not None:
        busy_timeout = bounded
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A file named plainly (not in memory, not a ``file:`` URI) gets a writer queue.
        queued = path not in ("", ":memory:") and not path.startswith("file:")
        connect_args: dict[str, Any] = {
            "check_same_thread": False,
            "timeout": busy_timeout,
            "isolation_level": None,
        }
        if queued:
            connect_args["factory"] = QueuedWriterConnection
        engine = create_engine(
            url,
            connect_args=connect_args,
            poolclass=NullPool if path in ("", ":memory:") else None,
            hide_parameters=True,
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout))
        if queued:
            queue = writer_queue(path)

            def _join_writer_queue(dbapi_connection: Any, _record: Any) -> None:
                dbapi_connection.writer_queue = queue
                dbapi_connection.busy_timeout = busy_timeout

            event.listen(engine, "connect", _join_writer_queue)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    if bounded is not None:
        milliseconds = max(int(bounded * 1000), 1)
        return create_engine(
            url,
            pool_size=pool_size,
            max_overflow=20,
            pool_pre_ping=True,
            hide_parameters=True,
            pool_timeout=bounded,
            connect_args={
                # libpq counts whole seconds (and takes less than 2 as 2).
                "connect_timeout": max(math.ceil(bounded), 2),
                "options": f"-c statement_timeout={milliseconds} -c lock_timeout={milliseconds}",
            },
        )
    return create_engine(
        url, pool_size=pool_size, max_overflow=20, pool_pre_ping=True, hide_parameters=True
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


AfterCommit = Callable[[], None]


def after_commit(session: Session, action: AfterCommit) -> None:
    """Run ``action`` once the session's transaction commits; drop it on rollback.

    This is how jobs are enqueued: a job must never see rows its caller failed to commit.
    """
    session.info.setdefault("after_commit", []).append(action)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    # The transaction is committed: what it stored is the truth whatever happens next. An
    # action that fails (the queue is down) is logged and the rest still run; the caller
    # (a webhook answering Twilio) carries on, and the sweep re-drives the stored work.
    # A savepoint's commit (begin_nested) fires this event too, but nothing is committed
    # yet and the outer transaction still holds SQLite's write lock: the work waits for
    # the outermost commit (a job run inline here would wait on that lock, or see rows
    # that are rolled back later).
    if session.in_nested_transaction():
        return
    actions: list[AfterCommit] = session.info.pop("after_commit", [])
    for action in actions:
        try:
            action()
        except Exception as exc:
            log_event(
                log,
                "after_commit.failed",
                logging.WARNING,
                job=getattr(exc, "job", None),
                error=type(getattr(exc, "__cause__", None) or exc).__name__,
            )


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction: Any) -> None:
    # Only the outermost transaction's rollback drops the work: a savepoint rolled back
    # (an insert race caught with begin_nested) leaves the rest of the transaction intact.
    if previous_transaction.parent is None:
        session.info.pop("after_commit", None)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The edge's unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def upsert_insert(dialect: str, table: Any) -> Any:
    """An INSERT for ``table`` that takes ON CONFLICT clauses (PostgreSQL's or SQLite's)."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (pg_insert if dialect == "postgresql" else sqlite_insert)(table)


def insert_ignore(
    session: Session, model: type[Base], values: dict[str, Any], conflict: list[str]
) -> int | None:
    """Insert a row unless one with the same ``conflict`` columns exists.

    Returns the new row's id, or None when it already existed. Safe under concurrency:
    the database, not a prior SELECT, decides.
    """
    table: Any = model.__table__
    stmt = (
        upsert_insert(session.get_bind().dialect.name, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=conflict)
        .returning(table.c.id)
    )
    result = session.execute(stmt).scalar_one_or_none()
    return int(result) if result is not None else None


ModelT = TypeVar("ModelT", bound=Base)

# Built once per call site (model, columns, conflict target, dialect) and reused: building
# an ORM INSERT and its cache key afresh cost more than running it.
_insert_statements: dict[tuple[Any, ...], Any] = {}


def insert_returning(
    session: Session,
    model: type[ModelT],
    values: dict[str, Any],
    conflict: list[str],
    *,
    conflict_where: ColumnElement[bool] | TextClause | None = None,
) -> ModelT | None:
    """Insert a row unless one with the same ``conflict`` columns exists (in the unique
    index they name, partial when ``conflict_where`` is given), and return it loaded.

    The new row comes back as an object in the session from the one statement, with its
    defaults filled in; None when the row already existed (the caller selects it). Safe
    under concurrency like :func:`insert_ignore`. Pending changes in the session are
    flushed first unless autoflush is off.
    """
    dialect = session.get_bind().dialect.name
    where_key = None if conflict_where is None else str(conflict_where)
    key = (model, dialect, tuple(values), tuple(conflict), where_key)
    statement = _insert_statements.get(key)
    if statement is None:
        table: Any = model.__table__
        core = (
            upsert_insert(dialect, table)
            .values({table.c[name]: bindparam(name) for name in values})
            .on_conflict_do_nothing(index_elements=conflict, index_where=conflict_where)
            .returning(*table.c)
        )
        statement = _insert_statements[key] = select(model).from_statement(core)
    return session.scalars(statement, values).one_or_none()


_local_singletons: dict[str, threading.Lock] = {}


@contextmanager
def single_flight(engine: Engine, name: str) -> Iterator[bool]:
    """Hold the cluster-wide lock ``name`` for the block if nobody holds it; yields whether
    this caller got it (it never waits).

    PostgreSQL: a session advisory lock on a connection of its own, so it spans the
    caller's many transactions and goes with the connection if the process dies. A SQLite
    file: an ``flock`` on a file beside it (every process using the database is on this
    host), also released by the kernel when the process dies. An in-memory database lives
    in one process: a lock in this process does.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            got = bool(
                connection.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
            )
            try:
                yield got
            finally:
                if got:
                    connection.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
        return
    path = engine.url.database or ""
    if path in ("", ":memory:") or path.startswith("file:"):
        with _writer_queues_mutex:
            lock = _local_singletons.setdefault(name, threading.Lock())
        got = lock.acquire(blocking=False)
        try:
            yield got
        finally:
            if got:
                lock.release()
        return
    lock_path = f"{path}.{name}.lock"
    with open(lock_path, "a+b") as lock_file:
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = True
        except BlockingIOError:
            got = False
        try:
            yield got
        finally:
            if got:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
