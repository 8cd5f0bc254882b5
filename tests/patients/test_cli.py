"""``ringback patients`` through its public edge: a real subprocess on the test database."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from ringback.models import Appointment, Patient
from tests.support.cli import ringback

Env = dict[str, str]


@pytest.fixture
def env(database_url: str) -> Env:
    return {"RINGBACK_DATABASE_URL": database_url, "RINGBACK_LOG_LEVEL": "WARNING"}


def count(database_url: str, model: type[Patient] | type[Appointment]) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


def write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_import_reports_bad_rows_by_line_and_imports_the_good(
    tmp_path: Path, env: Env, database_url: str
) -> None:
    clients = write(
        tmp_path / "clients.csv",
        "First Name,Last Name,Mobile Phone,Client ID",
        "Ana,Lopez,(213) 555-0601,B1",
        "Bad,Number,555,B2",
        "Ben,Ng,213-555-0602,B3",
    )
    args = ("patients", "import", str(clients), "--location", "glow-downtown")
    dry = ringback(*args, "--preset", "boulevard", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert (
        "dry run, nothing saved: 3 rows: 2 created, 0 updated, 0 unchanged, 1 skipped" in dry.stdout
    )
    assert count(database_url, Patient) == 0

    first = ringback(*args, "--preset", "boulevard", env=env)
    assert first.returncode == 0, first.stderr
    assert "columns: phone <- 'Mobile Phone', first_name <- 'First Name'" in first.stdout
    assert "3 rows: 2 created, 0 updated, 0 unchanged, 1 skipped" in first.stdout
    assert "line 3: phone: not a valid phone number ('555')" in first.stdout
    again = ringback(*args, "--preset", "boulevard", env=env)
    assert "3 rows: 0 created, 0 updated, 2 unchanged, 1 skipped" in again.stdout
    assert count(database_url, Patient) == 2

    visits = write(
        tmp_path / "visits.csv",
        "Cell,When,Treatment",
        "2135550601,12/03/2026 2:30 PM,tox",
        "2135550603,someday,Botox",
    )
    booked = ringback(
        "patients",
        "import",
        str(visits),
        "--location",
        "glow-downtown",
        "--kind",
        "appointments",
        "--map",
        "Cell=phone",
        "--map",
        "When=start",
        "--map",
        "Treatment=service",
        env=env,
    )
    assert booked.returncode == 0, booked.stderr
    assert "2 rows: 1 created, 0 updated, 0 unchanged, 1 skipped; 0 new patients" in booked.stdout
    assert "line 3: start: expected a date and time" in booked.stdout
    assert count(database_url, Appointment) == 1


def test_import_refuses_what_it_cannot_read_naming_it(tmp_path: Path, env: Env) -> None:
    clients = write(tmp_path / "clients.csv", "phone,first_name", "2135550611,Ana")
    cells = write(tmp_path / "cells.csv", "Cell,first_name", "2135550611,Ana")
    base = ("patients", "import", str(clients), "--location", "glow-downtown")
    cases = {
        ("patients", "import", str(tmp_path / "missing.csv"), "--location", "glow-downtown"): (
            "missing.csv: file not found"
        ),
        (*base, "--map", "Cell=phone"): "--map: column 'Cell' (for phone): not in the file; "
        "its columns are 'phone', 'first_name'",
        (*base, "--map", "first_name=nickname"): "--map 'first_name=nickname': "
        "unknown field 'nickname'",
        (*base, "--preset", "acme"): "--preset: no preset 'acme'",
        (*base, "--kind", "invoices"): "--kind: expected patients or appointments, got 'invoices'",
        ("patients", "import", str(cells), "--location", "glow-downtown", "--preset", "vagaro"): (
            "cells.csv: phone: no column for it (tried 'Cell Phone', 'Mobile', 'Mobile Phone', "
            "'Phone', 'Home Phone'); the file's columns are 'Cell', 'first_name' "
            "(say which with --map COLUMN=FIELD)"
        ),
        ("patients", "import", str(clients), "--location", "nowhere"): "--location: "
        "no location 'nowhere'",
    }
    for args, message in cases.items():
        result = ringback(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    empty = write(tmp_path / "empty.csv", "")
    result = ringback("patients", "import", str(empty), "--location", "glow-downtown", env=env)
    assert result.returncode == 2
    assert "empty.csv: the file is empty: expected a header row" in result.stderr
    directory = ringback(
        "patients", "import", str(tmp_path), "--location", "glow-downtown", env=env
    )
    assert directory.returncode == 2
    assert "cannot be read" in directory.stderr


def test_windows_exports_read_too(tmp_path: Path, env: Env, database_url: str) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes("phone;first_name\r\n2135550621;Zoë\r\n".encode("cp1252"))
    result = ringback("patients", "import", str(path), "--location", "glow-downtown", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 rows: 1 created" in result.stdout
    engine = create_engine(database_url)
    with engine.connect() as connection:
        assert connection.scalar(select(Patient.first_name)) == "Zoë"
    engine.dispose()


def test_export_and_delete(tmp_path: Path, env: Env, database_url: str) -> None:
    clients = write(
        tmp_path / "clients.csv", "phone,first_name", "2135550631,Ana", "2135550632,Ben"
    )
    assert (
        ringback(
            "patients", "import", str(clients), "--location", "glow-downtown", env=env
        ).returncode
        == 0
    )
    out = tmp_path / "out.csv"
    exported = ringback(
        "patients", "export", "--location", "glow-downtown", "--output", str(out), env=env
    )
    assert exported.returncode == 0, exported.stderr
    assert "exported 2 patient(s)" in exported.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert [(r["phone"], r["first_name"], r["status"]) for r in rows] == [
        ("+12135550631", "Ana", "returning"),
        ("+12135550632", "Ben", "returning"),
    ]
    ana = rows[0]["id"]

    refused = ringback("patients", "delete", ana, env=env)
    assert refused.returncode == 2
    assert f"patient {ana}: not deleted; add --yes to confirm" in refused.stderr
    deleted = ringback("patients", "delete", ana, "--yes", env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert f"patient {ana}: personal data erased" in deleted.stdout
    twice = ringback("patients", "delete", ana, "--yes", env=env)
    assert twice.returncode == 2
    assert f"patient {ana}: already deleted on" in twice.stderr
    nobody = ringback("patients", "delete", "999999", "--yes", env=env)
    assert nobody.returncode == 2
    assert "patient 999999: not found" in nobody.stderr

    to_stdout = ringback("patients", "export", "--location", "glow-downtown", env=env)
    assert to_stdout.returncode == 0
    assert "Ana" not in to_stdout.stdout
    assert "+12135550632,Ben" in to_stdout.stdout
    # The export reads back with the generic preset: nothing new, nothing changed.
    (tmp_path / "back.csv").write_text(to_stdout.stdout, encoding="utf-8")
    back = ringback(
        "patients", "import", str(tmp_path / "back.csv"), "--location", "glow-downtown", env=env
    )
    assert "1 rows: 0 created, 0 updated, 1 unchanged, 0 skipped" in back.stdout
    assert count(database_url, Patient) == 2  # the deleted row stays, anonymous
