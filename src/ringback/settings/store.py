"""The clinic's settings in the database: one document, a version, and an audit log.

The document is what a locations file holds (``{"locations": [...]}``), validated by the
same models and with the same named errors as ``check-config`` (:func:`ringback.config.
parse_locations`): there is one schema. Every change bumps ``settings_state.version``;
running processes compare it per request and per job (:class:`SettingsWatcher`) and
swap the new settings in without a restart. Each changed key of each location is kept
in ``settings_changes`` with who changed it, when, and the value before and after.

A locations file given in ``RINGBACK_CONFIG`` is applied at start (:func:`apply_file`)
and marks the settings as managed by that file: the pages show them read only.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from ringback.config import ConfigError, Location, Locations, parse_locations
from ringback.db import make_engine
from ringback.logs import log_event
from ringback.models import SettingsChange, SettingsState

log = logging.getLogger(__name__)

STATE_ID = 1
SOURCE = "settings"  # how stored settings are named in error messages
# Values the audit log never shows (a chat webhook URL is its own credential).
SECRET_KEYS = frozenset({"slack_webhook_url"})
HIDDEN = "(hidden)"


class SettingsManagedByFile(Exception):
    """The settings come from a locations file; change the file, not the database."""

    def __init__(self, path: str) -> None:
        super().__init__(
            f"settings are managed by the file {path} (RINGBACK_CONFIG): edit that file, "
            "or start Ringback without RINGBACK_CONFIG to manage them here"
        )
        self.path = path


class StaleSettings(Exception):
    """Someone else saved the settings since they were read; read them again."""

    def __init__(self) -> None:
        super().__init__(
            "settings: someone else saved a change since this page was opened; "
            "reload it and make your change again"
        )


class NoSettings(Exception):
    """The database holds no settings yet."""


@dataclass(frozen=True)
class Stored:
    version: int
    document: dict[str, Any]
    managed_by: str | None
    updated_at: datetime

    @property
    def locations(self) -> Locations:
        return parse_locations(self.document, SOURCE)


# --- the document --------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """Model values as YAML/JSON-friendly data: lists, not tuples; prices as numbers."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def location_data(location: Location, *, defaults: bool = False) -> dict[str, Any]:
    """One location as the locations file writes it (keys left at their default omitted
    unless ``defaults``)."""
    dumped = location.model_dump(mode="python", exclude_defaults=not defaults)
    plain: dict[str, Any] = _plain(dumped)
    return plain


def document_of(locations: Iterable[Location]) -> dict[str, Any]:
    """The settings document (the locations file's content) for these locations."""
    return {"locations": [location_data(loc) for loc in locations]}


def slug(name: str) -> str:
    """An id from a name: ``"Maya Chen"`` → ``maya-chen``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:40].strip("-")


# --- reading -------------------------------------------------------------------------


def read(session: Session) -> Stored | None:
    """The stored settings, or None before any were stored."""
    row = session.get(SettingsState, STATE_ID)
    if row is None:
        return None
    return Stored(row.version, dict(row.document), row.managed_by, row.updated_at)


_VERSION = text("SELECT version FROM settings_state WHERE id = :id")


def current_version(engine: Engine) -> int | None:
    """The settings' version: one primary-key read, cheap enough for every request."""
    # Plain SQL: the ORM's statement building costs more than the read itself here.
    with engine.connect() as connection:
        version = connection.execute(_VERSION, {"id": STATE_ID}).scalar()
    return None if version is None else int(version)


def recent_changes(
    session: Session, *, location_id: str | None = None, limit: int = 200
) -> list[SettingsChange]:
    """The audit log, newest first."""
    query = select(SettingsChange).order_by(SettingsChange.id.desc()).limit(limit)
    if location_id:
        query = query.where(SettingsChange.location_id == location_id)
    return list(session.scalars(query))


# --- writing -------------------------------------------------------------------------


def _full(locations: Locations) -> dict[str, dict[str, Any]]:
    return {loc.id: location_data(loc, defaults=True) for loc in locations}


def _shown(key: str, value: Any) -> Any:
    return HIDDEN if key in SECRET_KEYS and value else value


def _audit(
    session: Session,
    before: Locations | None,
    after: Locations,
    *,
    actor: str,
    now: datetime,
    version: int,
) -> int:
    old = _full(before) if before is not None else {}
    new = _full(after)
    count = 0

    def add(location_id: str, section: str, was: Any, becomes: Any) -> None:
        nonlocal count
        session.add(
            SettingsChange(
                version=version,
                changed_at=now,
                actor=actor[:1100],
                location_id=location_id,
                section=section,
                before=was,
                after=becomes,
            )
        )
        count += 1

    for location_id in sorted(set(old) | set(new)):
        was, becomes = old.get(location_id), new.get(location_id)
        if was is None or becomes is None:
            add(
                location_id,
                "location added" if was is None else "location removed",
                None if was is None else was.get("name"),
                None if becomes is None else becomes.get("name"),
            )
            continue
        for key in sorted(set(was) | set(becomes)):
            if was.get(key) != becomes.get(key):
                add(location_id, key, _shown(key, was.get(key)), _shown(key, becomes.get(key)))
    return count


def replace_all(
    session: Session,
    data: Any,
    *,
    actor: str,
    now: datetime,
    source: str = SOURCE,
    managed_by: str | None = None,
    expected_version: int | None = None,
) -> Stored:
    """Validate ``data`` (a whole settings document) and store it, logging each change.

    Raises :class:`ConfigError` naming what is wrong (nothing is written),
    :class:`StaleSettings` when ``expected_version`` is given and no longer current.
    Storing what is already stored writes nothing (an unchanged file applied at start).
    """
    locations = parse_locations(data, source)
    document = document_of(locations)
    row = session.get(SettingsState, STATE_ID, with_for_update=True)
    if row is None:
        if expected_version not in (None, 0):
            raise StaleSettings()
        row = SettingsState(
            id=STATE_ID, version=1, document=document, managed_by=managed_by, updated_at=now
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError as exc:  # another process stored the first settings
            raise StaleSettings() from exc
        _audit(session, None, locations, actor=actor, now=now, version=1)
        log_event(log, "settings.stored", version=1, locations=len(locations))
        return Stored(1, document, managed_by, now)
    if expected_version is not None and row.version != expected_version:
        raise StaleSettings()
    if row.document == document and row.managed_by == managed_by:
        return Stored(row.version, document, managed_by, row.updated_at)
    previous = parse_locations(row.document, SOURCE)
    version = row.version + 1
    done = session.execute(
        update(SettingsState)
        .where(SettingsState.id == STATE_ID, SettingsState.version == row.version)
        .values(version=version, document=document, managed_by=managed_by, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if getattr(done, "rowcount", 1) != 1:
        raise StaleSettings()
    changed = _audit(session, previous, locations, actor=actor, now=now, version=version)
    log_event(log, "settings.changed", version=version, changes=changed)
    return Stored(version, document, managed_by, now)


def save_location(
    session: Session,
    location_id: str,
    data: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    expected_version: int | None,
) -> Stored:
    """Replace one location's settings with ``data`` (the whole location, as the file
    writes it). Refused while a file manages the settings."""
    stored = read(session)
    if stored is None:
        raise NoSettings("no settings are stored yet")
    if stored.managed_by:
        raise SettingsManagedByFile(stored.managed_by)
    entries = list(stored.document.get("locations", []))
    index = next((i for i, e in enumerate(entries) if e.get("id") == location_id), None)
    if index is None:
        raise NoSettings(f"location: no location {location_id!r}")
    entries[index] = data
    return replace_all(
        session,
        {**stored.document, "locations": entries},
        actor=actor,
        now=now,
        expected_version=expected_version,
    )


def save_square(
    session: Session,
    location_id: str,
    square: dict[str, Any],
    *,
    actor: str,
    now: datetime,
    expected_version: int | None = None,
) -> Stored:
    """Make the location book into Square with this ``square`` block (its mapping of
    locations, team members and service variations). Validated like the rest of the
    settings (:class:`ConfigError` naming the key); logged in the audit log; refused
    while a file manages the settings."""
    stored = read(session)
    if stored is None:
        raise NoSettings("no settings are stored yet")
    entry = next(
        (e for e in stored.document.get("locations", []) if e.get("id") == location_id), None
    )
    if entry is None:
        raise NoSettings(f"location: no location {location_id!r}")
    return save_location(
        session,
        location_id,
        {**entry, "booking_system": "square", "square": square},
        actor=actor,
        now=now,
        expected_version=expected_version,
    )


def apply_file(session: Session, path: Path, locations: Locations, now: datetime) -> Stored:
    """Store the settings of the locations file the process started with, marked as
    managed by it (the pages show them read only)."""
    return replace_all(
        session,
        document_of(locations),
        actor=f"file {path}",
        now=now,
        source=str(path),
        managed_by=str(path.resolve()),
    )


def release_file(session: Session, now: datetime) -> None:
    """Started without a locations file: the stored settings are managed here from now on."""
    row = session.get(SettingsState, STATE_ID, with_for_update=True)
    if row is not None and row.managed_by is not None:
        row.managed_by = None
        row.version += 1
        row.updated_at = now
        log_event(log, "settings.released_from_file", version=row.version)


def load(session: Session) -> Locations:
    """The stored settings as locations; :class:`NoSettings` when there are none."""
    stored = read(session)
    if stored is None:
        raise NoSettings(
            "no settings in the database and no locations file: run `ringback init`, "
            "`ringback config import FILE`, or set RINGBACK_CONFIG to a locations file"
        )
    return stored.locations


# --- running processes --------------------------------------------------------------


class SettingsWatcher:
    """Keeps a process's :class:`Locations` in step with the stored settings.

    :meth:`refresh` reads the version (one primary-key read) and, when it moved, loads the
    document and swaps it into the same ``Locations`` object every part of the process
    holds, so the next webhook, page or job sees the change. A process whose settings were
    never stored (tests that hand in their own locations) is left alone.
    """

    # The version check never holds up a webhook: it waits at most CHECK_BUDGET for the
    # database (SQLite held by a long writer, PostgreSQL refusing), then the process keeps
    # the settings it has and does not ask again for RETRY_AFTER seconds; while one thread
    # checks, the others go on with the settings they have.
    CHECK_BUDGET = 0.5
    RETRY_AFTER = 2.0

    def __init__(self, engine: Engine, locations: Locations) -> None:
        self.engine = engine
        self.locations = locations
        self.version: int | None = None
        self._lock = threading.Lock()
        self._checking = threading.Lock()
        self._check_engine: Engine | None = None
        self._skip_until = 0.0
        self._failed = False

    def _bounded(self) -> Engine:
        if self._check_engine is None:
            url = self.engine.url
            if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
                self._check_engine = self.engine  # one in-memory database: no second engine
            else:
                self._check_engine = make_engine(
                    url.render_as_string(hide_password=False),
                    bounded=self.CHECK_BUDGET,
                    pool_size=2,
                )
        return self._check_engine

    def close(self) -> None:
        if self._check_engine is not None and self._check_engine is not self.engine:
            self._check_engine.dispose()

    def refresh(self) -> bool:
        """Pick up a saved change; True when the settings were replaced."""
        if time.monotonic() < self._skip_until or not self._checking.acquire(blocking=False):
            return False
        try:
            version = current_version(self._bounded())
        except (SQLAlchemyError, sqlite3.Error):  # sqlite3's own from the BEGIN hook
            self._skip_until = time.monotonic() + self.RETRY_AFTER
            if not self._failed:  # no schema yet (--no-migrate), or the database is down
                log_event(log, "settings.version_unreadable", logging.WARNING)
                self._failed = True
            return False
        finally:
            self._checking.release()
        self._failed = False
        if version is None or version == self.version:
            return False
        with self._lock:
            if version == self.version:
                return False
            try:
                with Session(self.engine) as session:
                    stored = read(session)
                if stored is None:
                    return False
                fresh = stored.locations
            except (SQLAlchemyError, ConfigError) as exc:
                log_event(log, "settings.reload_failed", logging.ERROR, error=type(exc).__name__)
                return False
            self.locations.replace(tuple(fresh))
            self.version = stored.version
        log_event(log, "settings.reloaded", version=stored.version)
        return True
