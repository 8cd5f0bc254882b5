"""The in-process writer queue for SQLite: first come, first served, and always released."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ringback.db import QueuedWriterConnection, WriterQueue, make_engine, writer_queue


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.001)


def waiting(queue: WriterQueue) -> int:
    return len(queue._line)


def test_writers_get_their_turn_in_the_order_they_asked() -> None:
    queue = WriterQueue()
    assert queue.acquire(timeout=1)
    order: list[int] = []

    def writer(index: int) -> None:
        assert queue.acquire(timeout=5)
        order.append(index)
        queue.release()

    threads = []
    for index in range(8):
        thread = threading.Thread(target=writer, args=(index,))
        thread.start()
        threads.append(thread)
        in_line = index + 1
        wait_until(lambda: waiting(queue) == in_line)  # noqa: B023 (used at once)
    queue.release()
    for thread in threads:
        thread.join(timeout=5)
    assert order == list(range(8))


def test_a_writer_that_gives_up_leaves_the_line_and_the_rest_go_on() -> None:
    queue = WriterQueue()
    assert queue.acquire(timeout=1)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(queue.acquire(timeout=0.05)))
    thread.start()
    thread.join(timeout=5)
    assert results == [False]
    assert waiting(queue) == 0
    queue.release()
    assert queue.acquire(timeout=0.1)  # free again: nobody is left holding it
    queue.release()


def test_the_holder_asking_again_is_told_no_at_once_instead_of_waiting_for_itself() -> None:
    queue = WriterQueue()
    assert queue.acquire(timeout=1)
    started = time.monotonic()
    assert not queue.acquire(timeout=5)
    assert time.monotonic() - started < 1
    queue.release()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        connection.execute(sa.text("INSERT INTO counter VALUES (0)"))
    yield engine
    engine.dispose()


def test_one_queue_per_database_file(tmp_path: Path, engine: Engine) -> None:
    path = str(tmp_path / "writers.db")
    assert writer_queue(path) is writer_queue(str(tmp_path / "." / "writers.db"))
    assert writer_queue(path) is not writer_queue(str(tmp_path / "other.db"))
    with engine.connect() as connection:
        dbapi_connection = connection.connection.dbapi_connection
        assert isinstance(dbapi_connection, QueuedWriterConnection)
        assert dbapi_connection.writer_queue is writer_queue(path)


def test_concurrent_write_transactions_all_commit_and_leave_the_queue_free(
    tmp_path: Path, engine: Engine
) -> None:
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(25):
                with engine.begin() as connection:
                    n = connection.execute(sa.text("SELECT n FROM counter")).scalar_one()
                    connection.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with engine.connect() as connection:
        # Read-modify-write without a lost update: each transaction held the write lock.
        assert connection.execute(sa.text("SELECT n FROM counter")).scalar_one() == 200
    queue = writer_queue(str(tmp_path / "writers.db"))
    assert queue.acquire(timeout=0.1)
    queue.release()


def test_the_turn_ends_on_rollback_and_on_close(tmp_path: Path, engine: Engine) -> None:
    queue = writer_queue(str(tmp_path / "writers.db"))

    def fail_midway() -> None:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE counter SET n = 1"))
            raise RuntimeError("roll back")

    with pytest.raises(RuntimeError):
        fail_midway()
    assert queue.acquire(timeout=0.1)
    queue.release()

    connection = engine.connect()
    connection.execute(sa.text("UPDATE counter SET n = 2"))  # a transaction left open
    connection.close()
    assert queue.acquire(timeout=0.1)
    queue.release()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT n FROM counter")).scalar_one() == 0


def test_a_writer_waits_in_line_rather_than_in_sqlites_busy_handler(
    tmp_path: Path, engine: Engine
) -> None:
    queue = writer_queue(str(tmp_path / "writers.db"))
    holder = engine.connect()
    holder.execute(sa.text("UPDATE counter SET n = 5"))
    done = threading.Event()

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE counter SET n = n + 1"))
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    wait_until(lambda: waiting(queue) == 1)
    assert not done.is_set()
    holder.commit()  # hands the turn straight on
    assert done.wait(timeout=5)
    thread.join(timeout=5)
    holder.close()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT n FROM counter")).scalar_one() == 6
