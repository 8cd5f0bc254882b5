"""The webhook spool: verified events kept on local disk while the database cannot take them.

A webhook whose event cannot be stored within a short budget (the database refuses, or a
long writer holds SQLite's lock) is appended here and answered as usual; a
:class:`Drainer` in every web process and worker stores it as soon as the database
answers, through :func:`ringback.inbox.events.record`, which ignores an event already
stored (keyed by the provider's id). So storing twice, or storing after a crash between
store and delete, never sends a second text.

On disk: one directory, one *segment* file per process being appended to
(``<token>-<seq>.spool``), each record framed as ``magic, length, crc32, JSON`` and
fsync'd before the webhook is answered. A process holds an ``flock`` on the segment it
appends to; when it has records to drain it *seals* the segment (lets go of it and starts
another) and drains every segment nobody holds: its own sealed ones, and those of
processes that died. A segment is deleted only after all its records are stored. A torn
tail (a crash mid-append) fails its checksum or its length and is skipped; reading
resumes at the next magic, if any.

A process's spool is bounded (``max_bytes``): when full, :class:`SpoolFull` and the
webhook answers 503, the only case a caller is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import json
import logging
import os
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.deps import Deps
from ringback.inbox import events
from ringback.logs import log_event

log = logging.getLogger(__name__)

MAGIC = b"RBSP"
_HEADER = struct.Struct(">4sII")  # magic, payload length, crc32 of the payload
# A record longer than this is not one (a torn length field): webhooks are a few KB.
MAX_RECORD_BYTES = 1 << 20
SUFFIX = ".spool"
# Records stored per transaction while draining.
DRAIN_BATCH = 200


class SpoolFull(Exception):
    """This process's spool holds ``max_bytes`` already: the webhook must be refused."""


@dataclass(frozen=True, slots=True)
class SpooledEvent:
    provider: str
    kind: str
    location_id: str
    payload: dict[str, Any]
    received_at: datetime

    def encode(self) -> bytes:
        body = json.dumps(
            {
                "provider": self.provider,
                "kind": self.kind,
                "location_id": self.location_id,
                "payload": self.payload,
                "received_at": self.received_at.isoformat(),
            },
            separators=(",", ":"),
        ).encode()
        return _HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body

    @classmethod
    def decode(cls, body: bytes) -> SpooledEvent:
        data = json.loads(body)
        return cls(
            provider=data["provider"],
            kind=data["kind"],
            location_id=data["location_id"],
            payload=data["payload"],
            received_at=datetime.fromisoformat(data["received_at"]),
        )


@dataclass(frozen=True, slots=True)
class Segment:
    """What one segment file holds: whole records, and bytes that were not one."""

    records: list[SpooledEvent]
    skipped_bytes: int


def read_segment(data: bytes) -> Segment:
    """Every whole record in ``data``; a torn or corrupt stretch is skipped up to the next
    magic (a crash mid-append leaves one at the tail)."""
    records: list[SpooledEvent] = []
    skipped = 0
    offset = 0
    while offset < len(data):
        if len(data) - offset >= _HEADER.size:
            magic, length, crc = _HEADER.unpack_from(data, offset)
            end = offset + _HEADER.size + length
            if magic == MAGIC and length <= MAX_RECORD_BYTES and end <= len(data):
                body = data[offset + _HEADER.size : end]
                if zlib.crc32(body) == crc:
                    try:
                        records.append(SpooledEvent.decode(body))
                    except (ValueError, KeyError, TypeError):
                        skipped += end - offset
                    offset = end
                    continue
        following = data.find(MAGIC, offset + 1)
        following = len(data) if following < 0 else following
        skipped += following - offset
        offset = following
    return Segment(records, skipped)


def _count_records(data: bytes) -> tuple[int, datetime | None]:
    segment = read_segment(data)
    oldest = min((r.received_at for r in segment.records), default=None)
    return len(segment.records), oldest


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int  # records waiting, in every segment of the directory
    oldest: datetime | None  # when the oldest of them was received
    bytes: int
    segments: int


class Spool:
    """This process's spool in ``directory`` (shared with the other processes' spools)."""

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._seq = 0
        self._size = 0
        # Records this process appended and no drain has stored yet, by segment.
        self._mine: dict[Path, tuple[int, int]] = {}  # path -> (records, bytes)
        directory.mkdir(parents=True, exist_ok=True)

    # --- appending ---------------------------------------------------------------------

    def pending(self) -> int:
        """Records this process appended that are not stored yet."""
        with self._lock:
            return sum(count for count, _ in self._mine.values())

    def append(self, event: SpooledEvent) -> None:
        """Append and fsync ``event``; :class:`SpoolFull` when this process's spool is full."""
        record = event.encode()
        with self._lock:
            held = sum(size for _, size in self._mine.values())
            if held + len(record) > self.max_bytes:
                raise SpoolFull(
                    f"the webhook spool of this process holds {held} bytes "
                    f"(limit {self.max_bytes}); the database has been unavailable too long"
                )
            fd, path = self._active()
            try:
                written = os.write(fd, record)
                if written != len(record):
                    raise OSError(f"short write to the spool ({written} of {len(record)} bytes)")
                os.fsync(fd)
            except OSError:
                # Leave no half record behind for the next append to follow.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                raise
            self._size += len(record)
            count, size = self._mine.get(path, (0, 0))
            self._mine[path] = (count + 1, size + len(record))

    def _active(self) -> tuple[int, Path]:
        if self._fd is not None and self._path is not None:
            return self._fd, self._path
        self._seq += 1
        path = self.directory / f"{self.token}-{self._seq:06d}{SUFFIX}"
        # Created and locked under a name drainers ignore, then renamed: a drainer never
        # sees (and deletes) a segment before its owner holds it.
        temporary = path.with_suffix(".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(temporary, path)
        _fsync_directory(self.directory)
        self._fd, self._path, self._size = fd, path, 0
        return fd, path

    def seal(self) -> None:
        """Let go of the segment being appended to (if it holds anything), so it drains."""
        with self._lock:
            if self._fd is not None and self._size > 0:
                os.close(self._fd)  # releases the flock
                self._fd = self._path = None
                self._size = 0

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = self._path = None

    # --- draining ----------------------------------------------------------------------

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def drain(self, store: Callable[[list[SpooledEvent]], None]) -> int:
        """Store every record of every segment nobody holds, oldest first, and delete each
        segment once all of it is stored. Returns the records stored; raises what ``store``
        raises (the segment stays, to be drained again: storing twice is harmless)."""
        self.seal()
        stored = 0
        for path in self.segments():
            with _held(path) as fd:
                if fd is None:
                    continue  # its process is appending to it
                data = _read_all(fd)
                segment = read_segment(data)
                if segment.skipped_bytes:
                    log_event(
                        log,
                        "spool.torn",
                        logging.WARNING,
                        segment=path.name,
                        skipped_bytes=segment.skipped_bytes,
                    )
                for start in range(0, len(segment.records), DRAIN_BATCH):
                    store(segment.records[start : start + DRAIN_BATCH])
                stored += len(segment.records)
                path.unlink(missing_ok=True)
                _fsync_directory(self.directory)
            with self._lock:
                self._mine.pop(path, None)
        with self._lock:
            # Sealed segments of ours that another process drained meanwhile.
            for path in [p for p in self._mine if p != self._path and not p.exists()]:
                del self._mine[path]
        if stored:
            log_event(log, "spool.drained", events=stored)
        return stored

    def stats(self) -> SpoolStats:
        """Depth and age over every segment in the directory (all processes')."""
        depth = size = count = 0
        oldest: datetime | None = None
        for path in self.segments():
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue  # drained meanwhile
            records, first = _count_records(data)
            depth += records
            size += len(data)
            count += 1
            if first is not None and (oldest is None or first < oldest):
                oldest = first
        return SpoolStats(depth=depth, oldest=oldest, bytes=size, segments=count)


@contextlib.contextmanager
def _held(path: Path) -> Iterator[int | None]:
    """The segment's fd with its flock held, or None when another holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield None
            return
        # Another drainer may have drained and deleted it between listing and locking.
        if not os.path.exists(path) or os.fstat(fd).st_ino != os.stat(path).st_ino:
            yield None
            return
        yield fd
    except FileNotFoundError:
        yield None
    finally:
        os.close(fd)


def _read_all(fd: int) -> bytes:
    chunks = []
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def store_batch(deps: Deps, sessions: sessionmaker[Session], batch: list[SpooledEvent]) -> None:
    """Store spooled events in one transaction; one already stored is ignored."""
    with transaction(sessions) as session:
        for item in batch:
            events.record(
                session,
                deps,
                provider=item.provider,
                kind=item.kind,
                location_id=item.location_id,
                payload=item.payload,
                received_at=item.received_at,
            )


class EventStore:
    """The webhook edge's way to store an event: in the database within ``budget``
    seconds, else in the spool.

    While this process has spooled events not yet stored, later ones join the spool
    behind them rather than try the database first: they are answered at once, and stored
    in the order they came.
    """

    def __init__(
        self,
        deps: Deps,
        sessions: sessionmaker[Session],
        spool: Spool,
        budget: float,
        *,
        threads: int = 8,
    ) -> None:
        self.deps = deps
        self.sessions = sessions
        self.spool = spool
        self.budget = budget
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="ringback-store")

    def _store_now(self, event: SpooledEvent) -> None:
        store_batch(self.deps, self.sessions, [event])

    async def store(self, event: SpooledEvent) -> bool:
        """Store ``event``; True when stored in the database, False when spooled.
        Raises :class:`SpoolFull` when it could be neither."""
        if self.spool.pending() == 0:
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            try:
                await asyncio.wait_for(
                    loop.run_in_executor(self._executor, self._store_now, event), self.budget
                )
                return True
            except Exception as exc:
                # A store that times out may still land later: the spooled copy is then a
                # duplicate, which the drain ignores.
                log_event(
                    log,
                    "spool.store_failed",
                    logging.WARNING,
                    kind=event.kind,
                    waited_s=round(time.monotonic() - started, 3),
                    error=type(exc).__name__,
                )
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.spool.append, event)
        log_event(log, "spool.appended", kind=event.kind, location=event.location_id)
        return False

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Drainer:
    """Drains the spool directory on a thread of its own: every ``idle`` seconds while
    there is nothing to drain, at once again while there is, backing off to ``max_delay``
    while the database will not take it."""

    def __init__(
        self,
        spool: Spool,
        store: Callable[[list[SpooledEvent]], None],
        *,
        idle: float = 0.5,
        max_delay: float = 2.0,
    ) -> None:
        self.spool = spool
        self.store = store
        self.idle = idle
        self.max_delay = max_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def start(self) -> Drainer:
        self._thread = threading.Thread(target=self._run, name="ringback-spool", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self.drain_once()

    def drain_once(self) -> float:
        """Drain what can be drained; return how long to wait before the next try."""
        if not self.spool.segments() and self.spool.pending() == 0:
            return self.idle
        try:
            self.spool.drain(self.store)
        except Exception as exc:
            self._failures += 1
            delay: float = min(self.idle * 2.0 ** min(self._failures, 8), self.max_delay)
            log_event(
                log,
                "spool.drain_failed",
                logging.WARNING,
                error=type(exc).__name__,
                failures=self._failures,
                retry_in_s=round(delay, 2),
            )
            return delay
        self._failures = 0
        return 0.05 if self.spool.pending() else self.idle


class SpoolService:
    """One process's spool, with the bounded engine it stores through, the webhook edge's
    :class:`EventStore` and the :class:`Drainer`."""

    def __init__(
        self, deps: Deps, database_url: str, directory: Path, max_bytes: int, budget: float
    ) -> None:
        self.engine = make_engine(database_url, bounded=budget, pool_size=4)
        # Sessions that wait no longer than ``budget`` for the database.
        self.sessions = sessions = make_sessionmaker(self.engine)
        self.spool = Spool(directory, max_bytes)
        self.store = EventStore(deps, sessions, self.spool, budget)
        self.drainer = Drainer(self.spool, functools.partial(store_batch, deps, sessions))

    def start(self) -> SpoolService:
        self.drainer.start()
        return self

    def stop(self) -> None:
        self.drainer.stop()
        self.store.close()
        self.spool.close()
        self.engine.dispose()
