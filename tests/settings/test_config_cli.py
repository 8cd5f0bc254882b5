"""The settings from the command line: ``ringback init`` stores them in the database,
``ringback config export`` / ``import`` round-trip them as YAML with the audit log kept,
and every command reads them from the database when no locations file is given."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
import yaml

from tests.support.cli import DEMO

INIT = [
    "init",
    "--no-input",
    "--name",
    "Bloom Aesthetics",
    "--number",
    "(415) 555-0142",
    "--timezone",
    "America/Chicago",
    "--hours",
    "mon-fri 09:00-18:00; sat 10:00-14:00",
    "--owner-email",
    "owner@bloom.example",
    "--owner-name",
    "Ana Ruiz",
    "--password-stdin",
]


def run(
    tmp_path: Path, *args: str, stdin: str | None = None, **extra: str
) -> subprocess.CompletedProcess[str]:
    """``ringback`` with no locations file: RINGBACK_CONFIG unset, no ./ringback.yaml."""
    env = {k: v for k, v in os.environ.items() if k != "RINGBACK_CONFIG"}
    env.update(
        {
            "RINGBACK_DATA_DIR": str(tmp_path / "var"),
            "RINGBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'settings.db'}",
            **extra,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "ringback.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )


def audit(tmp_path: Path) -> list[tuple[str, str, str]]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'settings.db'}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT actor, location_id, section FROM settings_changes ORDER BY id")
        ).all()
    engine.dispose()
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def test_init_stores_the_settings_in_the_database_and_commands_read_them(tmp_path: Path) -> None:
    none_yet = run(tmp_path, "check-config")
    assert none_yet.returncode == 2
    assert "no settings in the database and no locations file: run `ringback init`" in (
        none_yet.stderr
    )
    made = run(tmp_path, *INIT, stdin="correct horse battery\n")
    assert made.returncode == 0, made.stderr
    assert "wrote the database for Bloom Aesthetics (bloom-aesthetics)" in made.stdout
    assert "/staff/settings" in made.stdout
    assert not (tmp_path / "ringback.yaml").exists()
    described = run(tmp_path, "check-config")
    assert described.returncode == 0, described.stderr
    assert "bloom-aesthetics: Bloom Aesthetics on +14155550142" in described.stdout
    assert audit(tmp_path)[0] == (
        "ringback init (owner@bloom.example)",
        "bloom-aesthetics",
        "location added",
    )
    again = run(tmp_path, *INIT, stdin="correct horse battery\n")
    assert again.returncode == 2
    assert "the database already holds settings" in again.stderr


def test_export_then_import_round_trips_and_import_checks_like_check_config(
    tmp_path: Path,
) -> None:
    first = run(tmp_path, "config", "import", str(DEMO))
    assert first.returncode == 0, first.stderr
    assert "imported" in first.stdout
    assert "2 location(s), settings version 1" in first.stdout
    exported = run(tmp_path, "config", "export")
    assert exported.returncode == 0, exported.stderr
    data = yaml.safe_load(exported.stdout)
    assert [loc["id"] for loc in data["locations"]] == ["glow-downtown", "glow-westside"]
    assert data["locations"][0]["services"][0] == {
        "name": "Botox",
        "aliases": ["tox", "dysport", "wrinkle relaxer", "xeomin"],
        "price": 480,
    }
    back = tmp_path / "exported.yaml"
    back.write_text(exported.stdout)
    same = run(tmp_path, "config", "import", str(back))
    assert same.returncode == 0, same.stderr
    assert "settings version 1 (no change)" in same.stdout
    assert (
        run(tmp_path, "config", "export").stdout.split("\n", 2)[2]
        == (exported.stdout.split("\n", 2)[2])
    )

    data["locations"][0]["ring_seconds"] = 25
    data["locations"][1]["name"] = "Glow West"
    back.write_text(yaml.safe_dump(data))
    dry = run(tmp_path, "config", "import", "--dry-run", str(back))
    assert "would replace the stored settings" in dry.stdout
    changed = run(tmp_path, "config", "import", str(back))
    assert "settings version 2" in changed.stdout
    logged = audit(tmp_path)[-2:]
    count = len(audit(tmp_path))
    assert [(loc, section) for _, loc, section in logged] == [
        ("glow-downtown", "ring_seconds"),
        ("glow-westside", "name"),
    ]
    assert "ringback config import exported.yaml" in logged[0][0]

    data["locations"][0]["ring_seconds"] = "abc"
    back.write_text(yaml.safe_dump(data))
    bad = run(tmp_path, "config", "import", str(back))
    assert bad.returncode == 2
    assert (
        f"{back}: locations[0](glow-downtown).ring_seconds: Input should be a valid integer"
        in bad.stderr
    )
    assert "(version 2)" in run(tmp_path, "config", "export").stdout.splitlines()[0]
    assert len(audit(tmp_path)) == count  # nothing stored, nothing logged


def test_a_file_in_ringback_config_is_applied_at_start_and_import_then_refuses(
    tmp_path: Path,
) -> None:
    from ringback.cli.support import adopt_settings, load_config, open_database
    from ringback.config import load_settings

    os.environ["RINGBACK_CONFIG"] = str(DEMO)
    os.environ["RINGBACK_DATABASE_URL"] = f"sqlite:///{tmp_path / 'settings.db'}"
    try:
        settings, locations = load_config(configure_logs=False)
        sessions = open_database(settings)
        adopt_settings(settings, sessions, locations)
        adopt_settings(settings, sessions, locations)  # an unchanged file writes nothing
        refused = run(tmp_path, "config", "import", str(DEMO))
        assert refused.returncode == 2
        assert f"settings are managed by the file {DEMO}" in refused.stderr
        taken = run(tmp_path, "config", "import", "--take-over", str(DEMO))
        assert taken.returncode == 0, taken.stderr
        assert load_settings().config == DEMO
    finally:
        del os.environ["RINGBACK_CONFIG"]
        del os.environ["RINGBACK_DATABASE_URL"]
    sections = [section for _, _, section in audit(tmp_path)]
    assert sections == ["location added", "location added"]
