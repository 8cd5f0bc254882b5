"""Claims on outbox rows: a token saying whose the row is, and a lease saying until when.

A ``sending`` row is somebody's: the job that claimed it to send, or the reconcile that
took it over when that job's lease lapsed. Only the holder of the row's current token
writes its outcome, so two workers that both believe they own a row can never both act
(the second finds a token that is not its own and stands down). While a provider call is
in flight, this process renews the lease of the claim it holds (:func:`hold`), so a slow
but living worker keeps its row, and a killed one loses it within :data:`LEASE`.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import update

from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import Message

log = logging.getLogger(__name__)

# How long a claim outlives its holder's last sign of life.
LEASE = timedelta(seconds=10)
# A claim held this long is renewed (a third of the lease: two renewals may fail first).
RENEW_AFTER_SECONDS = LEASE.total_seconds() / 3


def new_token() -> str:
    """A fresh claim token (one per send attempt or takeover)."""
    return secrets.token_hex(8)


class _Keeper:
    """Renews the leases of the claims this process holds, from one daemon thread.

    Only claims held longer than :data:`RENEW_AFTER_SECONDS` are renewed, so the usual
    sub-second send costs no write at all.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._mutex = threading.Lock()
        self._held: dict[tuple[int, str], tuple[Deps, float]] = {}
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, deps: Deps, message_id: int, token: str) -> None:
        with self._mutex:
            self._held[(message_id, token)] = (deps, time.monotonic())
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="ringback-lease-keeper", daemon=True
                )
                self._thread.start()

    def remove(self, message_id: int, token: str) -> None:
        with self._mutex:
            self._held.pop((message_id, token), None)

    def _run(self) -> None:
        while True:
            self._wake.wait(RENEW_AFTER_SECONDS / 2)
            now = time.monotonic()
            with self._mutex:
                due = [
                    (key, deps)
                    for key, (deps, since) in self._held.items()
                    if now - since >= RENEW_AFTER_SECONDS
                ]
                for key, deps in due:
                    self._held[key] = (deps, now)
            for (message_id, token), deps in due:
                try:
                    renew(deps, message_id, token)
                except Exception:
                    log.exception(
                        "sms.lease_renew_failed", extra={"fields": {"message_id": message_id}}
                    )


_keeper = _Keeper()
os.register_at_fork(after_in_child=_keeper._reset)


def renew(deps: Deps, message_id: int, token: str) -> bool:
    """Extend the lease of ``token``'s claim; False if the claim is no longer its."""
    with transaction(deps.sessions) as session:
        result = session.execute(
            update(Message)
            .where(Message.id == message_id, Message.claim_token == token)
            .values(lease_until=deps.clock() + LEASE)
        )
        renewed = bool(getattr(result, "rowcount", 0))
    if not renewed:
        log_event(log, "sms.lease_lost", message_id=message_id)
    return renewed


@contextmanager
def hold(deps: Deps, message_id: int, token: str) -> Iterator[None]:
    """Keep ``token``'s claim alive while the block (a provider call) runs."""
    _keeper.add(deps, message_id, token)
    try:
        yield
    finally:
        _keeper.remove(message_id, token)
