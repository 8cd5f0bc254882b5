"""A small hand-built history whose every figure is worked out by hand in the tests.

Glow Med Spa (glow-downtown, Los Angeles) misses 14 calls from Friday 2026-03-06 to
Tuesday 2026-03-10, across the spring-forward DST change on Sunday 2026-03-08, plus one
call the evening before the range; Westside misses one. Each call is written as rows the
way the services write them (call, patient, conversation, text-back, replies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from ringback.models import Call, Conversation, Message, Patient

LA = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True)
class Miss:
    location: str
    local: datetime  # naive, in Los Angeles
    reason: str
    screening: str | None
    variant: str | None = None
    sent_ms: int | None = None  # text-back left this long after the call ended
    status: str = "delivered"
    replied: bool = False
    qualified: bool = False
    treatment: str | None = None
    booked_by: str | None = None
    value_cents: int | None = None
    handoff: str | None = None
    urgent: bool = False
    close: str | None = None
    replies_ms: Sequence[int] = field(default_factory=tuple)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute)  # noqa: DTZ001 - local wall time, zone added later


DOWNTOWN = "glow-downtown"
WESTSIDE = "glow-westside"

HISTORY: tuple[Miss, ...] = (
    # Thursday evening: the day before the range.
    Miss(DOWNTOWN, at(5, 23, 30), "after_hours", "texted", "A", sent_ms=700),
    # 1-3 Friday 03-06
    Miss(DOWNTOWN, at(6, 10, 15), "staff_busy", "texted", "A", sent_ms=800, replied=True,
         qualified=True, treatment="Botox", booked_by="bot", close="booked", replies_ms=(900, 1100)),
    Miss(DOWNTOWN, at(6, 10, 40), "staff_busy", "texted", "B", sent_ms=1200, replied=True,
         qualified=True, treatment="Filler", booked_by="staff", value_cents=90_000, close="booked",
         replies_ms=(700,)),
    Miss(DOWNTOWN, at(6, 19, 30), "after_hours", "texted", "A", sent_ms=1400, close="no_reply"),
    # 4-5 Saturday 03-07
    Miss(DOWNTOWN, at(7, 11, 5), "no_answer", "texted", "B", sent_ms=2500, status="undelivered"),
    Miss(DOWNTOWN, at(7, 11, 20), "caller_hung_up", "anonymous"),
    # 6-7 Sunday 03-08: 01:30 PST, then 03:30 PDT (02:00-03:00 does not exist that night)
    Miss(DOWNTOWN, at(8, 1, 30), "after_hours", "texted", "A", sent_ms=45_000, replied=True,
         handoff="urgent", urgent=True, replies_ms=(2000,)),
    Miss(DOWNTOWN, at(8, 3, 30), "after_hours", "cooldown"),
    # 8-10 Monday 03-09
    Miss(DOWNTOWN, at(9, 9, 10), "staff_busy", "joined_conversation"),
    Miss(DOWNTOWN, at(9, 9, 50), "no_answer", "texted", "B", sent_ms=600, replied=True,
         close="opted_out"),
    Miss(DOWNTOWN, at(9, 14, 0), "no_answer", "landline"),
    # 11-14 Tuesday 03-10
    Miss(DOWNTOWN, at(10, 16, 45), "caller_hung_up", "texted", "A", status="failed"),
    Miss(DOWNTOWN, at(10, 17, 5), "staff_busy", "appointment_textback", "A", sent_ms=900,
         replied=True, qualified=True, treatment="HydraFacial", booked_by="page", close="booked",
         replies_ms=(1300,)),
    Miss(DOWNTOWN, at(10, 17, 30), "no_answer", None),
    Miss(DOWNTOWN, at(10, 23, 30), "after_hours", "wrong_number"),
    # Westside, Monday
    Miss(WESTSIDE, at(9, 12, 0), "staff_busy", "texted", "A", sent_ms=1000, replied=True,
         qualified=True, treatment="Botox", booked_by="bot", close="booked", replies_ms=(800,)),
)  # fmt: skip


def add_history(session: Session, history: Sequence[Miss] = HISTORY) -> list[Call]:
    """Write the history as the services would have; returns the calls in order."""
    calls = []
    for n, miss in enumerate(history):
        missed_at = miss.local.replace(tzinfo=LA).astimezone(UTC)
        phone = f"+1213555{n:04d}"
        patient = None
        if miss.screening not in ("anonymous",):
            patient = Patient(location_id=miss.location, phone=phone, created_at=missed_at)
            session.add(patient)
            session.flush()
        call = Call(
            call_sid=f"CAhist{n:04d}",
            location_id=miss.location,
            patient_id=patient.id if patient else None,
            from_raw=phone if patient else "anonymous",
            from_number=phone if patient else None,
            started_at=missed_at - timedelta(seconds=20),
            mode="ring",
            after_hours=miss.reason == "after_hours",
            outcome="missed",
            miss_reason=miss.reason,
            missed_at=missed_at,
            screening=miss.screening,
            screened_at=missed_at if miss.screening else None,
        )
        session.add(call)
        session.flush()
        calls.append(call)
        if miss.screening not in ("texted", "appointment_textback") or patient is None:
            continue
        first_reply = missed_at + timedelta(minutes=3) if miss.replied else None
        conversation = Conversation(
            location_id=miss.location,
            patient_id=patient.id,
            variant=miss.variant,
            state={},
            opened_at=missed_at,
            status="booked" if miss.close == "booked" else "closed" if miss.close else "active",
            is_open=miss.close is None,
            close_reason=miss.close,
            first_reply_at=first_reply,
            qualified_at=missed_at + timedelta(minutes=5) if miss.qualified else None,
            treatment=miss.treatment,
            booked_by=miss.booked_by,
            booked_value_cents=miss.value_cents,
            handoff_reason=miss.handoff,
            handed_off_at=missed_at + timedelta(minutes=4) if miss.handoff else None,
            urgent_at=missed_at + timedelta(minutes=4) if miss.urgent else None,
        )
        if miss.urgent:
            conversation.status = "urgent"
        session.add(conversation)
        session.flush()
        call.conversation_id = conversation.id
        sent_at = missed_at + timedelta(milliseconds=miss.sent_ms) if miss.sent_ms else None
        session.add(
            Message(
                location_id=miss.location,
                conversation_id=conversation.id,
                patient_id=patient.id,
                call_id=call.id,
                direction="outbound",
                kind="textback",
                from_number="+13105550100",
                to_number=phone,
                body="Hi, sorry we missed your call!",
                idempotency_key=f"textback:{call.id}",
                status=miss.status,
                created_at=missed_at,
                trigger_at=missed_at,
                sent_at=sent_at,
            )
        )
        for i, ms in enumerate(miss.replies_ms):
            assert first_reply is not None
            inbound_at = first_reply + timedelta(minutes=2 * i)
            session.add(
                Message(
                    location_id=miss.location,
                    conversation_id=conversation.id,
                    patient_id=patient.id,
                    direction="outbound",
                    kind="reply",
                    from_number="+13105550100",
                    to_number=phone,
                    body="Thanks!",
                    idempotency_key=f"conv:{conversation.id}:{i}:0",
                    status="delivered",
                    created_at=inbound_at,
                    trigger_at=inbound_at,
                    sent_at=inbound_at + timedelta(milliseconds=ms),
                )
            )
    session.flush()
    return calls
