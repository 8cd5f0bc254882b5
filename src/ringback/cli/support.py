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


def load_config(
    config: Path | None = None,
    *,
    check_providers: bool = False,
    configure_logs: bool = True,
) -> tuple[Settings, Locations]:
    """Settings from the environment and the locations file (``config`` overrides
    ``RINGBACK_CONFIG``), validated; a problem fails the command naming it."""
    try:
        settings = load_settings()
        if config is not None:
            settings = settings.model_copy(update={"config": config})
        locations = load_locations(settings.config)
        if check_providers:
            check_provider_settings(settings, locations)
    except ConfigError as exc:
        raise fail(str(exc)) from None
    if configure_logs:
        configure_logging(settings.log_level)
    return settings, locations


def open_database(settings: Settings) -> sessionmaker[Session]:
    """A session factory on the configured database, migrated to the newest schema."""
    from ringback.db import make_engine, make_sessionmaker
    from ringback.schema import upgrade

    engine = make_engine(settings.resolved_database_url)
    upgrade(engine)
    return make_sessionmaker(engine)
