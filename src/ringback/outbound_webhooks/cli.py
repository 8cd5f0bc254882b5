"""``ringback webhooks``: register the clinic's endpoints, read the delivery log, replay."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from ringback.cli.support import fail, load_config
from ringback.db import transaction
from ringback.jobs import QueueUrlError
from ringback.outbound_webhooks import service as webhooks

if TYPE_CHECKING:
    from ringback.runtime import Runtime

app = typer.Typer(
    help="Outbound webhooks: send events to the clinic's own systems (CRM, sheets).",
    no_args_is_help=True,
)


@contextmanager
def _runtime() -> Iterator[Runtime]:
    from ringback.runtime import build_runtime  # the whole service: only when a command runs

    settings, locations = load_config()
    try:
        runtime = build_runtime(settings, locations)
    except QueueUrlError as exc:
        raise fail(str(exc)) from None
    try:
        yield runtime
    finally:
        runtime.close()


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


@app.command("add")
def add(
    url: Annotated[str, typer.Option("--url", help="Where to POST events (https:// advised).")],
    event: Annotated[
        list[str],
        typer.Option(
            "--event",
            "-e",
            help=f"An event to send (repeat), or 'all': {', '.join(webhooks.EVENTS)}.",
        ),
    ],
    location: Annotated[
        str | None,
        typer.Option("--location", "-l", help="Only this location's events (default: all)."),
    ] = None,
) -> None:
    """Register an endpoint; prints its signing secret once."""
    with _runtime() as runtime:
        try:
            with transaction(runtime.deps.sessions) as session:
                endpoint = webhooks.create_endpoint(
                    session,
                    url=url,
                    events=event,
                    location_id=location,
                    known_locations={loc.id for loc in runtime.locations},
                    now=datetime.now(UTC),
                    allow_private=runtime.deps.allow_private_webhooks,
                )
                endpoint_id, secret, events = endpoint.id, endpoint.secret, endpoint.events
        except webhooks.WebhookError as exc:
            raise fail(f"--{exc.field}: {exc.problem}") from None
    typer.echo(f"endpoint {endpoint_id} for {location or 'all locations'}: {url.strip()}")
    typer.echo(f"events: {', '.join(events)}")
    typer.echo("signing secret (shown once; it is shared with the receiver, keep it secret):")
    typer.echo(secret)


@app.command("list")
def list_endpoints(
    removed: Annotated[bool, typer.Option(help="Include removed endpoints.")] = False,
) -> None:
    """List endpoints (never their secrets)."""
    with _runtime() as runtime, runtime.deps.sessions() as session:
        for endpoint in webhooks.endpoints(session, include_removed=removed):
            if not endpoint.active:
                state = "removed"
            else:
                state = "paused" if endpoint.paused_at is not None else "active"
            typer.echo(
                f"{endpoint.id}\t{state}\t{endpoint.location_id or 'all'}\t{endpoint.url}\t"
                f"{','.join(endpoint.events)}"
            )


@app.command("remove")
def remove(endpoint_id: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Stop sending to an endpoint (its delivery log is kept)."""
    with _runtime() as runtime:
        with transaction(runtime.deps.sessions) as session:
            done = webhooks.remove_endpoint(session, endpoint_id)
        if not done:
            raise fail(f"endpoint {endpoint_id}: no such active endpoint")
    typer.echo(f"endpoint {endpoint_id} removed")


@app.command("pause")
def pause(endpoint_id: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Hold deliveries to an endpoint; events are kept and sent when it is resumed."""
    with _runtime() as runtime:
        try:
            with transaction(runtime.deps.sessions) as session:
                webhooks.pause_endpoint(session, endpoint_id, datetime.now(UTC))
        except webhooks.WebhookError as exc:
            raise fail(exc.problem) from None
    typer.echo(f"endpoint {endpoint_id} paused")


@app.command("resume")
def resume(endpoint_id: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """Send to a paused endpoint again, starting with what waited."""
    with _runtime() as runtime:
        try:
            with transaction(runtime.deps.sessions) as session:
                held = webhooks.resume_endpoint(session, runtime.deps, endpoint_id)
        except webhooks.WebhookError as exc:
            raise fail(exc.problem) from None
    typer.echo(f"endpoint {endpoint_id} resumed; {held} waiting deliveries queued")


@app.command("rotate-secret")
def rotate_secret(endpoint_id: Annotated[int, typer.Argument(help="The endpoint's id.")]) -> None:
    """A new signing secret, printed once; the old one stops signing at once."""
    with _runtime() as runtime:
        try:
            with transaction(runtime.deps.sessions) as session:
                secret = webhooks.rotate_secret(session, endpoint_id)
        except webhooks.WebhookError as exc:
            raise fail(exc.problem) from None
    typer.echo(f"endpoint {endpoint_id}: new signing secret (shown once):")
    typer.echo(secret)


@app.command("deliveries")
def list_deliveries(
    failed: Annotated[bool, typer.Option("--failed", help="Only those that gave up.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many, newest first.")] = 50,
) -> None:
    """The delivery log, newest first: status, attempts and the last response."""
    with _runtime() as runtime, runtime.deps.sessions() as session:
        for d in webhooks.deliveries(session, failed_only=failed, limit=limit):
            when = d.delivered_at if d.status == "delivered" else d.next_attempt_at
            outcome = d.last_error or (f"HTTP {d.last_status_code}" if d.last_status_code else "")
            typer.echo(
                f"{d.id}\t{d.status}\t{d.event}\tendpoint {d.endpoint_id}\t"
                f"{d.attempts} attempt(s)\t{_when(when)}\t{outcome}"
            )


@app.command("replay")
def replay(delivery_id: Annotated[int, typer.Argument(help="The delivery's id.")]) -> None:
    """Send a delivery again (same id and payload; receivers deduplicate on the id)."""
    with _runtime() as runtime:
        try:
            webhooks.replay(runtime.deps, delivery_id)
        except webhooks.WebhookError as exc:
            raise fail(exc.problem) from None
    typer.echo(f"delivery {delivery_id} queued to be sent again")
