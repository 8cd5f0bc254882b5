"""``ringback calendars``: check the CalDAV calendars, print the ICS feed URLs, connect
Google Calendar; ``ringback square map``: map a location to Square Appointments."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import typer
from sqlalchemy.orm import Session, sessionmaker

from ringback.booking import service as booking_service
from ringback.cli.support import fail, load_config, open_database
from ringback.config import Location, Locations, Settings
from ringback.db import transaction
from ringback.integrations.caldav import CalDavCalendar
from ringback.ports import CalendarUnavailable

app = typer.Typer(
    help="Calendars: check CalDAV connections, list ICS feed URLs, connect Google Calendar.",
    no_args_is_help=True,
)


@app.command("check")
def check() -> None:
    """Connect to every configured calendar and say whether it works (exit 1 if not)."""
    settings, locations = load_config()
    problems = 0
    found = 0
    for location in locations:
        for key in booking_service.calendar_keys(location):
            found += 1
            link = booking_service.calendar_link(location, key)
            assert link is not None
            name = f"{location.id}/{key}"
            if link.password_env and link.password_env not in os.environ:
                typer.echo(f"{name}: FAILED: environment variable {link.password_env} is not set")
                problems += 1
                continue
            password = os.environ.get(link.password_env) if link.password_env else None
            calendar = CalDavCalendar(
                link.url,
                link.username,
                password,
                timeout=settings.send_timeout_seconds,
                default_zone=location.timezone,
            )
            try:
                info = calendar.check()
                label = f" ({info.display_name})" if info.display_name else ""
                typer.echo(f"{name}: ok{label}")
            except CalendarUnavailable as exc:
                typer.echo(f"{name}: FAILED: {exc.detail}")
                problems += 1
            finally:
                calendar.close()
    if not found:
        typer.echo("no calendars configured (providers[].calendar or booking.calendar)")
    if problems:
        raise typer.Exit(1)


@app.command("feeds")
def feeds(
    location_id: Annotated[str, typer.Option("--location", "-l", help="Only this location.")] = "",
) -> None:
    """Print the ICS feed URLs (subscribe to them in a calendar app; keep them private)."""
    from ringback.booking.feeds import feed_keys, feed_url
    from ringback.runtime import build_runtime

    settings, locations = load_config(configure_logs=False)
    if location_id and locations.get(location_id) is None:
        known = ", ".join(loc.id for loc in locations)
        raise fail(f"--location: no location {location_id!r} (known: {known})")
    runtime = build_runtime(settings, locations)
    try:
        for location in locations:
            if location_id and location.id != location_id:
                continue
            if not location.schedules:
                continue
            for key, label in feed_keys(location):
                typer.echo(f"{label}: {feed_url(runtime.deps, location.id, key)}")
    finally:
        runtime.close()


# --- booking systems: Google Calendar, Square ---------------------------------------------

GOOGLE_LOOPBACK = "http://127.0.0.1:8765/"


def _location(locations: Locations, location_id: str, system: str) -> Location:
    location = locations.get(location_id)
    if location is None:
        known = ", ".join(loc.id for loc in locations)
        raise fail(f"--location: no location {location_id!r} (known: {known})")
    if location.booking_system != system:
        raise fail(
            f"--location: {location_id} has booking_system {location.booking_system!r}; set "
            f"booking_system: {system} (and its {system} settings) in the locations file first"
        )
    return location


def _code_from(answer: str, state: str) -> str:
    """The code from what the admin pasted: the bare code, or the whole address Google sent
    the browser to (then its ``state`` must be ours)."""
    text = answer.strip()
    if "code=" not in text:
        if not text:
            raise fail("no code given")
        return text
    query = parse_qs(urlsplit(text).query)
    if query.get("error"):
        raise fail(f"Google said: {query['error'][0]}")
    if query.get("state", [""])[0] != state:
        raise fail("the address's state is not the one this command made (start again)")
    return query.get("code", [""])[0]


@app.command("connect")
def connect(
    system: Annotated[str, typer.Argument(help="google")],
    location_id: Annotated[str, typer.Option("--location", "-l", help="The location.")],
    code: Annotated[
        str, typer.Option(help="The code (or the whole address) Google sent the browser to.")
    ] = "",
    redirect_uri: Annotated[
        str, typer.Option(help="The OAuth client's redirect URI (a loopback address by default).")
    ] = GOOGLE_LOOPBACK,
    listen: Annotated[
        bool, typer.Option(help="Wait for Google's redirect on the loopback redirect URI.")
    ] = False,
) -> None:
    """Connect a location to Google Calendar: consent in the browser, then the refresh token
    is stored sealed with the install's secret key. A location configured with a service
    account (google_calendar.service_account_key_file) is checked instead."""
    from ringback.booking import credentials, systems
    from ringback.ports import BookingSystemUnavailable

    if system != "google":
        raise fail(f"connect: expected 'google', got {system!r} (Square: ringback square map)")
    settings, locations = load_config()
    location = _location(locations, location_id, "google_calendar")
    google = location.google_calendar
    assert google is not None
    sessions = open_database(settings)
    if google.service_account_key_file:
        _check_system(settings, sessions, location, "service account")
        return
    oauth = systems.google_oauth(settings, location, redirect_uri)
    if oauth is None:
        raise fail(
            "no OAuth client: set GOOGLE_OAUTH_CLIENT_ID and GOOGLE_OAUTH_CLIENT_SECRET (or "
            "google_calendar.oauth_client_id and oauth_client_secret_env)"
        )
    state = oauth.new_state()
    try:
        if not code:
            typer.echo("Open this address, sign in with the clinic's Google account and allow:")
            typer.echo(oauth.consent_url(state))
            if listen:
                answer = _wait_for_redirect(redirect_uri)
            else:
                answer = typer.prompt(
                    "Paste the address Google sent your browser to (or just its code)"
                )
            code = _code_from(answer, state)
        elif "code=" in code:  # the whole address, pasted by the admin in a later run
            code = parse_qs(urlsplit(code.strip()).query).get("code", [""])[0]
        try:
            tokens = oauth.exchange_code(code)
        except BookingSystemUnavailable as exc:
            raise fail(f"Google refused the code: {exc.detail}") from exc
    finally:
        oauth.close()
    if not tokens.refresh_token:
        raise fail("Google sent no refresh token (remove Ringback's access and connect again)")
    with transaction(sessions) as session:
        credentials.save(
            session,
            settings.link_secret(),
            location.id,
            "google_calendar",
            {"refresh_token": tokens.refresh_token},
            datetime.now(UTC),
        )
    typer.echo(f"{location.id}: Google Calendar connected (refresh token stored sealed)")
    _check_system(settings, sessions, location, "connection")


def _wait_for_redirect(redirect_uri: str) -> str:
    """Serve one request on the loopback redirect URI; return the address it was sent to."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    parts = urlsplit(redirect_uri)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise fail("--listen needs a loopback redirect URI with a port, like " + GOOGLE_LOOPBACK)
    got: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            got["path"] = self.path
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"Ringback: you can close this tab and go back to the terminal.")

        def log_message(self, *args: object) -> None:
            return

    with HTTPServer((parts.hostname, parts.port), Handler) as server:
        server.timeout = 300
        server.handle_request()
    if "path" not in got:
        raise fail("no answer from Google within 5 minutes")
    return f"{parts.scheme}://{parts.netloc}{got['path']}"


def _check_system(
    settings: Settings, sessions: sessionmaker[Session], location: Location, what: str
) -> None:
    """Read an hour of busy time from every mapped calendar or team member (exit 1 if not)."""
    from ringback.booking import systems
    from ringback.ports import BookingSystemUnavailable

    opener = systems.OpenBookingSystems(
        settings, sessions, settings.link_secret(), lambda: datetime.now(UTC)
    )
    system = opener(location)
    assert system is not None
    refs = sorted(set(systems.provider_refs(location).values()))
    now = datetime.now(UTC)
    try:
        system.busy(now, now + timedelta(hours=1), refs)
    except BookingSystemUnavailable as exc:
        raise fail(f"{location.id}: the {what} does not work: {exc.detail}", code=1) from exc
    finally:
        system.close()
    typer.echo(f"{location.id}: ok, {len(refs)} calendar(s) or team member(s) readable")


square_app = typer.Typer(
    help="Square Appointments: map locations, team members and services.",
    no_args_is_help=True,
)


@square_app.command("map")
def square_map(
    location_id: Annotated[str, typer.Option("--location", "-l", help="The Ringback location.")],
    square_location: Annotated[
        str, typer.Option(help="The Square location id (default: the only one, or the mapped).")
    ] = "",
    token_stdin: Annotated[
        bool,
        typer.Option(help="Read the access token from stdin (stored sealed with --save)."),
    ] = False,
    save: Annotated[
        bool,
        typer.Option(
            help="Save the mapping: into the settings (as the settings page does), or into the "
            "locations file when Ringback runs from one (RINGBACK_CONFIG)."
        ),
    ] = False,
    sandbox: Annotated[bool, typer.Option(help="Square's sandbox, not production.")] = False,
) -> None:
    """List Square's locations, team members and service variations, match them to the
    location's providers and services (the saved mapping first, else by name), and print
    (or --save) the mapping."""
    import sys

    import yaml

    from ringback.booking import credentials, square_mapping, systems
    from ringback.ports import BookingSystemUnavailable

    settings, locations = load_config()
    location = locations.get(location_id)
    if location is None:
        known = ", ".join(loc.id for loc in locations)
        raise fail(f"--location: no location {location_id!r} (known: {known})")
    env_name = square_mapping.token_env(location)
    sessions = open_database(settings)
    token = sys.stdin.readline().strip() if token_stdin else ""
    if not token:
        with sessions() as session:
            stored = credentials.load(session, settings.link_secret(), location.id, "square")
        token = square_mapping.access_token(location, stored)
    if not token:
        raise fail(f"no Square access token: set {env_name} or give --token-stdin")
    current = location.square
    environment = "sandbox" if sandbox else (current.environment if current else "production")
    asked = square_location or (current.location_id if current else "")
    try:
        catalog = square_mapping.read_catalog(
            token,
            systems.square_base_url(settings, environment),
            asked,
            timeout=settings.send_timeout_seconds,
        )
    except BookingSystemUnavailable as exc:
        raise fail(square_mapping.explain(exc, location), 1) from exc
    typer.echo("Square locations:")
    for item in catalog.locations:
        typer.echo(f"  {item.id}  {item.name} ({item.timezone or 'no zone'})")
    if not catalog.location_id:
        why = square_mapping.unchosen(catalog, asked)
        raise fail("--" + why.replace("_", "-", 1), 2 if asked else 1)
    typer.echo("Team members:")
    for member in catalog.members:
        typer.echo(f"  {member.id}  {member.name}")
    typer.echo("Service variations:")
    for variation in catalog.services:
        minutes = f"{variation.duration_minutes} min" if variation.duration_minutes else "no time"
        typer.echo(f"  {variation.variation_id}  {variation.name} ({minutes})")
    proposed = square_mapping.proposed(location, catalog)
    mapping = square_mapping.SquareMapping(
        proposed.location_id,
        {k: v for k, v in proposed.team_members.items() if v},
        {k: v for k, v in proposed.services.items() if v},
    )
    block = square_mapping.settings_block(location, mapping)
    if environment == "sandbox":
        block["environment"] = "sandbox"
    typer.echo("Mapping (under the location in the locations file):")
    typer.echo(yaml.safe_dump({"booking_system": "square", "square": block}, sort_keys=False))
    unmatched = [p.id for p in location.providers if p.id not in mapping.team_members] + [
        s.name
        for s in square_mapping.mapped_services(location)
        if square_mapping.required(location, s) and s.name not in mapping.services
    ]
    if unmatched:
        typer.echo(f"not matched by name (map them on the settings page): {', '.join(unmatched)}")
    if not save:
        return
    try:
        square_mapping.checked(location, catalog, mapping)
    except square_mapping.MappingProblem as problem:
        raise fail(f"not saved: {problem}") from None
    _save_square(settings, sessions, location.id, block)
    if token_stdin:
        with transaction(sessions) as session:
            credentials.save(
                session,
                settings.link_secret(),
                location.id,
                "square",
                {"access_token": token},
                datetime.now(UTC),
            )
        typer.echo(f"{location.id}: access token stored sealed")


def _save_square(
    settings: Settings, sessions: sessionmaker[Session], location_id: str, block: dict[str, Any]
) -> None:
    """Where the install keeps its settings: the database (what the settings page shows and
    saves, audited), or the locations file it runs from."""
    import getpass

    import yaml

    from ringback.cli.support import settings_file
    from ringback.config import ConfigError, SquareSettings
    from ringback.settings import store

    path = settings_file(settings)
    if path is None:
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        try:
            with transaction(sessions) as session:
                saved = store.save_square(
                    session,
                    location_id,
                    block,
                    actor=f"{who} (ringback square map)",
                    now=datetime.now(UTC),
                )
        except (ConfigError, store.SettingsManagedByFile, store.NoSettings) as exc:
            raise fail(f"not saved: {exc}") from None
        typer.echo(f"saved to the settings (version {saved.version}); the settings page shows it")
        return
    SquareSettings.model_validate(block)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    for entry in data["locations"]:
        if entry.get("id") == location_id:
            entry["booking_system"] = "square"
            entry["square"] = block
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    typer.echo(f"saved to {path} (the file was rewritten: comments in it are gone)")
