"""``ringback init``: a spa's first five minutes.

Asks for (or takes as flags) the spa's name, number, time zone and hours, stores starter
settings in the database (or, with ``--config`` or ``RINGBACK_CONFIG``, writes them as a
locations file), creates the owner account and prints the next steps. Nothing is written
unless everything is valid: the settings are validated by the same loader ``check-config``
uses, and the owner account and the settings are stored in one transaction (a file only
replaces its temporary copy once the account exists).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
import yaml

from ringback.cli.support import fail
from ringback.config import WEEKDAYS, ConfigError, load_locations, load_settings, parse_ranges
from ringback.phones import InvalidPhoneNumber, normalize_e164

DEFAULT_HOURS = "mon-fri 09:00-18:00; sat 10:00-16:00"

# A typical med spa menu to start from; the file says to edit names and prices.
STARTER_SERVICES: list[dict[str, Any]] = [
    {"name": "Botox", "aliases": ["tox", "dysport", "xeomin"], "minutes": 30, "price": 450},
    {"name": "Filler", "aliases": ["lip filler", "juvederm"], "minutes": 60, "price": 700},
    {"name": "HydraFacial", "aliases": ["hydra facial", "facial"], "minutes": 60, "price": 199},
    {"name": "Consultation", "aliases": ["consult"], "minutes": 30, "price": 0, "consult": True},
]

HEADER = """\
# Written by `ringback init` on {date}. Edit it freely: the services and prices below are
# a starting point, not your menu. Every key is described in README, "Configuration";
# `ringback check-config --strict` checks this file and the environment.
"""


class InitError(Exception):
    """A value given to ``init`` is not usable; the message names the flag."""


def parse_hours(spec: str) -> dict[str, str]:
    """``"mon-fri 09:00-18:00; sat 10:00-16:00"`` → the locations file's ``hours`` map.

    Days not named are closed. A part names days (``mon``, ``mon-fri``, ``mon,wed``,
    ``weekdays``, ``weekends``, ``daily``)
    and then the hours (``09:00-18:00``, ``09:00-12:00,13:00-18:00`` or ``closed``).
    """
    hours = dict.fromkeys(WEEKDAYS, "closed")
    parts = [part.strip() for part in spec.split(";") if part.strip()]
    if not parts:
        raise InitError(f"--hours: expected e.g. {DEFAULT_HOURS!r}, got {spec!r}")
    for part in parts:
        match = re.fullmatch(r"([a-z,\-\s]+?)\s+(closed|[0-9:,\-\s]+)", part.lower())
        if not match:
            raise InitError(
                f"--hours: expected days then hours like 'mon-fri 09:00-18:00', got {part!r}"
            )
        days = _days(match.group(1).replace(" ", ""), part)
        ranges = match.group(2).replace(" ", "")
        try:
            parse_ranges(ranges)
        except ValueError as exc:
            raise InitError(f"--hours: {part!r}: {exc}") from None
        for day in days:
            hours[day] = ranges
    return hours


_DAY_GROUPS = {
    "weekdays": WEEKDAYS[:5],
    "weekends": WEEKDAYS[5:],
    "daily": WEEKDAYS,
}


def _days(text: str, part: str) -> list[str]:
    days: list[str] = []
    for item in text.split(","):
        if item in _DAY_GROUPS:
            days.extend(_DAY_GROUPS[item])
            continue
        first, _, last = item.partition("-")
        if first not in WEEKDAYS or (last and last not in WEEKDAYS):
            raise InitError(
                f"--hours: {part!r}: expected days among {', '.join(WEEKDAYS)}, got {item!r}"
            )
        start = WEEKDAYS.index(first)
        end = WEEKDAYS.index(last) if last else start
        if end < start:
            raise InitError(f"--hours: {part!r}: {item!r} runs backwards")
        days.extend(WEEKDAYS[start : end + 1])
    return days


def location_id(name: str) -> str:
    """A stable id from the spa's name: ``"Glow Med Spa"`` → ``glow-med-spa``."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")
    return slug[:40].strip("-") or "main"


def starter_config(
    *, name: str, number: str, timezone: str, hours: dict[str, str], front_desk: list[str]
) -> dict[str, Any]:
    """The locations file for one spa, as data (validated by the caller)."""
    location: dict[str, Any] = {
        "id": location_id(name),
        "name": name,
        "phone_number": number,
        "front_desk": front_desk,
        "timezone": timezone,
        "hours": hours,
        "services": STARTER_SERVICES,
    }
    return {"locations": [location]}


def _number(raw: str, flag: str) -> str:
    try:
        return normalize_e164(raw)
    except InvalidPhoneNumber:
        raise InitError(f"{flag}: expected a phone number like +13105550100, got {raw!r}") from None


def _zone(raw: str) -> str:
    try:
        ZoneInfo(raw.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise InitError(
            f"--timezone: expected an IANA time zone like America/Los_Angeles, got {raw!r}"
        ) from None
    return raw.strip()


def run_init(
    *,
    path: Path | None,
    name: str | None,
    number: str | None,
    timezone: str | None,
    hours: str | None,
    front_desk: list[str],
    owner_email: str | None,
    owner_name: str | None,
    password_stdin: bool,
    interactive: bool,
    force: bool,
) -> None:
    from ringback.staff import auth

    def ask(value: str | None, flag: str, prompt: str, default: str | None = None) -> str:
        if value is not None and value.strip():
            return value.strip()
        if not interactive:
            raise InitError(f"{flag}: required with --no-input")
        answer: str = typer.prompt(prompt, default=default)
        return answer.strip()

    if path is not None and path.exists() and not force:
        raise InitError(f"{path}: already exists (use --force to replace it)")
    spa = ask(name, "--name", "Your spa's name (as patients know it)")
    phone = _number(ask(number, "--number", "The phone number patients call"), "--number")
    zone = _zone(ask(timezone, "--timezone", "Time zone", "America/Los_Angeles"))
    opening = parse_hours(ask(hours, "--hours", "Opening hours", DEFAULT_HOURS))
    desks = [_number(raw, "--front-desk") for raw in front_desk]
    email = auth.normalize_email(ask(owner_email, "--owner-email", "Owner's email (to sign in)"))
    person = ask(owner_name, "--owner-name", "Owner's name")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif interactive:
        password = typer.prompt("Owner's password", hide_input=True, confirmation_prompt=True)
    else:
        raise InitError("--password-stdin: required with --no-input (the owner's password)")
    auth.check_password(password)

    data = starter_config(name=spa, number=phone, timezone=zone, hours=opening, front_desk=desks)
    if path is None:
        _init_database(data, email=email, person=person, password=password, force=force)
        where = "the database"
    else:
        _init_file(path, data, email=email, person=person, password=password)
        where = str(path)
    location = data["locations"][0]
    base = load_settings().public_url
    if path is None:
        edit = f"Edit the services and prices at {base}/staff/settings (or ringback config export)."
        if load_settings().config.is_file():
            typer.echo(
                f"note: {load_settings().config} exists here; `ringback serve` started in this "
                "folder would use that file instead of the database (move it away)",
                err=True,
            )
        start = "ringback serve"
    else:
        edit = f"Edit the services and prices in {path} (README, Configuration)."
        start = f"RINGBACK_CONFIG={path} ringback serve"
    typer.echo(f"wrote {where} for {spa} ({location['id']}) and created the owner {email}")
    typer.echo(
        "\nNext steps:\n"
        f"  1. {edit}\n"
        "  2. Set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and RINGBACK_PUBLIC_URL (the https\n"
        "     address Twilio will call), then run: ringback check-config --strict\n"
        f"  3. Start it: {start}\n"
        f"  4. Point the number's webhooks here: ringback twilio connect (or, in Twilio's\n"
        f"     console, voice URL {base}/twilio/voice and messaging URL {base}/twilio/sms)\n"
        f"  5. Sign in at {base}/staff/login as {email}"
    )


def _create_owner(session: Any, *, email: str, person: str, password: str, known: set[str]) -> None:
    from ringback.staff import auth

    auth.create_user(
        session,
        email=email,
        name=person,
        role="owner",
        password=password,
        location_ids=[],
        known_locations=known,
        now=datetime.now(UTC),
    )


def _init_database(
    data: dict[str, Any], *, email: str, person: str, password: str, force: bool
) -> None:
    """The starter settings and the owner, stored together (or neither)."""
    from ringback.cli.support import open_database
    from ringback.config import parse_locations
    from ringback.db import transaction
    from ringback.settings import store

    locations = parse_locations(data, "init")
    sessions = open_database(load_settings())
    with transaction(sessions) as session:
        stored = store.read(session)
        if stored is not None and not force:
            raise InitError(
                "the database already holds settings (use --force to replace them, "
                "or change them at /staff/settings)"
            )
        _create_owner(
            session,
            email=email,
            person=person,
            password=password,
            known={loc.id for loc in locations},
        )
        store.replace_all(
            session, data, actor=f"ringback init ({email})", now=datetime.now(UTC), source="init"
        )


def _init_file(path: Path, data: dict[str, Any], *, email: str, person: str, password: str) -> None:
    from ringback.cli.support import open_database
    from ringback.db import transaction

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".ringback-init-", suffix=".yaml", dir=path.parent)
    draft = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(HEADER.format(date=datetime.now(UTC).date().isoformat()))
            yaml.safe_dump(data, out, sort_keys=False, allow_unicode=True)
        locations = load_locations(draft)
        settings = load_settings().model_copy(update={"config": path})
        sessions = open_database(settings)
        with transaction(sessions) as session:
            _create_owner(
                session,
                email=email,
                person=person,
                password=password,
                known={loc.id for loc in locations},
            )
            # The file takes its place before the account commits: a failure from here
            # on rolls the account back and leaves at most a file that re-running fixes.
            os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def register(app: typer.Typer) -> None:
    """Add ``ringback init`` to the command."""

    @app.command("init")
    def init(
        name: Annotated[str | None, typer.Option(help="The spa's name.")] = None,
        number: Annotated[
            str | None, typer.Option(help="The number patients call (E.164 or national).")
        ] = None,
        timezone: Annotated[
            str | None, typer.Option(help="IANA time zone, e.g. America/Los_Angeles.")
        ] = None,
        hours: Annotated[
            str | None, typer.Option(help=f"Opening hours, e.g. {DEFAULT_HOURS!r}.")
        ] = None,
        front_desk: Annotated[
            list[str] | None,
            typer.Option("--front-desk", help="A front-desk number to ring first (repeat)."),
        ] = None,
        owner_email: Annotated[str | None, typer.Option(help="The owner's email.")] = None,
        owner_name: Annotated[str | None, typer.Option(help="The owner's name.")] = None,
        password_stdin: Annotated[
            bool, typer.Option(help="Read the owner's password from standard input.")
        ] = False,
        no_input: Annotated[
            bool, typer.Option("--no-input", help="Never prompt; every value comes from flags.")
        ] = False,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config",
                "-c",
                help="Write the settings to this file (default: $RINGBACK_CONFIG if set, "
                "else into the database).",
            ),
        ] = None,
        force: Annotated[
            bool, typer.Option(help="Replace an existing file or the stored settings.")
        ] = False,
    ) -> None:
        """Set up a new spa: starter settings (in the database, or a file) and the owner."""
        from ringback.cli.support import settings_file
        from ringback.staff.auth import AccountError

        try:
            path = config
            if path is None:
                given = settings_file(load_settings())
                # RINGBACK_CONFIG names the file to write; ./ringback.yaml alone does not.
                path = given if "RINGBACK_CONFIG" in os.environ and given else None
            run_init(
                path=path,
                name=name,
                number=number,
                timezone=timezone,
                hours=hours,
                front_desk=front_desk or [],
                owner_email=owner_email,
                owner_name=owner_name,
                password_stdin=password_stdin,
                interactive=not no_input,
                force=force,
            )
        except (InitError, AccountError, ConfigError) as exc:
            raise fail(str(exc)) from None
