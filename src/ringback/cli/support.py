"""What every ``ringback`` sub-command shares: one way to fail, one way to load the
settings and the locations file, one way to open a migrated database.

A command fails with ``ringback: <what was wrong>`` on stderr and exit code 2 (1 where a
command says so), never with a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import (
    ConfigError,
    Locations,
    Settings,
    check_provider_settings,
    load_locations,
    load_settings,
)
from ringback.logs import configure_logging


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``message`` in red on stderr; raise the returned Exit to stop with ``code``."""
    typer.secho(f"ringback: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def settings_file(settings: Settings) -> Path | None:
    """The locations file this process is configured from, or None: settings in the database.

    A file named by ``RINGBACK_CONFIG`` or ``--config`` is used (and must exist); without
    either, ``ringback.yaml`` in the working directory is used when it exists.
    """
    given = "config" in settings.model_fields_set and str(settings.config) not in ("", ".")
    if given:
        return settings.config
    return settings.config if settings.config.is_file() else None


def load_config(
    config: Path | None = None,
    *,
    check_providers: bool = False,
    configure_logs: bool = True,
) -> tuple[Settings, Locations]:
    """Settings from the environment and the locations (``config`` overrides
    ``RINGBACK_CONFIG``), validated; a problem fails the command naming it.

    Without a locations file the locations are the settings stored in the database
    (``ringback init``, the settings pages, ``ringback config import``)."""
    try:
        settings = load_settings()
        if config is not None:
            settings = settings.model_copy(update={"config": config})
        path = settings_file(settings)
        locations = load_locations(path) if path is not None else _stored_locations(settings)
        if check_providers:
            check_provider_settings(settings, locations)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if configure_logs:
        configure_logging(settings.log_level)
    return settings, locations


def _stored_locations(settings: Settings) -> Locations:
    from ringback.db import transaction
    from ringback.settings import store

    sessions = open_database(settings)
    try:
        with transaction(sessions) as session:
            return store.load(session)
    except store.NoSettings as exc:
        raise ConfigError(str(exc)) from None
    finally:
        bind = sessions.kw.get("bind")
        if bind is not None:
            bind.dispose()


def adopt_settings(
    settings: Settings, sessions: sessionmaker[Session], locations: Locations
) -> None:
    """At the start of a long-running process: a locations file is applied to the database
    (its settings read only in the pages); without one, the database manages them."""
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.settings import store

    path = settings_file(settings)
    with transaction(sessions) as session:
        if path is not None:
            store.apply_file(session, path, locations, datetime.now(UTC))
        else:
            store.release_file(session, datetime.now(UTC))


def open_database(settings: Settings) -> sessionmaker[Session]:
    """A session factory on the configured database, migrated to the newest schema."""
    from ringback.db import make_engine, make_sessionmaker
    from ringback.schema import upgrade

    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return make_sessionmaker(engine)
