"""What every fake in this package shares: recorded traffic, scripted failures, held answers.

A fake's state is written by its server's event loop and read by tests from their own
thread, so everything here is guarded by one lock and read as snapshots.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request a fake answered: what came in, which operation, and the status sent."""

    method: str
    path: str
    query: Mapping[str, tuple[str, ...]]
    body: Any
    operation: str | None
    status_code: int | None
    received_monotonic: float


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """An error answer a test asked for: HTTP status, the vendor's JSON body, headers."""

    status: int
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Scripted:
    error: ScriptedError
    remaining: int
    operation: str | None


@dataclass(slots=True)
class _Holds:
    remaining: int = 0
    seconds: float | None = None
    operation: str | None = None


class TrafficLog:
    """Requests, violations, scripted errors and holds of one fake, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self._released = threading.Event()
        self._requests: list[RecordedRequest] = []
        self._violations: list[str] = []
        self._scripted: deque[_Scripted] = deque()
        self._holds = _Holds()

    # --- scripting --------------------------------------------------------------------

    def script(self, error: ScriptedError, count: int, operation: str | None) -> None:
        with self.lock:
            self._scripted.append(_Scripted(error, count, operation))

    def hold(self, count: int, seconds: float | None, operation: str | None) -> None:
        with self.lock:
            self._holds = _Holds(count, seconds, operation)

    def clear_scripts(self) -> None:
        with self.lock:
            self._scripted.clear()
            self._holds = _Holds()

    def release_held_answers(self) -> None:
        self._released.set()

    def rearm(self) -> None:
        self._released.clear()

    # --- what happened ----------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    @property
    def violations(self) -> list[str]:
        with self.lock:
            return list(self._violations)

    def record(self, request: RecordedRequest) -> None:
        with self.changed:
            self._requests.append(request)
            self.changed.notify_all()

    def record_violations(self, messages: Iterable[str]) -> None:
        with self.changed:
            self._violations.extend(messages)
            self.changed.notify_all()

    # --- used by the app --------------------------------------------------------------

    def take_error(self, operation: str) -> ScriptedError | None:
        with self.lock:
            for scripted in self._scripted:
                if scripted.operation in (None, operation):
                    scripted.remaining -= 1
                    if scripted.remaining <= 0:
                        self._scripted.remove(scripted)
                    return scripted.error
            return None

    def take_hold(self, operation: str) -> tuple[bool, float | None]:
        with self.lock:
            holds = self._holds
            if holds.remaining <= 0 or holds.operation not in (None, operation):
                return False, None
            holds.remaining -= 1
            return True, holds.seconds

    async def hold_answer(self, seconds: float | None) -> None:
        """Keep the answer back ``seconds`` (``None``: until the server stops)."""
        deadline = None if seconds is None else time.monotonic() + seconds
        while not self._released.is_set():
            remaining = 0.05 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.05, remaining))


@dataclass
class BackgroundTasks:
    """Notification tasks still running, kept so they are neither collected nor leaked."""

    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def cancel_all(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
