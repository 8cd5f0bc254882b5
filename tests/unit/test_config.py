"""The locations file and environment: valid files load, bad ones name file, key and expectation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ringback.config import ConfigError, load_locations, load_settings, parse_ranges

DEMO = Path(__file__).parents[2] / "src" / "ringback" / "demo" / "locations.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "locations.yaml"
    path.write_text(text)
    return path


MINIMAL = """
locations:
  - id: glow
    name: Glow
    phone_number: "+13105550100"
"""


def test_demo_file_loads_with_the_issue_keys() -> None:
    locations = load_locations(DEMO)
    glow = locations.get("glow-downtown")
    assert glow is not None
    assert glow.front_desk == ("+13105550101",)
    assert glow.ring_seconds == 18
    assert glow.service_named("botox") is not None
    assert glow.service_named("Botox").price_cents == 48000  # type: ignore[union-attr]
    assert locations.by_number("+13105550200").forwarded_only  # type: ignore[union-attr]


def test_minimal_location_gets_defaults(tmp_path: Path) -> None:
    location = load_locations(write(tmp_path, MINIMAL)).get("glow")
    assert location is not None
    assert location.cooldown_hours == 24
    assert location.appointment_window_hours == 48
    assert location.forwarded_only
    assert location.texting_hours == "08:00-21:00"


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "    ring_seconds: abc\n",
            "locations[0](glow).ring_seconds: Input should be a valid integer",
        ),
        (
            "    ring_seconds: 2\n",
            "locations[0](glow).ring_seconds: Input should be greater than or equal to 5",
        ),
        ("    colour: red\n", "locations[0](glow).colour: unknown key"),
        ("    timezone: Mars/Olympus\n", "timezone: expected an IANA time zone"),
        ("    hours: {mon: '9-5'}\n", "hours: mon: expected 'HH:MM-HH:MM'"),
        ("    hours: {funday: closed}\n", "hours: unknown day 'funday'"),
        ("    front_desk: ['555']\n", "front_desk[0]: expected a phone number in E.164 form"),
        ("    urgent_phone: '555'\n", "urgent_phone: expected a phone number in E.164 form"),
        ("    booking_url: glow.example\n", "booking_url: expected an http(s) URL"),
        ("    messages: {textback: 'Hi {name}'}\n", "unknown placeholder {name}"),
        ("    services: [{name: Botox, minutes: ten}]\n", "services[0](Botox).minutes"),
    ],
)
def test_bad_values_name_file_key_and_expectation(
    tmp_path: Path, snippet: str, expected: str
) -> None:
    path = write(tmp_path, MINIMAL + snippet)
    with pytest.raises(ConfigError) as error:
        load_locations(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_missing_key_and_duplicates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"locations\[0\]\(glow\)\.phone_number: required key"):
        load_locations(write(tmp_path, "locations:\n  - {id: glow, name: Glow}\n"))
    twice = MINIMAL + "  - {id: glow, name: Again, phone_number: '+13105550111'}\n"
    with pytest.raises(ConfigError, match="location id 'glow' is used twice"):
        load_locations(write(tmp_path, twice))
    same_number = MINIMAL + "  - {id: other, name: Other, phone_number: '+13105550100'}\n"
    with pytest.raises(ConfigError, match=r"\+13105550100 is used by both 'glow' and 'other'"):
        load_locations(write(tmp_path, same_number))


def test_yaml_syntax_error_says_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML at line 4, column 1"):
        load_locations(write(tmp_path, "locations:\n  - id: glow\n    name: [unclosed\n"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_locations(tmp_path / "nope.yaml")


def test_bad_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGBACK_PUBLIC_URL", "not a url")
    with pytest.raises(ConfigError, match="RINGBACK_PUBLIC_URL: expected an http"):
        load_settings()
    monkeypatch.setenv("RINGBACK_PUBLIC_URL", "https://rb.example/")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "nope")
    with pytest.raises(ConfigError, match="TWILIO_ACCOUNT_SID: expected 'AC'"):
        load_settings()
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")
    assert load_settings().public_url == "https://rb.example"


def test_opening_hours_in_the_location_zone_across_dst() -> None:
    glow = load_locations(DEMO).get("glow-downtown")
    assert glow is not None
    # Thursday 2026-11-26 19:30 Los Angeles (PST, UTC-8) is inside Thursday's 09:00-20:00.
    assert glow.is_open(datetime(2026, 11, 27, 3, 30, tzinfo=UTC))
    # Friday 18:30 local is after 18:00.
    assert not glow.is_open(datetime(2026, 11, 28, 2, 30, tzinfo=UTC))
    # Summer time: Monday 2027-03-15 09:30 PDT is 16:30 UTC: open.
    assert glow.is_open(datetime(2027, 3, 15, 16, 30, tzinfo=UTC))
    assert not glow.is_open(datetime(2027, 3, 15, 15, 30, tzinfo=UTC))
    # Sunday closed.
    assert not glow.is_open(datetime(2026, 11, 29, 20, 0, tzinfo=UTC))


def test_next_texting_time_waits_for_the_morning() -> None:
    glow = load_locations(DEMO).get("glow-downtown")
    assert glow is not None
    night = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # 23:00 local
    assert glow.next_texting_time(night) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 08:00
    early = datetime(2026, 11, 27, 13, 0, tzinfo=UTC)  # 05:00 local
    assert glow.next_texting_time(early) == datetime(2026, 11, 27, 16, 0, tzinfo=UTC)
    noon = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert glow.next_texting_time(noon) == noon


def test_parse_ranges() -> None:
    assert [str(r) for r in parse_ranges("09:00-12:00, 13:00-24:00")] == [
        "09:00-12:00",
        "13:00-24:00",
    ]
    assert parse_ranges("Closed") == ()
    with pytest.raises(ValueError, match="end after the start"):
        parse_ranges("18:00-09:00")


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            "    providers: [{id: Maya, name: Maya}]",
            r"providers\[0\]\(Maya\)\.id: expected lowercase",
        ),
        (
            "    providers: [{id: maya, name: Maya, hours: {mon: '9-5'}}]",
            r"providers\[0\]\(maya\)\.hours: .*mon: expected 'HH:MM-HH:MM'",
        ),
        (
            "    providers: [{id: maya, name: Maya, calendar: {url: 'caldav.example'}}]",
            r"calendar\.url: expected an http\(s\) URL of a CalDAV calendar",
        ),
        (
            "    providers: [{id: maya, name: Maya, calendar: {url: 'https://c.example/', "
            "password_env: 'my password'}}]",
            r"calendar\.password_env: expected an environment variable name",
        ),
        (
            "    providers: [{id: maya, name: Maya}, {id: maya, name: Other}]",
            r"provider id 'maya' is used twice",
        ),
        (
            "    rooms: [{id: laser, name: Laser, services: [Peel]}]",
            r"room 'laser' lists service 'Peel'",
        ),
        (
            "    booking: {step_minutes: 2}",
            r"booking\.step_minutes: Input should be greater than or equal to 5",
        ),
        ("    booking: {offers: 4}", r"booking\.offers: Input should be less than or equal to 3"),
        ("    booking: {holdminutes: 5}", r"booking\.holdminutes: unknown key"),
    ],
)
def test_scheduling_settings_are_validated_by_name(
    tmp_path: Path, snippet: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_locations(write(tmp_path, MINIMAL + snippet + "\n"))


def test_scheduling_settings_load(tmp_path: Path) -> None:
    text = MINIMAL + (
        "    services: [{name: Botox}]\n"
        "    providers: [{id: maya, name: Maya, services: [botox], hours: {mon: '12:00-18:00'}}]\n"
        "    rooms: [{id: a, name: Room A}]\n"
        "    booking: {lead_minutes: 0, calendar: {url: 'https://c.example/spa/'}}\n"
    )
    location = load_locations(write(tmp_path, text)).get("glow")
    assert location is not None
    assert location.schedules
    maya = location.find_provider("maya")
    assert maya is not None
    assert maya.performs("Botox")  # names match case-insensitively
    assert maya.hours is not None
    assert maya.hours["tue"] == "closed"
    assert location.booking.step_minutes == 15
    assert location.booking.calendar is not None
