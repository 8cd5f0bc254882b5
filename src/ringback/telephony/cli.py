"""``ringback twilio numbers|connect`` and ``ringback signalwire numbers|connect``.

Lists the account's phone numbers and points the chosen ones (by default: the numbers of
the locations file's locations on that provider) at this install's public URL.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ringback.cli.support import fail, load_config
from ringback.config import Locations, Settings, deployment_warnings
from ringback.telephony.numbers import (
    ConnectError,
    Outcome,
    choose,
    client_for,
    connect,
    missing_from_account,
    plan,
    webhook_settings,
)
from ringback.telephony.twilio_rest import (
    CompatibleMessagesClient,
    IncomingNumber,
    NumbersApiError,
)


def _client(provider: str, settings: Settings) -> CompatibleMessagesClient:
    try:
        return client_for(provider, settings)
    except ConnectError as exc:
        raise fail(exc.problem) from None


def _owner(number: IncomingNumber, locations: Locations) -> str:
    location = locations.by_number(number.phone_number)
    return location.id if location is not None else "-"


def _list(client: CompatibleMessagesClient) -> list[IncomingNumber]:
    try:
        return client.list_numbers()
    except NumbersApiError as exc:
        raise fail(str(exc)) from None


def build(provider: str) -> typer.Typer:
    """The sub-command for one provider (``twilio`` or ``signalwire``)."""
    label = "Twilio" if provider == "twilio" else "SignalWire"
    app = typer.Typer(
        help=f"The {label} account's phone numbers: list them, point them at this install.",
        no_args_is_help=True,
    )
    prefix = f"/{provider}"

    @app.command("numbers")
    def numbers() -> None:
        """List the account's numbers, their location and whether they point here."""
        settings, locations = load_config(check_providers=False)
        client = _client(provider, settings)
        wanted = webhook_settings(settings.public_url, prefix)
        for number in _list(client):
            changes = plan(number, wanted)
            where = "points here" if not changes else f"voice URL {number.voice_url or '(none)'}"
            typer.echo(f"{number.phone_number}\t{number.sid}\t{_owner(number, locations)}\t{where}")

    @app.command("connect")
    def connect_numbers(
        number: Annotated[
            list[str] | None,
            typer.Option(
                "--number",
                "-n",
                help="A number to connect (repeat); default: every location's number.",
            ),
        ] = None,
        dry_run: Annotated[bool, typer.Option(help="Show the changes, change nothing.")] = False,
        allow_insecure_url: Annotated[
            bool,
            typer.Option(help="Allow a loopback or plain-http RINGBACK_PUBLIC_URL (testing)."),
        ] = False,
    ) -> None:
        """Set the voice URL, call status callback and messaging URL of the numbers."""
        settings, locations = load_config(check_providers=False)
        url_problems = [
            line for line in deployment_warnings(settings, locations) if "PUBLIC_URL" in line
        ]
        if url_problems and not allow_insecure_url:
            raise fail(url_problems[0].removeprefix("environment: "))
        client = _client(provider, settings)
        on_account = {found.phone_number: found for found in _list(client)}
        if not number:
            for loc in missing_from_account(provider, on_account, locations):
                typer.secho(
                    f"warning: {loc.id}'s number {loc.phone_number} is not on this {label} account",
                    fg=typer.colors.YELLOW,
                    err=True,
                )
        try:
            chosen = choose(provider, number, on_account, locations)
        except ConnectError as exc:
            raise fail(f"--number: {exc.problem}" if number else exc.problem) from None
        wanted = webhook_settings(settings.public_url, prefix)
        try:
            outcomes = connect(client, chosen, wanted, dry_run=dry_run)
        except NumbersApiError as exc:
            raise fail(str(exc)) from None
        for outcome in outcomes:
            _print(outcome, locations)
        if any(o.problem is not None or (o.applied and not o.verified) for o in outcomes):
            raise typer.Exit(1)

    return app


def _print(outcome: Outcome, locations: Locations) -> None:
    number = outcome.number
    typer.echo(f"{number.phone_number} ({_owner(number, locations)}): {outcome.status}")
    for change in outcome.changes:
        typer.echo(f"  {change.field}: {change.before or '(empty)'} -> {change.after or '(empty)'}")
