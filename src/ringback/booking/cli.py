"""``ringback calendars``: check the CalDAV calendars, print the ICS feed URLs, sync now."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ringback.booking import service as booking_service
from ringback.cli.support import fail, load_config
from ringback.integrations.caldav import CalDavCalendar
from ringback.ports import CalendarUnavailable

app = typer.Typer(
    help="Calendars: check CalDAV connections, list ICS feed URLs, re-read busy time.",
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
