"""``ringback twilio numbers|connect`` and ``ringback signalwire numbers|connect``.

Lists the account's phone numbers and points the chosen ones (by default: the numbers of
the locations file's locations on that provider) at this install's public URL.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ringback.cli.support import fail, load_config
from ringback.config import Locations, Settings, deployment_warnings
from ringback.phones import InvalidPhoneNumber, normalize_e164
from ringback.telephony.numbers import Outcome, connect, plan, webhook_settings
from ringback.telephony.twilio_rest import (
    CompatibleMessagesClient,
    IncomingNumber,
    NumbersApiError,
)


def _client(provider: str, settings: Settings) -> CompatibleMessagesClient:
    if provider == "twilio":
        from ringback.telephony.twilio_rest import TwilioRestClient

        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise fail("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN must be set (Twilio console)")
        return TwilioRestClient(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            api_base_url=settings.twilio_api_base_url,
        )
    from ringback.telephony.senders import SIGNALWIRE_SMS_STATUS_PATH
    from ringback.telephony.signalwire_rest import SignalWireRestClient

    if not (
        settings.signalwire_project_id
        and settings.signalwire_api_token
        and settings.signalwire_space_url
    ):
        raise fail(
            "SIGNALWIRE_PROJECT_ID, SIGNALWIRE_API_TOKEN and SIGNALWIRE_SPACE_URL must be set"
        )
    return SignalWireRestClient(
        settings.signalwire_project_id,
        settings.signalwire_api_token,
        api_base_url=settings.signalwire_api_base_url,
        status_callback_url=settings.public_url + SIGNALWIRE_SMS_STATUS_PATH,
    )


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
        ours = [loc for loc in locations if loc.provider == provider]
        if number:
            chosen = []
            for raw in number:
                try:
                    e164 = normalize_e164(raw)
                except InvalidPhoneNumber:
                    raise fail(f"--number: expected a phone number, got {raw!r}") from None
                if e164 not in on_account:
                    raise fail(f"--number: {e164} is not on this {label} account")
                location = locations.by_number(e164)
                if location is None or location.provider != provider:
                    raise fail(
                        f"--number: {e164} is not the number of a {provider} location in "
                        f"{settings.config}; add it there first (calls to it would be refused)"
                    )
                chosen.append(on_account[e164])
        else:
            chosen = [
                on_account[loc.phone_number] for loc in ours if loc.phone_number in on_account
            ]
            for loc in ours:
                if loc.phone_number not in on_account:
                    typer.secho(
                        f"warning: {loc.id}'s number {loc.phone_number} is not on this "
                        f"{label} account",
                        fg=typer.colors.YELLOW,
                        err=True,
                    )
            if not chosen:
                raise fail(f"none of the locations' numbers is on this {label} account")
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
