"""The ringback command through its public edge: a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

from ringback.schema import head_revision
from tests.support.cli import DEMO, ringback


def test_understand_one_message() -> None:
    result = ringback(
        "understand",
        "--location",
        "glow-downtown",
        "--now",
        "2026-11-24T10:15:00-08:00",
        "bottox thurs after 5, first time",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {
        "intents",
        "treatments",
        "times",
        "timing",
        "patient",
        "choice",
        "language",
    }
    assert data["treatments"] == ["Botox"]
    assert data["patient"] == "new"
    assert data["times"] == [
        {"start": "2026-11-26T17:00:00-08:00", "end": "2026-11-26T20:00:00-08:00"}
    ]


def test_understand_json_lines_in_order() -> None:
    lines = "\n".join(
        json.dumps(item)
        for item in (
            {"text": "STOP", "now": "2026-11-24T10:15:00-08:00"},
            {"text": "quiero relleno de labios mañana", "now": "2026-11-24T10:15:00-08:00"},
            {"text": "2", "now": "2026-11-24T10:15:00-08:00"},
        )
    )
    result = ringback("understand", "--location", "glow-downtown", stdin=lines + "\n")
    assert result.returncode == 0, result.stderr
    outputs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [o["intents"] for o in outputs] == [["stop"], [], ["choice"]]
    assert outputs[1]["language"] == "es"
    assert outputs[1]["treatments"] == ["Filler"]
    assert outputs[2]["choice"] == 2


def test_understand_bad_input_is_a_clear_error() -> None:
    unknown = ringback("understand", "--location", "nowhere", "hi")
    assert unknown.returncode == 2
    assert "--location: no location 'nowhere'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_now = ringback("understand", "--location", "glow-downtown", "--now", "tuesday", "hi")
    assert bad_now.returncode == 2
    assert "--now: expected an ISO-8601 time" in bad_now.stderr
    bad_line = ringback(
        "understand", "--location", "glow-downtown", stdin='{"text": "ok"}\nnot json\n'
    )
    assert bad_line.returncode == 2
    assert "stdin line 2: not JSON" in bad_line.stderr


def test_bad_config_fails_with_file_key_and_expectation(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text(
        "locations:\n  - id: glow\n    name: Glow\n    phone_number: '+13105550100'\n    ring_seconds: lots\n"
    )
    result = ringback("check-config", env={"RINGBACK_CONFIG": str(config)})
    assert result.returncode == 2
    assert (
        f"{config}: locations[0](glow).ring_seconds: Input should be a valid integer"
        in result.stderr
    )
    assert "Traceback" not in result.stderr
    serve = ringback("serve", env={"RINGBACK_CONFIG": str(config), "TWILIO_AUTH_TOKEN": "x"})
    assert serve.returncode == 2
    assert "ring_seconds" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_bad_environment_fails_clearly() -> None:
    result = ringback("check-config", env={"RINGBACK_WORKERS": "zero"})
    assert result.returncode == 2
    assert "RINGBACK_WORKERS" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_describes_the_locations() -> None:
    result = ringback("check-config")
    assert result.returncode == 0, result.stderr
    assert (
        "glow-downtown: Glow Med Spa on +13105550100 (twilio), rings 1 number(s), 7 services, "
        "booking link" in result.stdout
    )
    assert (
        "glow-westside: Glow Med Spa Westside on +13105550200 (twilio), forwarded-only, "
        "3 services, hands bookings to staff" in result.stdout
    )


def test_check_config_says_which_locations_book_themselves(tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(DEMO.read_text())
    config["locations"][0].pop("booking_url")
    config["locations"][0]["providers"] = [
        {"id": "maya", "name": "Maya", "calendar": {"url": "https://cal.example/maya/"}},
        {"id": "lena", "name": "Lena"},
    ]
    path = tmp_path / "locations.yaml"
    path.write_text(yaml.safe_dump(config))
    result = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr
    assert "7 services, books itself with 2 provider(s), 1 CalDAV calendar(s)" in result.stdout
    config["locations"][0]["providers"][0]["services"] = ["Bottox"]
    path.write_text(yaml.safe_dump(config))
    bad = ringback("check-config", env={"RINGBACK_CONFIG": str(path)})
    assert bad.returncode == 2
    assert "provider 'maya' lists service 'Bottox', which is not in services" in bad.stderr


def test_serve_refuses_to_start_without_an_auth_token() -> None:
    result = ringback("serve", env={"TWILIO_AUTH_TOKEN": ""})
    assert result.returncode == 2
    assert "TWILIO_AUTH_TOKEN is not set" in result.stderr


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    env = {"RINGBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    first = ringback("db", "upgrade", env=env)
    second = ringback("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0
    assert f"database at revision {head_revision()}" in second.stdout  # the newest migration


def test_users_and_tokens_from_the_cli(tmp_path: Path) -> None:
    env = {"RINGBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    added = ringback(
        "users",
        "add",
        "Owner@Glow.example",
        "--name",
        "Olivia Owner",
        "--role",
        "owner",
        "--password-stdin",
        stdin="a very long password\n",
        env=env,
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "created owner owner@glow.example"
    staff = ringback(
        "users",
        "add",
        "desk@glow.example",
        "--name",
        "Dee",
        "--location",
        "glow-downtown",
        "--password-stdin",
        stdin="another long password\n",
        env=env,
    )
    assert staff.returncode == 0, staff.stderr
    admin = ringback(
        "users",
        "add",
        "mia@glow.example",
        "--name",
        "Mia Manager",
        "--role",
        "admin",
        "--password-stdin",
        stdin="a third long password\n",
        env=env,
    )
    assert admin.returncode == 0, admin.stderr
    assert admin.stdout.strip() == "created admin mia@glow.example"
    unknown = ringback(
        "users", "add", "x@glow.example", "--name", "X", "--role", "boss",
        "--password-stdin", stdin="a third long password\n", env=env,
    )  # fmt: skip
    assert unknown.returncode == 2
    assert "role: expected one of owner, admin, staff, got 'boss'" in unknown.stderr
    listed = ringback("users", "list", env=env)
    assert "owner@glow.example\towner\tall locations" in listed.stdout
    assert "mia@glow.example\tadmin\tall locations" in listed.stdout
    assert "desk@glow.example\tstaff\tglow-downtown" in listed.stdout
    duplicate = ringback(
        "users",
        "add",
        "owner@glow.example",
        "--name",
        "X",
        "--role",
        "owner",
        "--password-stdin",
        stdin="a very long password\n",
        env=env,
    )
    assert duplicate.returncode == 2
    assert "email: owner@glow.example already has an account" in duplicate.stderr
    short = ringback(
        "users", "reset-password", "desk@glow.example", "--password-stdin", stdin="short\n", env=env
    )
    assert short.returncode == 2
    assert "password: use at least 12 characters" in short.stderr
    reset = ringback(
        "users",
        "reset-password",
        "desk@glow.example",
        "--password-stdin",
        stdin="a brand new password\n",
        env=env,
    )
    assert reset.returncode == 0
    created = ringback(
        "tokens", "create", "--user", "desk@glow.example", "--name", "CRM sync", env=env
    )
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[1]
    assert secret.startswith("rb_")
    tokens = ringback("tokens", "list", env=env)
    assert "CRM sync" in tokens.stdout
    assert secret not in tokens.stdout
    assert "active" in tokens.stdout
    revoked = ringback("tokens", "revoke", "1", env=env)
    assert revoked.returncode == 0
    assert "revoked" in ringback("tokens", "list", env=env).stdout
    again = ringback("tokens", "revoke", "1", env=env)
    assert again.returncode == 2
    assert "no such active token" in again.stderr


def test_check_config_names_missing_signalwire_settings(tmp_path: Path) -> None:
    import yaml

    config = yaml.safe_load(DEMO.read_text())
    config["locations"][1]["provider"] = "signalwire"
    path = tmp_path / "locations.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {
        "RINGBACK_CONFIG": str(path),
        "SIGNALWIRE_PROJECT_ID": "",
        "SIGNALWIRE_API_TOKEN": "",
        "SIGNALWIRE_SPACE_URL": "",
        "SIGNALWIRE_SIGNING_KEY": "",
    }
    result = ringback("check-config", env=env)
    assert result.returncode == 2
    assert "SIGNALWIRE_PROJECT_ID" in result.stderr
    assert "SIGNALWIRE_SIGNING_KEY" in result.stderr
    assert "glow-westside use provider signalwire" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config_warns_about_what_a_real_install_needs() -> None:
    bare = {"TWILIO_ACCOUNT_SID": "", "TWILIO_AUTH_TOKEN": ""}
    loopback = ringback(
        "check-config", env={**bare, "RINGBACK_PUBLIC_URL": "http://127.0.0.1:8000"}
    )
    assert loopback.returncode == 0, loopback.stderr
    assert "warning: environment: TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN not set" in loopback.stderr
    assert "glow-downtown, glow-westside use provider twilio" in loopback.stderr
    assert "RINGBACK_PUBLIC_URL is http://127.0.0.1:8000, a loopback address" in loopback.stderr

    strict = ringback(
        "check-config", "--strict", env={**bare, "RINGBACK_PUBLIC_URL": "http://localhost:8000"}
    )
    assert strict.returncode == 1
    assert "a loopback address" in strict.stderr
    assert "2 warning(s) with --strict" in strict.stderr

    plain = ringback(
        "check-config",
        "--strict",
        env={
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "RINGBACK_PUBLIC_URL": "http://spa.example.com",
        },
    )
    assert plain.returncode == 1
    assert "RINGBACK_PUBLIC_URL is http://spa.example.com, not https" in plain.stderr
    assert "TWILIO_AUTH_TOKEN" not in plain.stderr


def test_check_config_strict_passes_a_production_setup() -> None:
    result = ringback(
        "check-config",
        "--strict",
        env={
            "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
            "TWILIO_AUTH_TOKEN": "token",
            "RINGBACK_PUBLIC_URL": "https://spa.example.com",
        },
    )
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr
    assert "glow-downtown: Glow Med Spa" in result.stdout
