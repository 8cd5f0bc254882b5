"""``ringback calendars connect google`` and ``ringback square map`` against the fakes, as a
real subprocess; the credentials they store are sealed with the install's secret key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ringback.booking import credentials
from ringback.fakes.google_calendar import (
    EVENTS_SCOPE,
    FREEBUSY_SCOPE,
    FakeGoogleCalendar,
    FakeGoogleCalendarServer,
)
from ringback.fakes.square import FakeSquare, FakeSquareServer
from tests.support.cli import DEMO, ringback

ANNA = "anna@glow.example"
BEA = "bea@glow.example"
LOOPBACK = "http://127.0.0.1:8765/"
SECRET = "a-test-secret-key-of-some-length"


def _config(tmp_path: Path, edit: dict[str, Any]) -> Path:
    config = yaml.safe_load(DEMO.read_text())
    glow = config["locations"][0]
    glow.pop("booking_url")
    glow["providers"] = [
        {"id": "anna", "name": "Anna", "services": ["Botox", "Filler"]},
        {"id": "bea", "name": "Bea", "services": ["HydraFacial", "Filler"]},
    ]
    glow.update(edit)
    path = tmp_path / "locations.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def google() -> Iterator[FakeGoogleCalendarServer]:
    with FakeGoogleCalendarServer(FakeGoogleCalendar(calendar_ids=(ANNA, BEA))) as server:
        yield server
        assert server.state.violations == []


def _google_env(
    server: FakeGoogleCalendarServer, config: Path, database_url: str
) -> dict[str, str]:
    return {
        "RINGBACK_CONFIG": str(config),
        "RINGBACK_DATABASE_URL": database_url,
        "RINGBACK_SECRET_KEY": SECRET,
        "GOOGLE_OAUTH_CLIENT_ID": server.state.client_id,
        "GOOGLE_OAUTH_CLIENT_SECRET": server.state.client_secret,
        "GOOGLE_CALENDAR_API_BASE_URL": server.api_base,
        "GOOGLE_OAUTH_TOKEN_URL": server.token_url,
    }


def _stored(database_url: str) -> tuple[str, str]:
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        row = conn.execute(sa.text("SELECT system, sealed FROM booking_system_credentials")).one()
    engine.dispose()
    return str(row[0]), str(row[1])


def test_connect_google_consent_then_the_refresh_token_is_stored_sealed(
    google: FakeGoogleCalendarServer, tmp_path: Path, database_url: str
) -> None:
    config = _config(
        tmp_path,
        {
            "booking_system": "google_calendar",
            "google_calendar": {"calendars": {"anna": ANNA, "bea": BEA}},
        },
    )
    env = {**os.environ, **_google_env(google, config, database_url)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ringback.cli",
            "calendars",
            "connect",
            "google",
            "-l",
            "glow-downtown",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    process.stdout.readline()  # "Open this address ..."
    consent = process.stdout.readline().strip()
    query = parse_qs(urlsplit(consent).query)
    assert query["access_type"] == ["offline"]
    assert query["redirect_uri"] == [LOOPBACK]
    assert set(query["scope"][0].split()) == {EVENTS_SCOPE, FREEBUSY_SCOPE}
    # The admin allows; Google sends the browser to the loopback address with the code.
    code = google.state.authorize(LOOPBACK, (EVENTS_SCOPE, FREEBUSY_SCOPE))
    process.stdin.write(f"{LOOPBACK}?state={query['state'][0]}&code={code}\n")
    process.stdin.flush()
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "glow-downtown: Google Calendar connected (refresh token stored sealed)" in out
    assert "glow-downtown: ok, 2 calendar(s) or team member(s) readable" in out
    system, sealed = _stored(database_url)
    assert system == "google_calendar"
    opened = credentials.unseal(SECRET.encode(), sealed)
    assert opened["refresh_token"]
    assert opened["refresh_token"] not in sealed
    with pytest.raises(credentials.CredentialsUnreadable):
        credentials.unseal(b"another-install", sealed)


def test_connect_google_refuses_an_address_with_another_state_and_stores_nothing(
    google: FakeGoogleCalendarServer, tmp_path: Path, database_url: str
) -> None:
    config = _config(
        tmp_path,
        {"booking_system": "google_calendar", "google_calendar": {"default_calendar": ANNA}},
    )
    code = google.state.authorize(LOOPBACK, (EVENTS_SCOPE, FREEBUSY_SCOPE))
    result = ringback(
        "calendars",
        "connect",
        "google",
        "-l",
        "glow-downtown",
        stdin=f"{LOOPBACK}?state=forged&code={code}\n",
        env=_google_env(google, config, database_url),
    )
    assert result.returncode == 2
    assert "the address's state is not the one this command made" in result.stderr
    engine = sa.create_engine(database_url)
    with engine.connect() as conn:
        count = conn.execute(sa.text("SELECT count(*) FROM booking_system_credentials")).scalar()
    engine.dispose()
    assert count == 0
    not_google = ringback(
        "calendars",
        "connect",
        "google",
        "-l",
        "glow-westside",
        env=_google_env(google, config, database_url),
    )
    assert not_google.returncode == 2
    assert "glow-westside has booking_system 'ringback'" in not_google.stderr


def test_square_map_lists_matches_by_name_and_saves_the_mapping(
    tmp_path: Path, database_url: str
) -> None:
    state = FakeSquare()
    anna = state.add_team_member("Anna", "Lopez")
    bea = state.add_team_member("Bea", "Kim")
    botox = state.add_service("Botox", 30, (anna,))
    filler = state.add_service("Filler", 60, (anna, bea))
    hydra = state.add_service("HydraFacial", 60, (bea,))
    config = _config(tmp_path, {})
    with FakeSquareServer(state) as server:
        env = {
            "RINGBACK_CONFIG": str(config),
            "RINGBACK_DATABASE_URL": database_url,
            "RINGBACK_SECRET_KEY": SECRET,
            "SQUARE_API_BASE_URL": server.url,
        }
        shown = ringback(
            "square",
            "map",
            "-l",
            "glow-downtown",
            "--token-stdin",
            stdin=state.access_token,
            env=env,
        )
        assert shown.returncode == 0, shown.stderr
        assert f"  {anna}  Anna Lopez" in shown.stdout
        assert f"  {botox.variation_id}  Botox (30 min)" in shown.stdout
        assert "booking_system: square" in shown.stdout
        assert yaml.safe_load(config.read_text())["locations"][0].get("square") is None
        saved = ringback(
            "square",
            "map",
            "-l",
            "glow-downtown",
            "--token-stdin",
            "--save",
            stdin=state.access_token,
            env=env,
        )
        assert saved.returncode == 0, saved.stderr
        assert state.violations == []
    glow = yaml.safe_load(config.read_text())["locations"][0]
    assert glow["booking_system"] == "square"
    assert glow["square"]["location_id"] == state.location_id
    assert glow["square"]["team_members"] == {"anna": anna, "bea": bea}
    assert glow["square"]["services"] == {
        "Botox": botox.variation_id,
        "Filler": filler.variation_id,
        "HydraFacial": hydra.variation_id,
    }
    checked = ringback("check-config", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "booking system square: computes slots itself" in checked.stdout
    system, sealed = _stored(database_url)
    assert system == "square"
    assert credentials.unseal(SECRET.encode(), sealed) == {"access_token": state.access_token}


def test_square_map_without_a_token_says_which_variable() -> None:
    result = ringback("square", "map", "-l", "glow-downtown", env={"SQUARE_ACCESS_TOKEN": ""})
    assert result.returncode == 2
    assert "no Square access token: set SQUARE_ACCESS_TOKEN or give --token-stdin" in result.stderr


@settings(max_examples=40, deadline=None)
@given(
    data=st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=4),
    secret=st.binary(min_size=1, max_size=64),
)
def test_sealed_credentials_open_with_their_key_only(data: dict[str, str], secret: bytes) -> None:
    sealed = credentials.seal(secret, data)
    assert credentials.unseal(secret, sealed) == data
    with pytest.raises(credentials.CredentialsUnreadable):
        credentials.unseal(secret + b"x", sealed)


def test_connect_google_checks_a_service_account_signing_its_jwt_with_rs256(
    tmp_path: Path, database_url: str
) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key()

    def verify(data: bytes, signature: bytes) -> bool:
        try:
            public.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return False
        return True

    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    state = FakeGoogleCalendar(calendar_ids=(ANNA, BEA), service_account_verifier=verify)
    key_file = tmp_path / "sa.json"
    key_file.write_text(
        json.dumps(
            {
                "type": "service_account",
                "client_email": state.service_account_email,
                "private_key_id": "k1",
                "private_key": pem,
            }
        )
    )
    google = {
        "calendars": {"anna": ANNA, "bea": BEA},
        "service_account_key_file": str(key_file),
        "subject": "frontdesk@glow.example",
    }
    config = _config(tmp_path, {"booking_system": "google_calendar", "google_calendar": google})
    with FakeGoogleCalendarServer(state) as server:
        env = _google_env(server, config, database_url)
        result = ringback("calendars", "connect", "google", "-l", "glow-downtown", env=env)
        assert result.returncode == 0, result.stderr
        assert "glow-downtown: ok, 2 calendar(s) or team member(s) readable" in result.stdout
        # Another key (not the service account's) is refused by Google, and said so.
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file.write_text(
            json.dumps(
                {
                    "client_email": state.service_account_email,
                    "private_key": other.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode(),
                }
            )
        )
        refused = ringback("calendars", "connect", "google", "-l", "glow-downtown", env=env)
        assert refused.returncode == 1
        assert "the service account does not work" in refused.stderr
        assert "Traceback" not in refused.stderr
