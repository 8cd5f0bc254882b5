"""``POST /api/v1/missed-calls``: any phone system can report a missed call.

RingCentral, Dialpad, 3CX or a carrier portal's webhook (usually through a small bridge
such as Zapier) posts the miss with an API token; it gets the same screening, text-back
and conversation as a call Twilio told us about. The report goes through the same
durable inbox as Twilio's webhooks: validated, stored keyed by the caller's event id with
an insert that ignores repeats, handled by a job, answered at once. Sending the same
event id again answers 200 with what became of the first and sends nothing new.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, Response, Security
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ringback.api import v1 as api_v1
from ringback.api.errors import invalid
from ringback.api.v1 import Caller, Problem
from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.inbox import events
from ringback.missed_calls import service as missed_calls
from ringback.phones import InvalidPhoneNumber, is_anonymous, normalize_e164
from ringback.web import SignedIn, deps_of

PROVIDER = "api"
KIND = "api_missed_call"
# The stored key is "<location id>:<event id>" in 120 characters; location ids take 63.
MAX_EVENT_ID = 56
# A phone system's clock may run a little ahead of ours; further is a mistake.
FUTURE_SKEW = timedelta(minutes=5)
# Texting "sorry we missed your call" a day later helps nobody and confuses the patient.
TOO_OLD = timedelta(hours=24)

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    # The JSON API's scheme, documented once in OpenAPI; the ``Caller`` dependency enforces it.
    dependencies=[Security(api_v1._bearer)],
    responses={401: {"model": Problem, "description": "No API token or session, or revoked"}},
)

MissReason = Literal["no_answer", "staff_busy", "after_hours", "caller_hung_up"]


class MissedCallReport(BaseModel):
    """A missed call, as another phone system saw it."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "event_id": "rc-7c1d2e90",
                    "location_id": "glow-downtown",
                    "from": "+12135550142",
                    "occurred_at": "2026-11-24T18:00:00Z",
                    "reason": "no_answer",
                }
            ]
        },
    )

    event_id: str = Field(
        min_length=1,
        max_length=MAX_EVENT_ID,
        pattern=r"^[!-~]+$",
        description="Your system's id for this call (printable ASCII, no spaces). A repeat "
        "of it is answered 200 and sends nothing new.",
    )
    location_id: str | None = Field(
        default=None, max_length=64, description="The location; or give `to` instead"
    )
    to: str | None = Field(
        default=None, max_length=40, description="The number that was called: the location's"
    )
    from_: str = Field(
        alias="from",
        max_length=40,
        description='The caller\'s number (E.164 preferred), or "anonymous" when withheld',
    )
    occurred_at: AwareDatetime | None = Field(
        default=None,
        description="When the call was missed, ISO-8601 with an offset (default: now). "
        "At most 24 hours ago.",
    )
    reason: MissReason | None = Field(
        default=None,
        description="Why it was missed (default: after_hours when the location is closed, "
        "else no_answer)",
    )


class MissedCallReceipt(BaseModel):
    """What became of a report: accepted now (202), or already received (200)."""

    event_id: str
    location_id: str
    status: Literal["accepted", "duplicate"]
    call_id: int | None = Field(
        description="The call Ringback recorded; null until the report has been handled"
    )
    screening: str | None = Field(
        description="What screening decided (texted, anonymous, opted_out, cooldown, ...); "
        "null until handled"
    )


def _not_found(field: str, value: str) -> HTTPException:
    # The same answer for a location that does not exist and one the token may not see.
    return HTTPException(404, f"{field}: no location {value!r} that you can see")


def _location(deps: Deps, caller: SignedIn, report: MissedCallReport) -> Location:
    location: Location | None = None
    if report.location_id is not None:
        location = deps.locations.get(report.location_id)
        if location is None or not caller.can_see(location.id):
            raise _not_found("location_id", report.location_id)
    if report.to is not None:
        try:
            number = normalize_e164(report.to)
        except InvalidPhoneNumber as exc:
            raise invalid("body", "to", report.to, f"not a phone number ({exc})") from None
        called = deps.locations.by_number(number)
        if location is None:
            if called is None or not caller.can_see(called.id):
                raise _not_found("to", number)
            location = called
        elif called is None or called.id != location.id:
            raise invalid("body", "to", report.to, f"is not the number of location {location.id!r}")
    if location is None:
        raise invalid("body", "location_id", None, "give location_id or to (the number called)")
    return location


def _caller_number(report: MissedCallReport) -> str:
    raw = report.from_.strip()
    if is_anonymous(raw):
        return raw  # screened like a withheld number from Twilio: recorded, never texted
    try:
        return normalize_e164(raw)
    except InvalidPhoneNumber as exc:
        raise invalid("body", "from", report.from_, f"not a phone number ({exc})") from None


def _occurred_at(deps: Deps, report: MissedCallReport) -> datetime:
    now = deps.clock()
    if report.occurred_at is None:
        return now
    if report.occurred_at > now + FUTURE_SKEW:
        raise invalid("body", "occurred_at", report.occurred_at.isoformat(), "is in the future")
    if report.occurred_at < now - TOO_OLD:
        raise invalid(
            "body",
            "occurred_at",
            report.occurred_at.isoformat(),
            "more than 24 hours ago; not texted",
        )
    return report.occurred_at


@router.post(
    "/missed-calls",
    status_code=202,
    response_model=MissedCallReceipt,
    summary="Report a missed call from any phone system",
    description=(
        "Ringback screens the caller and texts them back exactly as for a call Twilio "
        "reported. Idempotent on `event_id` within a location: a repeat answers 200 with "
        "what became of the first report. The token's account must be able to see the "
        "location."
    ),
    responses={
        200: {"model": MissedCallReceipt, "description": "Already received; nothing new sent"},
        404: {"model": Problem, "description": "No such location, or one you may not see"},
        409: {"model": Problem, "description": "This event id was used for another caller"},
    },
)
def report_missed_call(
    request: Request, response: Response, caller: Caller, report: MissedCallReport
) -> MissedCallReceipt:
    deps = deps_of(request)
    location = _location(deps, caller, report)
    number = _caller_number(report)
    occurred = _occurred_at(deps, report)
    payload = {
        "event_id": report.event_id,
        "location_id": location.id,
        "from": number,
        "occurred_at": occurred.isoformat(),
        "reason": report.reason,
    }
    with transaction(deps.sessions) as session:
        stored = events.record(
            session,
            deps,
            provider=PROVIDER,
            kind=KIND,
            location_id=location.id,
            payload=payload,
            received_at=deps.clock(),
        )
        if stored is not None:
            return MissedCallReceipt(
                event_id=report.event_id,
                location_id=location.id,
                status="accepted",
                call_id=None,
                screening=None,
            )
        first = events.stored_payload(session, provider=PROVIDER, kind=KIND, payload=payload)
        if first is not None and first.get("from") != number:
            raise HTTPException(
                409,
                f"event_id: {report.event_id!r} was already reported for another caller; "
                "use a new id for a new call",
            )
        call = missed_calls.reported_call(session, location.id, report.event_id)
        response.status_code = 200
        return MissedCallReceipt(
            event_id=report.event_id,
            location_id=location.id,
            status="duplicate",
            call_id=call.id if call else None,
            screening=call.screening if call else None,
        )
