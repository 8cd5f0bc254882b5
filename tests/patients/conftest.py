"""Patient records tests: the domain on a migrated database (SQLite or PostgreSQL, as the
rest of the suite), with the demo spa's locations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location, Locations, load_locations
from ringback.db import make_engine, make_sessionmaker
from ringback.patients.importing import (
    ColumnMapping,
    CsvTable,
    ImportReport,
    Kind,
    import_in_batches,
    read_csv,
)
from ringback.patients.importing import import_appointments as _import_appointments
from ringback.patients.importing import import_patients as _import_patients
from tests.conftest import DEMO_LOCATIONS, OPEN_HOURS


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(scope="session")
def locations() -> Locations:
    return load_locations(DEMO_LOCATIONS)


@pytest.fixture
def downtown(locations: Locations) -> Location:
    found = locations.get("glow-downtown")
    assert found is not None
    return found


def csv_text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def run_import(
    sessions: sessionmaker[Session],
    location: Location,
    text: str,
    *,
    kind: Kind = "patients",
    preset: str = "generic",
    overrides: tuple[str, ...] = (),
) -> ImportReport:
    """Import ``text`` the way the CLI does: read, map, save in committed batches (of 3
    rows here, so the tests' small files span several), and check that the row-by-row
    path (a dry run's) reports the same."""
    table: CsvTable = read_csv(text)
    mapping = ColumnMapping.preset(kind, preset).overridden(overrides)
    importer = _import_patients if kind == "patients" else _import_appointments
    with sessions() as session:
        expected = importer(session, location, table.rows, mapping, OPEN_HOURS)
        session.rollback()
    report = import_in_batches(
        sessions, location, kind, table.rows, mapping, OPEN_HOURS, batch_rows=3
    )
    assert report == expected
    return report
