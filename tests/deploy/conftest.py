"""Fresh, empty databases of the backend under test, for restores and deployment runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import DATABASE, PG_URL


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Make new empty databases (no tables at all): a new file, or a new PostgreSQL database."""
    made: list[str] = []
    admin = (
        sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT") if DATABASE == "postgres" else None
    )

    def make() -> str:
        name = f"ringback_r_{uuid.uuid4().hex[:10]}"
        if admin is None:
            return f"sqlite:///{tmp_path / name}.db"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return PG_URL.rsplit("/", 1)[0] + "/" + name

    yield make
    if admin is not None:
        with admin.connect() as conn:
            for name in made:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
