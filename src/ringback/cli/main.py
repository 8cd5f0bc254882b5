"""The ``ringback`` command: serve, worker, demo, sweep, replay, db, check-config."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ringback.booking import cli as calendars_cli
from ringback.cli import backup as backup_cli
from ringback.cli import onboarding
from ringback.cli.support import adopt_settings, fail, load_config, open_database
from ringback.config import (
    ConfigError,
    Locations,
    Settings,
    load_settings,
)
from ringback.funnel import cli as funnel_cli
from ringback.jobs import QueueUrlError
from ringback.outbound_webhooks import cli as webhooks_cli
from ringback.patients.cli import records_app
from ringback.settings import cli as settings_cli
from ringback.telephony import cli as telephony_cli

app = typer.Typer(
    name="ringback",
    help="Ringback: text back the callers a med spa missed, and turn them into bookings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
users_app = typer.Typer(help="Staff accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")
tokens_app = typer.Typer(help="API tokens for the JSON API.", no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")
app.add_typer(webhooks_cli.app, name="webhooks")
app.add_typer(records_app, name="patients")
app.add_typer(calendars_cli.app, name="calendars")
app.add_typer(settings_cli.app, name="config")
app.add_typer(calendars_cli.square_app, name="square")
app.add_typer(telephony_cli.build("twilio"), name="twilio")
app.add_typer(telephony_cli.build("signalwire"), name="signalwire")
log = logging.getLogger("ringback.cli")


def _load(config: Path | None = None) -> tuple[Settings, Locations]:
    return load_config(config, check_providers=True)


ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Locations file (default: $RINGBACK_CONFIG).")
]


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    migrate: Annotated[bool, typer.Option(help="Upgrade the database schema first.")] = True,
    worker: Annotated[
        bool | None,
        typer.Option(help="Run jobs in this process (default: yes on the embedded queue)."),
    ] = None,
) -> None:
    """Run the web service (and, on the embedded queue, its workers)."""
    import uvicorn

    from ringback.app import create_app
    from ringback.runtime import build_runtime
    from ringback.schema import upgrade

    settings, locations = _load(config)
    if not settings.twilio_auth_token and any(loc.provider == "twilio" for loc in locations):
        raise fail("TWILIO_AUTH_TOKEN is not set: webhooks cannot be verified (see README)")
    try:
        runtime = build_runtime(settings, locations)
    except QueueUrlError as exc:
        raise fail(str(exc)) from None
    if migrate:
        upgrade(runtime.engine)
    _adopt(runtime)
    _first_run_hint(runtime)
    uvicorn.run(
        create_app(runtime, run_worker=worker),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # uvicorn would believe X-Forwarded-* from 127.0.0.1: ringback.guards decides
        # instead, from RINGBACK_TRUSTED_PROXIES.
        proxy_headers=False,
    )


def _adopt(runtime: Any) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from ringback.settings.store import StaleSettings

    try:
        adopt_settings(runtime.settings, runtime.deps.sessions, runtime.locations)
    except (SQLAlchemyError, StaleSettings) as exc:  # --no-migrate on a new database
        log.warning("settings.not_stored", extra={"fields": {"error": type(exc).__name__}})


def _first_run_hint(runtime: Any) -> None:
    from ringback.staff import auth

    try:
        with runtime.deps.sessions() as session:
            empty = auth.count_users(session) == 0
    except Exception:  # the schema may not exist yet with --no-migrate; serve says so later
        return
    if empty:
        typer.secho(
            "ringback: no staff accounts yet. Create the first owner with:\n"
            '  ringback users add you@clinic.example --name "Your Name" --role owner',
            fg=typer.colors.YELLOW,
            err=True,
        )


@app.command()
def worker(
    config: ConfigOption = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker count (default $RINGBACK_WORKERS).")
    ] = None,
    processes: Annotated[bool, typer.Option(help="Run workers as processes, not threads.")] = False,
) -> None:
    """Run job workers as a separate process (production: with a Redis queue)."""
    from ringback.jobs import make_consumer
    from ringback.runtime import Sweeper, build_runtime, build_spool

    settings, locations = _load(config)
    try:
        runtime = build_runtime(settings, locations)
    except QueueUrlError as exc:
        raise fail(str(exc)) from None
    _adopt(runtime)
    consumer = make_consumer(runtime.huey, workers or settings.workers, embedded=False)
    if processes:
        consumer.worker_type = "process"
    typer.echo(
        f"ringback worker: {workers or settings.workers} workers on "
        f"{runtime.settings.resolved_queue_url.split('@')[-1]}",
        err=True,
    )
    # Recovery runs in every worker (one sweep at a time across them all): at start, so
    # what a dead worker or a queue outage left is taken up at once, then every few s.
    sweeper = Sweeper(runtime.deps).start()
    # And every worker drains the webhook spools of web processes that died.
    spool = build_spool(runtime)
    if spool is not None:
        spool.start()
    try:
        consumer.run()
    finally:
        if spool is not None:
            spool.stop()
        sweeper.stop()


@app.command()
def sweep(config: ConfigOption = None) -> None:
    """Re-drive what a dead worker left behind (the workers also do, every few seconds)."""
    from ringback.runtime import build_runtime, run_sweep

    settings, locations = _load(config)
    runtime = build_runtime(settings, locations)
    counts = run_sweep(runtime.deps)
    typer.echo(json.dumps(counts))


@app.command()
def replay(
    event_ids: Annotated[list[int], typer.Argument(help="Provider event ids to handle again.")],
    config: ConfigOption = None,
) -> None:
    """Handle stored provider events again (idempotent: nothing is sent twice)."""
    from ringback.inbox import events
    from ringback.runtime import build_runtime

    settings, locations = _load(config)
    runtime = build_runtime(settings, locations)
    count = events.replay(runtime.deps, event_ids)
    typer.echo(f"queued {count} event(s) for handling")


@app.command("check-config")
def check_config(
    config: ConfigOption = None,
    strict: Annotated[
        bool,
        typer.Option(help="Exit 1 when there are warnings (missing credentials, no https)."),
    ] = False,
) -> None:
    """Validate the environment and the locations file, and say what was found.

    Warnings (a loopback or plain-http public URL, missing Twilio credentials) are printed
    on stderr; with ``--strict`` they fail the command with exit code 1.
    """
    from ringback.config import deployment_warnings

    settings, locations = _load(config)
    for location in locations:
        mode = (
            "forwarded-only"
            if location.forwarded_only
            else f"rings {len(location.front_desk)} number(s)"
        )
        booking = (
            f", books itself with {len(location.providers)} provider(s)"
            if location.schedules
            else ", booking link"
            if location.booking_url
            else ", hands bookings to staff"
        )
        calendars = sum(1 for p in location.providers if p.calendar) + (
            1 if location.booking.calendar else 0
        )
        typer.echo(
            f"{location.id}: {location.name} on {location.phone_number} ({location.provider}), "
            f"{mode}, {len(location.services)} services{booking}"
            + (f", {calendars} CalDAV calendar(s)" if calendars else "")
        )
        if location.schedules or location.booking_system != "ringback":
            from ringback.booking.systems import describe

            typer.echo(f"  {describe(location)}")
    typer.echo(f"database: {settings.resolved_database_url.split('@')[-1]}")
    typer.echo(f"queue: {settings.resolved_queue_url.split('@')[-1]}")
    warnings = deployment_warnings(settings, locations)
    for line in warnings:
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)
    if warnings and strict:
        raise fail(f"{len(warnings)} warning(s) with --strict", code=1)


@app.command()
def understand(
    text: Annotated[
        str | None, typer.Argument(help="The message; omit to read JSON lines.")
    ] = None,
    location: Annotated[str, typer.Option("--location", "-l", help="Location id.")] = "",
    now: Annotated[
        str | None, typer.Option(help="ISO-8601 time the message arrived (default: now).")
    ] = None,
    asked: Annotated[
        str | None,
        typer.Option(
            help="The question the bot asked last: treatment, time, patient, appointment or "
            "confirm ('yes' and 'no' are read as answers to it)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print what Ringback understands of a patient's text, as JSON.

    Without TEXT, reads JSON lines {"text": ..., "now": ..., "asked": ...} from stdin and
    writes one JSON object per line, in order.
    """
    from datetime import UTC, datetime

    from ringback.conversation.understand import ASKED
    from ringback.conversation.understand import understand as understand_text

    def question(value: object, where: str) -> Any:
        if value is None or value in ASKED:
            return value
        raise fail(f"{where}: expected one of {', '.join(ASKED)}, got {value!r}")

    _, locations = _load(config)
    found = locations.get(location)
    if found is None:
        known = ", ".join(loc.id for loc in locations)
        raise fail(f"--location: no location {location!r} (known: {known})")

    def moment(value: str | None, where: str) -> datetime:
        if value is None:
            return datetime.now(UTC)
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise fail(f"{where}: expected an ISO-8601 time, got {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=found.zone)
        return parsed

    if text is not None:
        result = understand_text(
            text, moment(now, "--now"), found, asked=question(asked, "--asked")
        )
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    for number, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise fail(f"stdin line {number}: not JSON ({exc.msg})") from None
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise fail(f'stdin line {number}: expected {{"text": "...", "now": "..."}}')
        when = moment(item.get("now", now), f"stdin line {number}: now")
        said = question(item.get("asked", asked), f"stdin line {number}: asked")
        result = understand_text(item["text"], when, found, asked=said)
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))


def _sessions() -> tuple[Settings, Locations, Any]:
    settings, locations = _load()
    return settings, locations, open_database(settings)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument(help="Their email; they sign in with it.")],
    name: Annotated[str, typer.Option(help="Their name, as colleagues see it.")],
    role: Annotated[
        str,
        typer.Option(
            help="owner (everything), admin (settings and team, every location) or staff "
            "(their --location inbox)."
        ),
    ] = "staff",
    location: Annotated[
        list[str] | None, typer.Option("--location", "-l", help="Location id (repeat).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a staff account."""
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.staff import auth

    _, locations, sessions = _sessions()
    password = _password(password_stdin)
    try:
        with transaction(sessions) as session:
            user = auth.create_user(
                session,
                email=email,
                name=name,
                role=role,
                password=password,
                location_ids=location or [],
                known_locations={loc.id for loc in locations},
                now=datetime.now(UTC),
            )
            summary = f"created {user.role} {user.email}"
    except auth.AccountError as exc:
        raise fail(str(exc)) from None
    typer.echo(summary)


@users_app.command("reset-password")
def users_reset_password(
    email: Annotated[str, typer.Argument(help="The account's email.")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the new password from standard input.")
    ] = False,
) -> None:
    """Set a new password (signs the account out everywhere and revokes its API tokens)."""
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.staff import auth

    _, _, sessions = _sessions()
    password = _password(password_stdin)
    try:
        with transaction(sessions) as session:
            user = auth.reset_password(session, email, password, datetime.now(UTC))
            address = user.email
    except auth.AccountError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"password reset for {address}")


def _switch_account(email: str, *, on: bool) -> None:
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.staff import auth

    _, _, sessions = _sessions()
    try:
        with transaction(sessions) as session:
            user = auth.find_user(session, email)
            if user is None:
                raise auth.AccountError(f"email: no account for {email.strip().lower()}")
            if on:
                auth.reactivate_user(session, user.id, acting_role="owner")
            else:
                auth.deactivate_user(
                    session,
                    user.id,
                    acting_user_id=None,
                    acting_role="owner",
                    now=datetime.now(UTC),
                )
            address = user.email
    except auth.AccountError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"{'reactivated' if on else 'deactivated'} {address}")


@users_app.command("deactivate")
def users_deactivate(
    email: Annotated[str, typer.Argument(help="The account's email.")],
) -> None:
    """Switch an account off: it cannot sign in, and its sessions and API tokens end now."""
    _switch_account(email, on=False)


@users_app.command("reactivate")
def users_reactivate(
    email: Annotated[str, typer.Argument(help="The account's email.")],
) -> None:
    """Let a deactivated account sign in again (its old sessions and tokens stay ended)."""
    _switch_account(email, on=True)


@users_app.command("list")
def users_list() -> None:
    """List staff accounts."""
    from sqlalchemy import select

    from ringback.models import StaffUser
    from ringback.roles import role_can

    _, _, sessions = _sessions()
    with sessions() as session:
        for user in session.scalars(select(StaffUser).order_by(StaffUser.email)):
            where = (
                "all locations"
                if role_can(user.role, "all_locations")
                else ", ".join(user.location_ids)
            )
            state = "" if user.active else " (disabled)"
            typer.echo(f"{user.email}\t{user.role}\t{where}{state}")


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="Email of the account the token acts as.")],
    name: Annotated[str, typer.Option(help="What uses it, e.g. 'CRM sync'.")],
) -> None:
    """Create an API token; it is shown once."""
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.staff import auth

    _, _, sessions = _sessions()
    try:
        with transaction(sessions) as session:
            owner = auth.find_user(session, user)
            if owner is None:
                raise auth.AccountError(f"--user: no account for {user}")
            token = auth.create_api_token(session, owner, name, datetime.now(UTC))
    except auth.AccountError as exc:
        raise fail(str(exc)) from None
    typer.echo(f"token {token.id} (shown once, keep it secret):")
    typer.echo(token.token)


@tokens_app.command("list")
def tokens_list() -> None:
    """List API tokens (never their secrets)."""
    from sqlalchemy import select

    from ringback.models import ApiToken

    _, _, sessions = _sessions()
    with sessions() as session:
        for token in session.scalars(select(ApiToken).order_by(ApiToken.id)):
            state = "revoked" if token.revoked_at else "active"
            used = token.last_used_at.isoformat() if token.last_used_at else "never used"
            typer.echo(
                f"{token.id}\t{token.prefix}…\t{token.name}\t{token.user.email}\t{state}\t{used}"
            )


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[int, typer.Argument(help="The token's id.")]) -> None:
    """Revoke an API token at once."""
    from datetime import UTC, datetime

    from ringback.db import transaction
    from ringback.staff import auth

    _, _, sessions = _sessions()
    with transaction(sessions) as session:
        done = auth.revoke_api_token(session, token_id, datetime.now(UTC))
    if not done:
        raise fail(f"token {token_id}: no such active token")
    typer.echo(f"token {token_id} revoked")


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Upgrade the database schema (safe to run again)."""
    from ringback.db import make_engine
    from ringback.schema import current_revision, upgrade

    try:
        settings = load_settings()
    except ConfigError as exc:
        raise fail(str(exc)) from None
    engine = make_engine(settings.resolved_database_url)
    upgrade(engine, revision)
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reset: Annotated[bool, typer.Option(help="Start from an empty demo database.")] = False,
) -> None:
    """Run Ringback with the demo spa and a simulated phone network (no Twilio account)."""
    from ringback.demo.run import run_demo

    run_demo(host=host, port=port, reset=reset)


funnel_cli.register(app)  # report, export-calls, seed-demo-data
onboarding.register(app)  # init
backup_cli.register(app)  # backup, restore


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        typer.secho(f"ringback: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
