"""``ringback calendars`` through a real subprocess, against a real Radicale."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.booking.radicale_server import RadicaleCalendar
from tests.support.booking import scheduling
from tests.support.cli import DEMO, ringback


def config_with(tmp_path: Path, url: str, username: str) -> Path:
    config = yaml.safe_load(DEMO.read_text())
    scheduling()(config)
    config["locations"][0]["providers"][0]["calendar"] = {
        "url": url,
        "username": username,
        "password_env": "CLI_CALDAV_PW",
    }
    path = tmp_path / "locations.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_calendars_check_says_which_calendar_works(
    tmp_path: Path, radicale: RadicaleCalendar
) -> None:
    path = config_with(tmp_path, radicale.url, radicale.username)
    env = {"RINGBACK_CONFIG": str(path), "RINGBACK_DATA_DIR": str(tmp_path)}
    ok = ringback("calendars", "check", env={**env, "CLI_CALDAV_PW": radicale.password})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("glow-downtown/anna: ok")
    wrong = ringback("calendars", "check", env={**env, "CLI_CALDAV_PW": "nope"})
    assert wrong.returncode == 1
    assert "glow-downtown/anna: FAILED: calendar refused the login" in wrong.stdout
    assert "nope" not in wrong.stdout + wrong.stderr


def test_calendars_check_names_a_missing_password_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLI_CALDAV_PW", raising=False)
    path = config_with(tmp_path, "http://127.0.0.1:9/cal/", "anna")
    result = ringback("calendars", "check", env={"RINGBACK_CONFIG": str(path)})
    assert result.returncode == 1
    assert "environment variable CLI_CALDAV_PW is not set" in result.stdout


def test_calendars_feeds_prints_a_signed_url_per_provider(tmp_path: Path) -> None:
    path = config_with(tmp_path, "http://127.0.0.1:9/cal/", "anna")
    env = {
        "RINGBACK_CONFIG": str(path),
        "RINGBACK_DATA_DIR": str(tmp_path),
        "RINGBACK_SECRET_KEY": "test-secret",
        "RINGBACK_PUBLIC_URL": "https://spa.example",
        "RINGBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}",
        "RINGBACK_QUEUE_URL": f"sqlite:///{tmp_path / 'queue.sqlite'}",
    }
    result = ringback("calendars", "feeds", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith(
        "Glow Med Spa (everyone): https://spa.example/calendar/glow-downtown/location.ics?token="
    )
    assert any("/calendar/glow-downtown/anna.ics?token=" in line for line in lines)
    assert any("/calendar/glow-downtown/bea.ics?token=" in line for line in lines)


def test_calendars_feeds_names_an_unknown_location(tmp_path: Path) -> None:
    result = ringback("calendars", "feeds", "--location", "glow-nowhere")
    assert result.returncode == 2
    assert "--location: no location 'glow-nowhere' (known: glow-downtown, glow-westside)" in (
        result.stderr
    )
