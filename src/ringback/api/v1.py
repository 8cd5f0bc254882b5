"""The JSON API (``/api/v1``), for a clinic's other tools. OpenAPI at ``/openapi.json``.

Every endpoint needs a bearer API token (``ringback tokens create``) or a signed-in
staff session, and sees only the locations its account may see. The router itself
depends on :func:`api_user`, so an endpoint added here cannot forget the check; the
``HTTPBearer`` dependency only documents the scheme in OpenAPI (it enforces nothing).

Timestamps are ISO-8601 in UTC with an explicit offset (``+00:00``). Anything missing
or not visible to the caller is the same 404, so the API does not tell which it was.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Security
from fastapi.security import HTTPBearer
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from ringback.api import queries
from ringback.api.errors import bad_request, invalid
from ringback.api.queries import ConversationStatus
from ringback.conversation.machine import State
from ringback.db import transaction
from ringback.deps import Deps
from ringback.models import Call, Conversation, Message, Note, Patient
from ringback.roles import can
from ringback.web import RowId, SignedIn, api_user, deps_of


class Problem(BaseModel):
    """An error: what was wrong, naming the field or the thing not found."""

    detail: str = Field(examples=["conversation 42: not found"])


_bearer = HTTPBearer(
    auto_error=False,  # documents the scheme; api_user does the check
    scheme_name="apiToken",
    bearerFormat="rb_…",
    description=(
        "An API token from `ringback tokens create --user you@clinic.example --name 'CRM sync'`, "
        "sent as `Authorization: Bearer rb_…`. A signed-in staff session cookie also works."
    ),
)

router = APIRouter(
    prefix="/api/v1",
    tags=["api"],
    dependencies=[Security(_bearer), Depends(api_user)],
    responses={401: {"model": Problem, "description": "No API token or session, or revoked"}},
)
# Resolved once per request (FastAPI caches it), shared with the router's own dependency.
Caller = Annotated[SignedIn, Depends(api_user)]

_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Not found, or at a location you may not see"}
}


def _visible(caller: SignedIn) -> queries.Visible:
    return None if can(caller, "all_locations") else frozenset(caller.location_ids)


# --- types -------------------------------------------------------------------------------


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[
    AwareDatetime,
    AfterValidator(_as_utc),
    PlainSerializer(_iso, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "format": "date-time", "examples": ["2026-11-24T18:00:05+00:00"]}
    ),
]
PatientStatus = Literal["new", "returning"]
Timing = Literal["asap", "flexible", "unsure"]


# --- responses ---------------------------------------------------------------------------


class Me(BaseModel):
    email: str
    name: str
    role: str
    location_ids: list[str] | None  # None: every location (owner)


class LocationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "glow-downtown",
                    "name": "Glow Med Spa",
                    "phone_number": "+13105550100",
                    "timezone": "America/Los_Angeles",
                }
            ]
        }
    )

    id: str
    name: str
    phone_number: str = Field(description="The number callers dial, E.164")
    timezone: str = Field(description="IANA zone the location's hours are in")


class PatientSummary(BaseModel):
    id: int
    phone: str = Field(description="E.164", examples=["+12135550142"])
    first_name: str | None
    status: PatientStatus | None = Field(description="new or returning, once known")
    opted_out: bool = Field(description="True when the patient asked not to be texted")


class TimeWindowOut(BaseModel):
    start: Timestamp
    end: Timestamp


class Captured(BaseModel):
    """What the bot understood from the patient's texts so far."""

    treatments: list[str] = Field(examples=[["Botox"]])
    times: list[TimeWindowOut] = Field(description="When the patient said they could come in")
    timing: Timing | None
    patient: PatientStatus | None = Field(description="What the patient said: new or returning")


_SUMMARY_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "location_id": "glow-downtown",
    "status": "needs_staff",
    "is_open": True,
    "patient": {
        "id": 7,
        "phone": "+12135550142",
        "first_name": None,
        "status": "new",
        "opted_out": False,
    },
    "treatment": "Botox",
    "captured": {
        "treatments": ["Botox"],
        "times": [],
        "timing": None,
        "patient": None,
    },
    "handoff_reason": "asked_for_person",
    "urgent": False,
    "opened_at": "2026-11-24T18:00:01+00:00",
    "updated_at": "2026-11-24T18:02:10+00:00",
    "last_inbound_at": "2026-11-24T18:02:09+00:00",
    "last_outbound_at": "2026-11-24T18:02:10+00:00",
    "booked_value_cents": None,
    "close_reason": None,
}
_DETAIL_EXAMPLE: dict[str, Any] = {
    **_SUMMARY_EXAMPLE,
    "messages": [
        {
            "id": 101,
            "direction": "outbound",
            "kind": "textback",
            "body": "Hi, this is Glow Med Spa - sorry we missed your call! What treatment were "
            "you calling about? Reply STOP to opt out.",
            "status": "delivered",
            "error_code": None,
            "created_at": "2026-11-24T18:00:01+00:00",
            "sent_at": "2026-11-24T18:00:02+00:00",
        },
        {
            "id": 102,
            "direction": "inbound",
            "kind": "inbound",
            "body": "botox. can someone call me though?",
            "status": "received",
            "error_code": None,
            "created_at": "2026-11-24T18:02:09+00:00",
            "sent_at": None,
        },
    ],
    "calls": [
        {
            "call_sid": "CA0123456789abcdef0123456789abcdef",
            "started_at": "2026-11-24T17:59:40+00:00",
            "miss_reason": "no_answer",
            "after_hours": False,
            "screening": "texted",
        }
    ],
    "notes": [
        {
            "body": "Called back, left a voicemail.",
            "author_email": "front@clinic.example",
            "conversation_id": 42,
            "created_at": "2026-11-24T18:30:00+00:00",
        }
    ],
}


class ConversationSummary(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_SUMMARY_EXAMPLE]})

    id: int
    location_id: str
    status: ConversationStatus
    is_open: bool
    patient: PatientSummary
    treatment: str | None
    captured: Captured
    handoff_reason: str | None = Field(
        description="Why staff were asked to take over, e.g. asked_for_person, urgent"
    )
    urgent: bool = Field(description="True once the patient described an urgent symptom")
    opened_at: Timestamp
    updated_at: Timestamp
    last_inbound_at: Timestamp | None
    last_outbound_at: Timestamp | None
    booked_value_cents: int | None
    close_reason: str | None


class ConversationList(BaseModel):
    items: list[ConversationSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null on the last"
    )


class MessageOut(BaseModel):
    id: int
    direction: Literal["inbound", "outbound"]
    kind: str = Field(description="textback, reply, nudge, keyword, staff, or inbound")
    body: str
    status: str = Field(
        description="Outbound: pending, sending, queued, sent, delivered, undelivered, failed, "
        "suppressed. Inbound: received"
    )
    error_code: int | None = Field(description="The carrier's error code when not delivered")
    created_at: Timestamp
    sent_at: Timestamp | None


class CallOut(BaseModel):
    call_sid: str
    started_at: Timestamp
    miss_reason: str | None = Field(
        description="staff_busy, no_answer, after_hours, caller_hung_up or failed; null if answered"
    )
    after_hours: bool
    screening: str | None = Field(description="What screening decided, e.g. texted, cooldown")


class NoteOut(BaseModel):
    body: str
    author_email: str | None
    conversation_id: int | None = Field(description="The conversation it was written on")
    created_at: Timestamp


class ConversationDetail(ConversationSummary):
    model_config = ConfigDict(json_schema_extra={"examples": [_DETAIL_EXAMPLE]})

    messages: list[MessageOut] = Field(description="The texts with the patient, oldest first")
    calls: list[CallOut]
    notes: list[NoteOut] = Field(
        description="Staff notes on the patient, from this and their other conversations"
    )


class Consent(BaseModel):
    opted_out_at: Timestamp | None
    opt_out_source: str | None = Field(description="How they opted out, e.g. keyword, carrier")


class PatientRecord(BaseModel):
    id: int
    location_id: str
    phone: str = Field(description="E.164", examples=["+12135550142"])
    first_name: str | None
    last_name: str | None
    status: PatientStatus | None
    consent: Consent
    conversation_ids: list[int]


# --- from rows to responses ----------------------------------------------------------------


def _patient_summary(patient: Patient) -> PatientSummary:
    return PatientSummary(
        id=patient.id,
        phone=patient.phone,
        first_name=patient.first_name,
        status=_patient_status(patient.status),
        opted_out=patient.opted_out,
    )


_PATIENT_STATUSES: dict[str | None, PatientStatus] = {"new": "new", "returning": "returning"}
_TIMINGS: dict[str | None, Timing] = {"asap": "asap", "flexible": "flexible", "unsure": "unsure"}


def _patient_status(value: str | None) -> PatientStatus | None:
    return _PATIENT_STATUSES.get(value)


def _timing(value: str | None) -> Timing | None:
    return _TIMINGS.get(value)


def _captured(conversation: Conversation, zone: ZoneInfo) -> Captured:
    state = State.from_json(conversation.state)

    def moment(text: str) -> datetime:
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)

    return Captured(
        treatments=list(state.treatments),
        times=[TimeWindowOut(start=moment(start), end=moment(end)) for start, end in state.times],
        timing=_timing(state.timing),
        patient=_patient_status(state.patient),
    )


def _summary(conversation: Conversation, deps: Deps) -> ConversationSummary:
    location = deps.locations.get(conversation.location_id)
    zone = ZoneInfo(location.timezone if location else "UTC")
    return ConversationSummary(
        id=conversation.id,
        location_id=conversation.location_id,
        status=conversation.status,
        is_open=conversation.is_open,
        patient=_patient_summary(conversation.patient),
        treatment=conversation.treatment,
        captured=_captured(conversation, zone),
        handoff_reason=conversation.handoff_reason,
        urgent=conversation.urgent_at is not None,
        opened_at=conversation.opened_at,
        updated_at=conversation.updated_at,
        last_inbound_at=conversation.last_inbound_at,
        last_outbound_at=conversation.last_outbound_at,
        booked_value_cents=conversation.booked_value_cents,
        close_reason=conversation.close_reason,
    )


def _message(message: Message) -> MessageOut:
    return MessageOut(
        id=message.id,
        direction="inbound" if message.direction == "inbound" else "outbound",
        kind=message.kind,
        body=message.body,
        status=message.status,
        error_code=message.error_code,
        created_at=message.created_at,
        sent_at=message.sent_at,
    )


def _call(call: Call) -> CallOut:
    return CallOut(
        call_sid=call.call_sid,
        started_at=call.started_at,
        miss_reason=call.miss_reason,
        after_hours=call.after_hours,
        screening=call.screening,
    )


def _note(note: Note, author_email: str | None) -> NoteOut:
    return NoteOut(
        body=note.body,
        author_email=author_email,
        conversation_id=note.conversation_id,
        created_at=note.created_at,
    )


# --- query parameters ----------------------------------------------------------------------


def _plus_from_shell(value: object) -> object:
    # An unencoded "+00:00" arrives as " 00:00" (a "+" in a query string is a space).
    return value.replace(" ", "+") if isinstance(value, str) else value


UpdatedSince = Annotated[
    AwareDatetime | None,
    BeforeValidator(_plus_from_shell),
    Query(
        description="Only conversations changed at or after this moment: ISO-8601 with an "
        "offset, e.g. 2026-11-24T18:00:00Z",
        examples=["2026-11-24T18:00:00Z"],
    ),
]
CursorParam = Annotated[
    str | None,
    Query(max_length=500, description="`next_cursor` from the previous page"),
]


# --- endpoints ---------------------------------------------------------------------------


@router.get("/me", response_model=Me, summary="Who this token or session acts as")
def me(caller: Caller) -> Me:
    return Me(
        email=caller.email,
        name=caller.name,
        role=caller.role,
        location_ids=None if can(caller, "all_locations") else list(caller.location_ids),
    )


@router.get(
    "/locations",
    response_model=list[LocationOut],
    summary="The locations you can see",
)
def locations(request: Request, caller: Caller) -> list[LocationOut]:
    return [
        LocationOut(
            id=location.id,
            name=location.name,
            phone_number=location.phone_number,
            timezone=location.timezone,
        )
        for location in deps_of(request).locations
        if caller.can_see(location.id)
    ]


@router.get(
    "/conversations",
    response_model=ConversationList,
    summary="Conversations, oldest change first, a page at a time",
    description=(
        "Ordered by `updated_at` then `id`, so a client can sync: page through with "
        "`next_cursor`, then next time pass the last `updated_at` it saw as `updated_since` "
        "(inclusive, so expect that one again). A conversation that changes while you page "
        "moves to the end and is returned again rather than skipped."
    ),
)
def list_conversations(
    request: Request,
    caller: Caller,
    status: Annotated[ConversationStatus | None, Query(description="Only this status")] = None,
    location: Annotated[
        str | None, Query(max_length=64, description="Only this location id")
    ] = None,
    updated_since: UpdatedSince = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    cursor: CursorParam = None,
) -> ConversationList:
    deps = deps_of(request)
    if location is not None and (
        deps.locations.get(location) is None or not caller.can_see(location)
    ):
        # Same answer for an unknown location and one the caller may not see.
        raise invalid("query", "location", location, "no location with this id that you can see")
    # Well-formed for their type but unusable: 400, in the same shape as a 422.
    if updated_since is not None:
        try:
            queries.in_range(updated_since)
        except queries.OutOfRange as exc:
            raise bad_request("query", "updated_since", str(updated_since), str(exc)) from exc
    try:
        after = queries.Cursor.decode(cursor) if cursor is not None else None
    except queries.BadCursor as exc:
        raise bad_request("query", "cursor", cursor, str(exc)) from exc
    filters = queries.ConversationFilter(
        status=status, location_id=location, updated_since=updated_since
    )
    with transaction(deps.sessions) as session:
        page = queries.conversations_page(
            session, _visible(caller), filters, after=after, limit=limit
        )
        items = [_summary(c, deps) for c in page.conversations]
    return ConversationList(
        items=items, next_cursor=page.next_cursor.encode() if page.next_cursor else None
    )


@router.get(
    "/conversations/{conversation_id}",
    response_model=ConversationDetail,
    responses=_NOT_FOUND,
    summary="One conversation with its texts, calls and staff notes",
)
def get_conversation(
    request: Request,
    caller: Caller,
    conversation_id: RowId,
) -> ConversationDetail:
    deps = deps_of(request)
    with transaction(deps.sessions) as session:
        found = queries.conversation(session, _visible(caller), conversation_id)
        if found is None:
            raise HTTPException(404, f"conversation {conversation_id}: not found")
        return ConversationDetail(
            **dict(_summary(found, deps)),
            messages=[_message(m) for m in queries.thread(session, found.id)],
            calls=[_call(c) for c in queries.calls(session, found.id)],
            notes=[_note(n, email) for n, email in queries.notes(session, found.patient_id)],
        )


@router.get(
    "/patients/{patient_id}",
    response_model=PatientRecord,
    responses=_NOT_FOUND,
    summary="A patient's record: phone, names, consent and conversations",
)
def get_patient(
    request: Request,
    caller: Caller,
    patient_id: RowId,
) -> PatientRecord:
    with transaction(deps_of(request).sessions) as session:
        found = queries.patient(session, _visible(caller), patient_id)
        if found is None:
            raise HTTPException(404, f"patient {patient_id}: not found")
        return PatientRecord(
            id=found.id,
            location_id=found.location_id,
            phone=found.phone,
            first_name=found.first_name,
            last_name=found.last_name,
            status=_patient_status(found.status),
            consent=Consent(opted_out_at=found.opted_out_at, opt_out_source=found.opt_out_source),
            conversation_ids=queries.conversation_ids(session, found.id),
        )
