"""Connect phone numbers (owners): the Twilio or SignalWire account's numbers, which point
here, the changes that would point the chosen ones here, applying them, and reading each
back to verify. The same steps as ``ringback twilio connect``, from
:mod:`ringback.telephony.numbers`."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from ringback.config import Locations, Settings, deployment_warnings
from ringback.logs import log_event
from ringback.settings.owners import gate, render
from ringback.telephony import numbers
from ringback.telephony.twilio_rest import IncomingNumber, NumbersApiError
from ringback.web import SignedIn, csrf_protected, deps_of, staff_frame, staff_user

log = logging.getLogger(__name__)
router = APIRouter(prefix="/staff/settings/phone-numbers", include_in_schema=False)
Viewer = Annotated[SignedIn, Depends(staff_user)]
Poster = Annotated[SignedIn, Depends(csrf_protected)]
WHY = "Phone numbers are connected by an owner."
Numbers = Annotated[list[str] | None, Form(max_length=40)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.runtime.settings
    return settings


def _url_problem(settings: Settings, locations: Locations) -> str | None:
    found = [line for line in deployment_warnings(settings, locations) if "PUBLIC_URL" in line]
    return found[0].removeprefix("environment: ") if found else None


def _row(
    number: IncomingNumber, locations: Locations, provider: str, wanted: Any
) -> dict[str, Any]:
    location = locations.by_number(number.phone_number)
    ours = location is not None and location.provider == provider
    blocked = numbers.connect_blocked(number)
    changes = numbers.plan(number, wanted)
    return {
        "phone": number.phone_number,
        "name": number.friendly_name,
        "location": location.name if ours and location is not None else "",
        "selectable": ours and blocked is None,
        "suggested": ours and blocked is None and bool(changes),
        "state": blocked
        or ("points here" if not changes else f"{len(changes)} setting(s) point elsewhere"),
        "here": not changes and blocked is None,
    }


def _outcome(outcome: numbers.Outcome, locations: Locations) -> dict[str, Any]:
    location = locations.by_number(outcome.number.phone_number)
    return {
        "phone": outcome.number.phone_number,
        "location": location.name if location is not None else "",
        "status": outcome.status,
        "ok": outcome.problem is None and (outcome.verified or not outcome.applied),
        "changes": [
            {"field": c.field, "before": c.before or "(empty)", "after": c.after or "(empty)"}
            for c in outcome.changes
        ],
    }


def _page(
    request: Request,
    user: SignedIn,
    provider: str,
    *,
    step: str = "list",
    chosen: list[str] | None = None,
    allow_insecure: bool = False,
) -> Response:
    deps = deps_of(request)
    refused = gate(deps, user, "phone_numbers", WHY)
    if refused is not None:
        return refused
    context: dict[str, Any] = {
        **staff_frame(deps, user),
        "provider": provider,
        "label": numbers.LABELS.get(provider, provider),
        "providers": numbers.LABELS,
        "step": step,
        "rows": [],
        "outcomes": [],
        "chosen": chosen or [],
        "error": None,
        "url_problem": None,
        "allow_insecure": allow_insecure,
        "missing": [],
    }
    if provider not in numbers.PROVIDERS:
        context["error"] = numbers.ConnectError(
            "provider", f"expected twilio or signalwire, got {provider[:40]!r}"
        )
        context["provider"] = "twilio"
        return render("staff/phone_numbers.html", 400, **context)
    settings = _settings(request)
    locations = deps.locations
    context["url_problem"] = _url_problem(settings, locations)
    wanted = numbers.webhook_settings(settings.public_url, f"/{provider}")
    context["wanted"] = wanted
    try:
        client = numbers.client_for(provider, settings)
    except numbers.ConnectError as exc:
        context["error"] = exc
        return render("staff/phone_numbers.html", 200 if step == "list" else 409, **context)
    try:
        on_account = {found.phone_number: found for found in client.list_numbers()}
        context["rows"] = [_row(n, locations, provider, wanted) for n in on_account.values()]
        context["missing"] = [
            {"name": loc.name, "phone": loc.phone_number}
            for loc in numbers.missing_from_account(provider, on_account, locations)
        ]
        if step == "list":
            return render("staff/phone_numbers.html", **context)
        if not chosen:
            raise numbers.ConnectError("number", "choose at least one number to connect")
        picked = numbers.choose(provider, chosen, on_account, locations)
        context["chosen"] = [n.phone_number for n in picked]
        if step == "connect" and context["url_problem"] and not allow_insecure:
            raise numbers.ConnectError("url", context["url_problem"])
        outcomes = numbers.connect(client, picked, wanted, dry_run=step == "plan")
    except numbers.ConnectError as exc:
        context["error"] = exc
        context["step"] = "list"
        return render("staff/phone_numbers.html", 400 if exc.field != "url" else 409, **context)
    except NumbersApiError as exc:
        context["error"] = numbers.ConnectError(provider, str(exc))
        context["step"] = "list"
        return render("staff/phone_numbers.html", 502, **context)
    finally:
        client.close()
    context["outcomes"] = [_outcome(o, locations) for o in outcomes]
    if step == "connect":
        log_event(
            log,
            "staff.numbers_connected",
            user_id=user.user_id,
            provider=provider,
            numbers=len(outcomes),
            verified=sum(1 for o in outcomes if o.verified),
        )
    return render("staff/phone_numbers.html", **context)


@router.get("", response_class=HTMLResponse)
def phone_numbers(request: Request, user: Viewer, provider: str = "twilio") -> Response:
    """The account's numbers and whether each sends its calls and texts here."""
    return _page(request, user, provider)


@router.post("/plan", response_class=HTMLResponse)
def plan_changes(
    request: Request,
    user: Poster,
    provider: Annotated[str, Form(max_length=20)] = "twilio",
    number: Numbers = None,
) -> Response:
    """What would change on the chosen numbers; nothing is changed yet."""
    return _page(request, user, provider, step="plan", chosen=number)


@router.post("/connect", response_class=HTMLResponse)
def connect_numbers(
    request: Request,
    user: Poster,
    provider: Annotated[str, Form(max_length=20)] = "twilio",
    number: Numbers = None,
    allow_insecure: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Apply the changes, then read each number back and say whether it points here."""
    return _page(
        request, user, provider, step="connect", chosen=number, allow_insecure=bool(allow_insecure)
    )
