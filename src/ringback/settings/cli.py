"""``ringback config export`` / ``ringback config import``: the settings as YAML, both ways.

Export writes what the database holds in the locations file's own format; import checks a
file with the same named errors as ``check-config`` and stores it, each changed key kept
in the audit log. Export, then import, changes nothing.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from ringback.cli.support import fail, open_database, settings_file
from ringback.config import ConfigError, load_locations, load_settings
from ringback.db import transaction
from ringback.settings import store

app = typer.Typer(help="The settings as YAML: export and import.", no_args_is_help=True)

HEADER = (
    "# Ringback settings, exported {date} (version {version}).\n"
    "# Edit and load back with: ringback config import FILE\n"
)


def dump(document: dict[str, Any]) -> str:
    """The settings document as the locations file writes it."""
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100))


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Print the settings stored in the database as a locations file (YAML)."""
    try:
        settings = load_settings()
        sessions = open_database(settings)
        with transaction(sessions) as session:
            stored = store.read(session)
        if stored is None:
            path = settings_file(settings)
            if path is None:
                raise ConfigError(
                    "no settings in the database and no locations file: nothing to export"
                )
            document, version = store.document_of(load_locations(path)), 0
        else:
            document, version = stored.document, stored.version
    except ConfigError as exc:
        raise fail(str(exc)) from None
    text = HEADER.format(date=datetime.now(UTC).date().isoformat(), version=version)
    text += dump(document)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output} (settings version {version})", err=True)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A locations file (YAML), e.g. from export.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check the file and say what would change.")
    ] = False,
    take_over: Annotated[
        bool,
        typer.Option(
            "--take-over",
            help="Settings applied from RINGBACK_CONFIG: import anyway and manage them in "
            "the database from now on (remove RINGBACK_CONFIG from the service too).",
        ),
    ] = False,
) -> None:
    """Check a locations file and store it as the settings (each change is audited)."""
    try:
        locations = load_locations(file)
        settings = load_settings()
        sessions = open_database(settings)
        with transaction(sessions) as session:
            stored = store.read(session)
            if stored is not None and stored.managed_by and not take_over:
                raise store.SettingsManagedByFile(stored.managed_by)
            document = store.document_of(locations)
            if dry_run:
                same = stored is not None and stored.document == document
                typer.echo(
                    f"{file}: valid, {len(locations)} location(s); "
                    + ("no change" if same else "would replace the stored settings")
                )
                return
            result = store.replace_all(
                session,
                document,
                actor=f"{_who()} (ringback config import {file.name})",
                now=datetime.now(UTC),
                source=str(file),
                managed_by=None,
            )
    except (ConfigError, store.SettingsManagedByFile, store.StaleSettings) as exc:
        raise fail(str(exc)) from None
    changed = stored is None or result.version != stored.version
    typer.echo(
        f"imported {file}: {len(locations)} location(s), settings version {result.version}"
        + ("" if changed else " (no change)")
    )
