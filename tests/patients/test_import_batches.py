"""Imports commit in batches: progress shows, a failed batch names its lines, and running
the same file again finishes the job without duplicating anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location
from ringback.models import Appointment, Patient
from ringback.patients import importing
from tests.conftest import OPEN_HOURS
from tests.patients.test_cli import Env, count
from tests.support.cli import ringback


@pytest.fixture
def env(database_url: str) -> Env:
    return {"RINGBACK_DATABASE_URL": database_url, "RINGBACK_LOG_LEVEL": "WARNING"}


def patients_csv(path: Path, rows: int, *, start: int = 0) -> Path:
    lines = ["first_name,last_name,phone,external_id"]
    lines += [f"P{i},Batch,+1213{5000000 + i:07d},X{i}" for i in range(start, start + rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_large_file_is_saved_in_batches_with_progress_and_again_changes_nothing(
    tmp_path: Path,
    env: Env,
    database_url: str,
) -> None:
    path = patients_csv(tmp_path / "many.csv", 1203)
    args = ("patients", "import", str(path), "--location", "glow-downtown")
    first = ringback(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "1203 rows: 1203 created, 0 updated, 0 unchanged, 0 skipped" in first.stdout
    progress = [line.strip() for line in first.stderr.splitlines() if "rows read" in line]
    assert [line.split(" rows read")[0] for line in progress] == ["500", "1000", "1203"]
    assert count(database_url, Patient) == 1203
    again = ringback(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert "1203 rows: 0 created, 0 updated, 1203 unchanged, 0 skipped" in again.stdout
    assert count(database_url, Patient) == 1203


def test_a_failed_batch_names_its_lines_keeps_the_ones_before_and_resumes(
    sessions: sessionmaker[Session],
    downtown: Location,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = patients_csv(tmp_path / "five.csv", 5).read_text()
    mapping = importing.ColumnMapping.preset("patients")
    real = importing._Importer.save_patients_bulk
    calls = []

    def fails_second(self: Any, items: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return real(self, items)

    monkeypatch.setattr(importing._Importer, "save_patients_bulk", fails_second)
    rows = importing.read_csv(text).rows
    with pytest.raises(importing.BatchFailed) as failed:
        importing.import_in_batches(
            sessions, downtown, "patients", rows, mapping, OPEN_HOURS, batch_rows=2
        )
    assert (failed.value.first_line, failed.value.last_line) == (4, 5)
    assert "lines 4-5 were not saved (RuntimeError: the disk is full)" in str(failed.value)
    assert failed.value.report.created == 2
    with sessions() as session:
        assert session.scalar(select(func.count(Patient.id))) == 2

    monkeypatch.setattr(importing._Importer, "save_patients_bulk", real)
    report = importing.import_in_batches(
        sessions, downtown, "patients", rows, mapping, OPEN_HOURS, batch_rows=2
    )
    assert (report.created, report.unchanged, report.updated) == (3, 2, 0)
    with sessions() as session:
        assert session.scalar(select(func.count(Patient.id))) == 5


def test_appointments_in_batches_match_their_patients_and_never_duplicate(
    sessions: sessionmaker[Session], downtown: Location
) -> None:
    lines = ["phone,first_name,external_id,start,service"]
    for i in range(7):
        # Two visits each for some patients, in different batches.
        lines.append(f"+1213555{i % 4:04d},Pat{i % 4},A{i},2026-12-0{1 + i % 5} 10:00,Botox")
    rows = importing.read_csv("\n".join(lines) + "\n").rows
    mapping = importing.ColumnMapping.preset("appointments")
    report = importing.import_in_batches(
        sessions, downtown, "appointments", rows, mapping, OPEN_HOURS, batch_rows=3
    )
    assert (report.created, report.patients_created) == (7, 4)
    again = importing.import_in_batches(
        sessions, downtown, "appointments", rows, mapping, OPEN_HOURS, batch_rows=3
    )
    assert (again.created, again.unchanged, again.patients_created) == (0, 7, 0)
    with sessions() as session:
        assert session.scalar(select(func.count(Appointment.id))) == 7
        assert session.scalar(select(func.count(Patient.id))) == 4
