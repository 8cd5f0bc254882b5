"""``ringback patients``: import from the clinic's system, export, delete on request.

The commands only read files and print; the work is in :mod:`ringback.patients`
(importing, export, erasure, record). Exit codes: 0 when the file was read (bad rows are
reported, the good ones imported), 1 when an import stopped part way (the rows before the
line it names are saved; run it again to finish), 2 when nothing could be done
(unreadable file, unknown preset, location, field or column), naming it.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ringback.cli.support import fail, load_config, open_database
from ringback.config import Location, Locations
from ringback.patients import erasure, importing
from ringback.patients import export as exporting

records_app = typer.Typer(
    help="Patient records: import from your booking system, export, delete on request.",
    no_args_is_help=True,
)

_FIELD_HELP = "; ".join(f"{kind}: {', '.join(fields)}" for kind, fields in importing.FIELDS.items())
_ENCODINGS = ("utf-8-sig", "cp1252")


def _open() -> tuple[Locations, Any]:
    """The locations and a session factory on a migrated database."""
    settings, locations = load_config()
    return locations, open_database(settings)


def _location(locations: Locations, location_id: str) -> Location:
    found = locations.get(location_id)
    if found is None:
        known = ", ".join(loc.id for loc in locations)
        raise fail(f"--location: no location {location_id!r} (known: {known})")
    return found


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail(f"{path}: file not found") from None
    except OSError as exc:
        raise fail(f"{path}: cannot be read: {exc.strerror}") from None
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise fail(f"{path}: not text (expected UTF-8 or Windows-1252 CSV)")  # pragma: no cover


@records_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="The CSV export to read.")],
    location: Annotated[str, typer.Option("--location", "-l", help="Location id.")],
    kind: Annotated[
        str, typer.Option(help="What the file holds: patients or appointments.")
    ] = "patients",
    preset: Annotated[
        str,
        typer.Option(
            help="Column names of a known export: generic, boulevard, mindbody, vagaro, zenoti "
            "(best-effort guesses: check the 'columns' line the import prints)."
        ),
    ] = "generic",
    mapping: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            help=f"COLUMN=FIELD, repeatable; overrides the preset (COLUMN=- ignores a column). "
            f"Fields: {_FIELD_HELP}.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and count, save nothing.")
    ] = False,
) -> None:
    """Import patients or appointments from a CSV export of the clinic's booking system.

    Re-importing updates what is there and never duplicates. Bad rows are listed by line
    and skipped; the good rows are saved 500 at a time (progress on stderr). If a batch
    cannot be saved, the lines it held are named and the rows before it stay saved: run
    the same file again to finish.
    """
    if kind not in importing.KINDS:
        raise fail(f"--kind: expected patients or appointments, got {kind!r}")
    what: importing.Kind = "patients" if kind == "patients" else "appointments"
    try:
        columns = importing.ColumnMapping.preset(what, preset)
    except importing.MappingError as exc:
        raise fail(f"--preset: {exc}") from None
    try:
        columns = columns.overridden(mapping or [])
    except importing.MappingError as exc:
        raise fail(f"--map {exc}") from None
    text = _read_text(file)
    try:
        table = importing.stream_csv(text)
        used = columns.describe(table.header)
    except importing.CsvError as exc:
        raise fail(f"{file}: {exc}") from None
    except importing.MissingColumn as exc:
        raise fail(f"--map: {exc}") from None
    except importing.MappingError as exc:
        raise fail(f"{file}: {exc} (say which with --map COLUMN=FIELD)") from None
    locations, sessions = _open()
    place = _location(locations, location)
    now = datetime.now(UTC)
    typer.echo(f"{what} from {file} into {place.id} (preset {preset})")
    typer.echo("columns: " + ", ".join(f"{name} <- {column!r}" for name, column in used))
    failed: importing.BatchFailed | importing.CsvError | None = None
    if dry_run:
        importer = (
            importing.import_patients if what == "patients" else importing.import_appointments
        )
        # One transaction for the whole file, rolled back.
        with sessions() as session:
            try:
                report = importer(session, place, table.rows, columns, now)
            except importing.CsvError as exc:
                raise fail(f"{file}: {exc}") from None
            session.rollback()
    else:
        # Committed in batches: the write lock is never held for long, and progress shows.
        started = time.monotonic()

        def progress(so_far: importing.ImportReport) -> None:
            typer.echo(
                f"  {so_far.rows} rows read, {so_far.rows - so_far.skipped} saved "
                f"({time.monotonic() - started:.1f} s)",
                err=True,
            )

        report = importing.ImportReport(kind=what)
        try:
            report = importing.import_in_batches(
                sessions, place, what, table.rows, columns, now, progress=progress
            )
        except importing.BatchFailed as exc:
            failed, report = exc, exc.report
        except importing.CsvError as exc:
            failed = exc
    typer.echo(("dry run, nothing saved: " if dry_run else "") + report.summary())
    for problem in report.problems:
        typer.echo(str(problem))
    if failed is not None:
        raise fail(f"{file}: {failed}", code=1)


@records_app.command("export")
def export(
    location: Annotated[
        list[str], typer.Option("--location", "-l", help="Location id (repeatable).")
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Export patient records as CSV (deleted patients are never included)."""
    locations, sessions = _open()
    ids = [_location(locations, location_id).id for location_id in location]
    count = 0
    with sessions() as session:
        rows = exporting.export_patients(session, ids, datetime.now(UTC))

        def counted() -> Any:
            nonlocal count
            for row in rows:
                count += 1
                yield row

        lines = exporting.csv_lines(counted(), exporting.EXPORT_COLUMNS)
        if output is None:
            for line in lines:
                sys.stdout.write(line)
        else:
            try:
                with output.open("w", encoding="utf-8", newline="") as out:
                    out.writelines(lines)
            except OSError as exc:
                raise fail(f"--output: {output}: cannot be written: {exc.strerror}") from None
    typer.echo(f"exported {count} patient(s)", err=True)


@records_app.command("delete")
def delete(
    patient_id: Annotated[int, typer.Argument(help="The patient's id (see export).")],
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: this cannot be undone.")] = False,
    stop_texts: Annotated[
        bool,
        typer.Option(
            "--stop-texts",
            help="Also never text this number again (kept as a hash of the number). "
            "Always so when the patient had opted out.",
        ),
    ] = False,
) -> None:
    """Erase a patient's personal data on request (their rows stay, anonymous, for counts)."""
    from ringback.db import transaction

    if not yes:
        raise fail(f"patient {patient_id}: not deleted; add --yes to confirm (cannot be undone)")
    _, sessions = _open()
    try:
        with transaction(sessions) as session:
            report = erasure.delete_patient(
                session, patient_id, datetime.now(UTC), stop_texts=stop_texts
            )
    except erasure.RecordError as exc:
        raise fail(str(exc)) from None
    typer.echo(report.summary())
