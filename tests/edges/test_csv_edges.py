"""A patient import with a quote that never closes, or a NUL byte, in a row: that row is
reported by its line and skipped, and every other row still imports (the rows after a
stray quote are never merged into one value). Through ``ringback patients import`` on a
migrated database, streamed and committed in batches."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from ringback.models import Patient
from ringback.patients import importing
from tests.support.cli import ringback

HEADER = "first_name,last_name,phone,notes"


@pytest.fixture
def env(database_url: str) -> dict[str, str]:
    return {"RINGBACK_DATABASE_URL": database_url, "RINGBACK_LOG_LEVEL": "WARNING"}


def patients(database_url: str) -> dict[str, str]:
    """Phone -> first name of every patient saved."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                phone: first
                for phone, first in connection.execute(select(Patient.phone, Patient.first_name))
            }
    finally:
        engine.dispose()


def import_file(path: Path, env: dict[str, str], *extra: str) -> tuple[int, str]:
    result = ringback(
        "patients", "import", str(path), "--location", "glow-downtown", *extra, env=env
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, result.stdout


def test_an_unterminated_quote_is_its_rows_error_and_the_rest_import(
    tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    path = tmp_path / "clients.csv"
    path.write_text(
        "\n".join(
            [
                HEADER,
                'Ana,Lopez,"(213) 555-0701,first visit',  # line 2: the quote never closes
                "Ben,Ng,213-555-0702,",
                'Cy,Oh,213-555-0703,"a note\nover two lines"',  # lines 4-5: a real quoted note
                "Dee,Ray,213-555-0705,",
                'Eve,"Stray,213-555-0706,',  # line 7: closed by the quote on line 8
                'Fay,Li,213-555-0707,"said ""hi"""',
                "Gus,Yu,213-555-0708,",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    code, out = import_file(path, env)
    assert code == 0, out
    assert "7 rows: 5 created, 0 updated, 0 unchanged, 2 skipped" in out
    assert 'line 2: row: a quote opens a value and never closes (a stray " ?)' in out
    assert 'line 7: row: a quote opens a value and never closes (a stray " ?)' in out
    saved = patients(database_url)
    assert sorted(saved.values()) == ["Ben", "Cy", "Dee", "Fay", "Gus"]


def test_a_nul_byte_is_its_rows_error_and_the_rest_import(
    tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(
        (
            HEADER
            + "\nAna,Lopez,213-555-0711,\nB\x00en,Ng,213-555-0712,\nCy,Oh,213-555-0713,\x00\n"
            + "Dee,Ray,213-555-0714,\n"
        ).encode()
    )
    code, out = import_file(path, env)
    assert code == 0, out
    assert "4 rows: 2 created, 0 updated, 0 unchanged, 2 skipped" in out
    assert "line 3: row: contains a NUL byte (\\0): is this a text CSV file?" in out
    assert "line 4: row: contains a NUL byte" in out
    assert sorted(patients(database_url).values()) == ["Ana", "Dee"]


def test_a_quote_left_open_at_the_end_and_a_dry_run_say_the_same(
    tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    path = tmp_path / "clients.csv"
    path.write_text(
        f'{HEADER}\nAna,Lopez,213-555-0721,\nBen,Ng,213-555-0722,"never closed\n', encoding="utf-8"
    )
    code, out = import_file(path, env, "--dry-run")
    assert code == 0, out
    assert "dry run, nothing saved: 2 rows: 1 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert "line 3: row: a quote opens a value and never closes" in out
    assert patients(database_url) == {}
    code, out = import_file(path, env)
    assert "2 rows: 1 created" in out
    assert list(patients(database_url).values()) == ["Ana"]


def test_a_broken_header_refuses_the_file_naming_the_line(
    tmp_path: Path, env: dict[str, str]
) -> None:
    path = tmp_path / "clients.csv"
    path.write_bytes(b"first_name,ph\x00one\nAna,213-555-0731\n")
    result = ringback("patients", "import", str(path), "--location", "glow-downtown", env=env)
    assert result.returncode == 2
    assert "line 1: the header row contains a NUL byte" in result.stderr


# --- the reader, as an invariant -------------------------------------------------------------

plain = st.text(st.characters(codec="utf-8", exclude_characters='"\x00\r\n,'), max_size=8)
quoted = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12).map(
    lambda value: '"' + value.replace('"', '""') + '"'
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(plain | quoted, min_size=3, max_size=3), min_size=1, max_size=12),
    spoilt=st.data(),
)
def test_one_spoilt_row_never_takes_another_with_it(
    rows: list[list[str]], spoilt: st.DataObject
) -> None:
    """Whatever the other rows hold (commas, quotes, line breaks inside quoted values), a
    row spoilt by a stray quote or a NUL costs that row alone; every other row reads back
    exactly as written."""
    lines = [",".join(row) for row in rows]
    bad = spoilt.draw(st.integers(0, len(lines) - 1))
    how = spoilt.draw(st.sampled_from(["quote", "nul"]))
    lines[bad] = ('"' if how == "quote" else "\x00") + "spoilt,x,y"
    text = "a,b,c\n" + "\n".join(lines) + "\n"
    read = list(importing.stream_csv(text).rows)
    unreadable = [row for row in read if row.unreadable]
    assert len(unreadable) == 1
    expected = [[_value(cell) for cell in row] for n, row in enumerate(rows) if n != bad]
    got = [[row["a"], row["b"], row["c"]] for row in read if not row.unreadable]
    # Rows that were all blank are skipped by the reader, as before.
    assert got == [row for row in expected if any(cell.strip() for cell in row)]


def _value(cell: str) -> str:
    return cell[1:-1].replace('""', '"') if cell.startswith('"') else cell
