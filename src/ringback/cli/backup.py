"""``ringback backup`` / ``ringback restore``: the database to a file and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ringback.cli.support import fail
from ringback.config import ConfigError, load_settings


def _database_url() -> str:
    try:
        return load_settings().resolved_database_url
    except ConfigError as exc:
        raise fail(str(exc)) from None


def register(app: typer.Typer) -> None:
    """Add ``ringback backup`` and ``ringback restore`` to the command."""

    @app.command("backup")
    def backup_command(
        file: Annotated[Path, typer.Argument(help="Where to write the backup.")],
        force: Annotated[bool, typer.Option(help="Replace FILE if it exists.")] = False,
    ) -> None:
        """Back up the database while the service runs (SQLite online backup; pg_dump -Fc)."""
        from ringback.backup import BackupError, backup

        try:
            result = backup(_database_url(), file, overwrite=force)
        except BackupError as exc:
            raise fail(str(exc)) from None
        typer.echo(
            f"backed up the {result.kind} database (schema {result.revision}) to "
            f"{result.path}: {result.size_bytes} bytes in {result.seconds:.1f} s"
        )

    @app.command("restore")
    def restore_command(
        file: Annotated[Path, typer.Argument(help="A file `ringback backup` wrote.")],
        force: Annotated[
            bool, typer.Option(help="Replace a database that already holds data.")
        ] = False,
    ) -> None:
        """Restore a backup into the configured database, then migrate it (stop the
        web and worker processes first)."""
        from ringback.backup import BackupError, restore

        try:
            result = restore(_database_url(), file, force=force)
        except BackupError as exc:
            raise fail(str(exc)) from None
        typer.echo(
            f"restored the {result.kind} database from {file} (schema "
            f"{result.restored_revision}, now {result.revision}) in {result.seconds:.1f} s"
        )
