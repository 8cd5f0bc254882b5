"""``ringback init``: a starter locations file and the owner account, or nothing at all."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ringback.cli.onboarding import InitError, location_id, parse_hours
from tests.support.cli import ringback

FLAGS = [
    "--no-input",
    "--name",
    "Bloom Aesthetics",
    "--number",
    "(415) 555-0142",
    "--timezone",
    "America/Chicago",
    "--hours",
    "mon-thu 09:00-18:00; fri 09:00-12:00,13:00-17:00; sat 10:00-14:00",
    "--front-desk",
    "415-555-0143",
    "--owner-email",
    "Owner@Bloom.example",
    "--owner-name",
    "Ana Ruiz",
    "--password-stdin",
]


def env_for(tmp_path: Path) -> dict[str, str]:
    return {
        "RINGBACK_CONFIG": str(tmp_path / "ringback.yaml"),
        "RINGBACK_DATA_DIR": str(tmp_path / "var"),
        "RINGBACK_DATABASE_URL": "",
    }


def test_init_writes_a_valid_starter_file_and_the_owner_account(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    result = ringback("init", *FLAGS, stdin="correct horse battery\n", env=env)
    assert result.returncode == 0, result.stderr
    assert "created the owner owner@bloom.example" in result.stdout
    assert "ringback check-config --strict" in result.stdout

    data = yaml.safe_load((tmp_path / "ringback.yaml").read_text())
    (location,) = data["locations"]
    assert location["id"] == "bloom-aesthetics"
    assert location["phone_number"] == "+14155550142"
    assert location["front_desk"] == ["+14155550143"]
    assert location["timezone"] == "America/Chicago"
    assert location["hours"] == {
        "mon": "09:00-18:00",
        "tue": "09:00-18:00",
        "wed": "09:00-18:00",
        "thu": "09:00-18:00",
        "fri": "09:00-12:00,13:00-17:00",
        "sat": "10:00-14:00",
        "sun": "closed",
    }
    assert "Consultation" in {s["name"] for s in location["services"]}

    described = ringback("check-config", env=env)
    assert described.returncode == 0, described.stderr
    assert "bloom-aesthetics: Bloom Aesthetics on +14155550142" in described.stdout
    listed = ringback("users", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "owner@bloom.example\towner\tall locations" in listed.stdout

    again = ringback("init", *FLAGS, stdin="correct horse battery\n", env=env)
    assert again.returncode == 2
    assert "already exists (use --force to replace it)" in again.stderr


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--number", "12", "--number: expected a phone number like +13105550100, got '12'"),
        ("--timezone", "Mars/Olympus", "--timezone: expected an IANA time zone"),
        ("--hours", "weekdays 9-5", "expected 'HH:MM-HH:MM'"),
        ("--hours", "mon-fri nine to five", "--hours: expected days then hours"),
        ("--hours", "mon-fri 18:00-09:00", "expected the end after the start"),
        ("--owner-email", "not-an-email", "email: expected an address like name@clinic.example"),
    ],
)
def test_init_refuses_bad_input_and_writes_nothing(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    flags = list(FLAGS)
    flags[flags.index(flag) + 1] = value
    result = ringback("init", *flags, stdin="correct horse battery\n", env=env_for(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "ringback.yaml").exists()
    assert not list(tmp_path.glob(".ringback-init-*"))


def test_init_with_a_weak_password_or_missing_flag_writes_nothing(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    weak = ringback("init", *FLAGS, stdin="short\n", env=env)
    assert weak.returncode == 2
    assert "password: use at least" in weak.stderr
    missing = ringback("init", "--no-input", "--name", "Bloom", env=env)
    assert missing.returncode == 2
    assert "--number: required with --no-input" in missing.stderr
    assert not (tmp_path / "ringback.yaml").exists()
    assert not (tmp_path / "var").exists() or not list((tmp_path / "var").iterdir())


def test_init_asks_when_run_interactively(tmp_path: Path) -> None:
    answers = "\n".join(
        [
            "Glow & Co. Spa",
            "+13105550177",
            "",  # time zone: the default
            "",  # hours: the default
            "me@glow.example",
            "Dr. Kim",
            "correct horse battery",
            "correct horse battery",
        ]
    )
    result = ringback("init", stdin=answers + "\n", env=env_for(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    (location,) = yaml.safe_load((tmp_path / "ringback.yaml").read_text())["locations"]
    assert location["id"] == "glow-co-spa"
    assert location["timezone"] == "America/Los_Angeles"
    assert location["hours"]["sat"] == "10:00-16:00"
    assert location["hours"]["sun"] == "closed"


def test_hours_and_ids_as_units() -> None:
    assert parse_hours("mon,wed 10:00-14:00")["wed"] == "10:00-14:00"
    assert parse_hours("mon,wed 10:00-14:00")["tue"] == "closed"
    assert parse_hours("sat closed; sun 11:00-15:00")["sun"] == "11:00-15:00"
    with pytest.raises(InitError, match="runs backwards"):
        parse_hours("fri-mon 09:00-17:00")
    with pytest.raises(InitError, match="expected days among"):
        parse_hours("funday 09:00-17:00")
    assert parse_hours("weekdays 09:00-17:00")["fri"] == "09:00-17:00"
    assert parse_hours("weekdays 09:00-17:00")["sat"] == "closed"
    assert location_id("Clínica Bella  Piel!") == "clinica-bella-piel"
    assert location_id("???") == "main"
