"""The job queue: huey on SQLite (embedded) or Redis, with enqueue-after-commit.

``RINGBACK_QUEUE_URL`` picks the backend: ``redis://host:port/db`` for production (workers
run as separate ``ringback worker`` processes and wake on BRPOP), or ``sqlite:///path``
(the embedded default, consumed by threads inside ``ringback serve``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer

log = logging.getLogger(__name__)

# Embedded polling: a worker that finds the queue empty sleeps this long before looking
# again. Short enough for sub-100 ms text-backs, long enough to stay cheap when idle.
POLL_SECONDS = 0.01


class QueueUrlError(ValueError):
    pass


def build_huey(url: str, name: str = "ringback") -> Huey:
    """Create the huey instance for ``url``; results are not stored (jobs write the DB)."""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(name, url=url, results=False, blocking=True, read_timeout=1, utc=True)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(name, filename=str(path), results=False, utc=True, timeout=30)
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

    It leaves signal handling to its host: the host calls :meth:`stop`.
    """

    def _set_signal_handlers(self) -> None:
        pass


def make_consumer(huey: Huey, workers: int, *, embedded: bool, periodic: bool = True) -> Consumer:
    cls = EmbeddedConsumer if embedded else Consumer
    return cls(
        huey,
        workers=workers,
        periodic=periodic,
        initial_delay=POLL_SECONDS,
        backoff=1.0,
        max_delay=POLL_SECONDS if is_embedded(huey) else 1.0,
        worker_type="thread",
        check_worker_health=not embedded,
    )
