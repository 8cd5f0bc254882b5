"""The job queue: huey on SQLite (embedded) or Redis, with enqueue-after-commit.

``RINGBACK_QUEUE_URL`` picks the backend: ``redis://host:port/db`` for production (workers
run as separate ``ringback worker`` processes and wake on BRPOP), or ``sqlite:///path``
(the embedded default, consumed by threads inside ``ringback serve``).
"""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer, Worker
from huey.storage import SqliteStorage

log = logging.getLogger(__name__)

# Embedded polling: a worker that finds the queue empty sleeps this long before looking
# again. Work enqueued by this process rings the doorbell and wakes a worker at once, so
# polling only catches scheduled jobs coming due and jobs queued by other processes.
POLL_SECONDS = 0.1


class _EmbeddedQueueStorage(SqliteStorage):  # type: ignore[misc]
    """huey's SQLite storage with synchronous=NORMAL (WAL): no fsync on every enqueue.

    huey serialises every queue operation through one connection, so an fsync per commit
    caps throughput. NORMAL in WAL mode survives a crash of the process; a power cut may
    lose the last jobs, which the sweep re-drives from the database (the events, outbox
    rows and timers there are the source of truth, not the queue).
    """

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class EmbeddedQueue(SqliteHuey):  # type: ignore[misc]
    storage_class = _EmbeddedQueueStorage


class Doorbell:
    """Wakes one sleeping embedded worker per job enqueued in this process.

    Polling SQLite every few milliseconds from every worker thread costs a core at load
    (each poll is a write transaction, and every wake-up fights for the GIL); a semaphore
    costs nothing while idle and wakes a worker the moment there is work.
    """

    def __init__(self) -> None:
        self._pending = threading.Semaphore(0)

    def ring(self) -> None:
        self._pending.release()

    def wait(self, timeout: float) -> None:
        self._pending.acquire(timeout=timeout)


def doorbell(huey: Huey) -> Doorbell | None:
    bell = getattr(huey, "ringback_doorbell", None)
    return bell if isinstance(bell, Doorbell) else None


class _DoorbellWorker(Worker):  # type: ignore[misc]
    def sleep(self) -> None:
        bell = doorbell(self.huey)
        if bell is None or self.stop_flag.is_set():
            super().sleep()
            return
        bell.wait(min(self.delay, self.max_delay))


class QueueUrlError(ValueError):
    pass


def build_huey(url: str, name: str = "ringback") -> Huey:
    """Create the huey instance for ``url``; results are not stored (jobs write the DB)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False, blocking=True, read_timeout=1, utc=True)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        huey = EmbeddedQueue(name, filename=str(path), results=False, utc=True, timeout=30)
        huey.ringback_doorbell = Doorbell()
        return huey
    raise QueueUrlError(
        f"RINGBACK_QUEUE_URL: expected redis://host:port/db or sqlite:///path, got {url!r}"
    )


def is_embedded(huey: Huey) -> bool:
    return isinstance(huey, SqliteHuey)


def ping(huey: Huey) -> None:
    """Raise if the queue's storage does not answer."""
    storage: Any = huey.storage
    if isinstance(huey, RedisHuey):
        storage.conn.ping()
    else:
        storage.queue_size()


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A huey consumer that runs inside another program (the web server, a test).

    It leaves signal handling to its host: the host calls :meth:`stop`. Its workers sleep
    on the queue's :class:`Doorbell` instead of polling fast.
    """

    worker_class = _DoorbellWorker

    def _set_signal_handlers(self) -> None:
        pass


def freeze_startup_heap() -> None:
    """Keep what start-up built (modules, settings, engine: it lives as long as the process)
    out of the collector's full passes, and collect young objects less often, so a busy
    minute is not punctuated by long stop-the-world collections. ``ringback serve`` does
    the same in its lifespan."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def make_consumer(huey: Huey, workers: int, *, embedded: bool, periodic: bool = True) -> Consumer:
    """A consumer with ``workers`` worker threads. Not ``embedded``, it is about to become
    the process's main loop (``ringback worker``), so start-up is over: its heap is frozen."""
    if not embedded:
        freeze_startup_heap()
    cls = EmbeddedConsumer if embedded else Consumer
    return cls(
        huey,
        workers=workers,
        periodic=periodic,
        initial_delay=POLL_SECONDS,
        backoff=1.0,
        max_delay=POLL_SECONDS,
        worker_type="thread",
        check_worker_health=not embedded,
    )
