"""The service in process, without HTTP or a queue: provider events are recorded and
handled synchronously, texts go to a recording sender, the clock is set by the test.

For property-based tests that drive thousands of steps: every step goes through the same
code a webhook reaches (``inbox.events.record`` then ``handle``), only faster.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from ringback.config import Locations, load_locations
from ringback.conversation import service as conversation_service
from ringback.conversation.machine import State
from ringback.db import make_engine, make_sessionmaker, transaction
from ringback.deps import Deps
from ringback.inbox import events
from ringback.models import Conversation, Message, Patient
from ringback.ports import OutboundSms, SentSms
from tests.twilio_payloads import new_call_sid, new_message_sid, payload

SPA = "+13105550100"  # glow-downtown's number
DEMO = Path(__file__).parents[2] / "src" / "ringback" / "demo" / "locations.yaml"


class RecordingSms:
    """Accepts every text, remembering it (an :class:`ringback.ports.SmsSender`)."""

    def __init__(self) -> None:
        self.sent: list[OutboundSms] = []

    def send(self, sms: OutboundSms) -> SentSms:
        self.sent.append(sms)
        return SentSms("SM" + uuid.uuid4().hex, "queued")

    def find_sent(self, sms: OutboundSms, since: datetime) -> SentSms | None:
        return None


class NoQueue:
    """A JobScheduler that queues nothing: the test runs each event and timer itself."""

    def handle_event(self, event_id: int) -> None: ...
    def deliver_sms(self, message_id: int, at: datetime | None = None) -> None: ...
    def reconcile_sms(self, message_id: int, claim: str, at: datetime | None = None) -> None: ...
    def conversation_timer(self, conversation_id: int, kind: str, at: datetime) -> None: ...
    def email_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None: ...
    def post_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None: ...
    def deliver_webhook(self, delivery_id: int, at: datetime | None = None) -> None: ...
    def sync_calendar(self, sync_id: int, at: datetime | None = None) -> None: ...
    def send_reminder(self, reminder_id: int) -> None: ...


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass
class InProcess:
    deps: Deps
    sms: RecordingSms
    clock: Clock
    locations: Locations
    received: dict[str, int] = field(default_factory=dict)

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        with transaction(self.deps.sessions) as session:
            event_id = events.record(
                session,
                self.deps,
                provider="twilio",
                kind=kind,
                location_id="glow-downtown",
                payload=data,
                received_at=self.clock(),
            )
        assert event_id is not None
        events.handle(self.deps, event_id)

    def call(self, caller: str) -> None:
        sid = new_call_sid()
        self._event("voice", payload("voice_incoming", CallSid=sid, From=caller, To=SPA))
        self._event(
            "dial_result",
            payload("dial_result_no_answer", CallSid=sid, From=caller, To=SPA),
        )

    def text(self, caller: str, body: str) -> None:
        data = payload("sms_inbound", MessageSid=new_message_sid(), From=caller, Body=body)
        data["To"] = SPA
        self._event("sms", data)

    def texts_to(self, caller: str) -> list[str]:
        return [s.body for s in self.sms.sent if s.to == caller]

    def conversation(self, caller: str) -> Conversation | None:
        with self.deps.sessions() as session:
            return session.scalars(
                select(Conversation)
                .join(Patient, Patient.id == Conversation.patient_id)
                .where(Patient.phone == caller)
                .order_by(Conversation.id.desc())
            ).first()

    def state(self, caller: str) -> State | None:
        conversation = self.conversation(caller)
        return State.from_json(conversation.state) if conversation else None

    def open_threads(self, caller: str) -> int:
        with self.deps.sessions() as session:
            return int(
                session.scalar(
                    select(func.count(Conversation.id))
                    .join(Patient, Patient.id == Conversation.patient_id)
                    .where(Patient.phone == caller, Conversation.is_open.is_(True))
                )
                or 0
            )

    def opted_out(self, caller: str) -> bool:
        with self.deps.sessions() as session:
            patient = session.scalars(select(Patient).where(Patient.phone == caller)).first()
            return patient is not None and patient.opted_out

    def outbound_rows(self, caller: str) -> list[Message]:
        with self.deps.sessions() as session:
            return list(
                session.scalars(
                    select(Message)
                    .where(Message.to_number == caller, Message.direction == "outbound")
                    .order_by(Message.id)
                ).all()
            )

    def take_over(self, caller: str) -> bool:
        conversation = self.conversation(caller)
        return conversation is not None and conversation_service.take_over(
            self.deps, conversation.id, None
        )

    def hand_back(self, caller: str, *, already_answered: bool) -> bool:
        conversation = self.conversation(caller)
        return conversation is not None and conversation_service.hand_back(
            self.deps, conversation.id, already_answered=already_answered
        )

    def wait(self, delta: timedelta) -> None:
        """Time passes; the sweep's timers (nudge, close) fire as they would."""
        self.clock.now += delta
        for conversation_id, kind in conversation_service.due_timers(self.deps):
            conversation_service.timer_due(self.deps, conversation_id, kind)


def in_process(database_url: str, now: datetime, *, scheduling: bool = True) -> InProcess:
    config = yaml.safe_load(DEMO.read_text())
    if scheduling:
        glow = config["locations"][0]
        glow.pop("booking_url", None)
        glow["providers"] = [
            {"id": "anna", "name": "Anna", "services": ["Botox", "Filler"]},
            {"id": "bea", "name": "Bea", "services": ["HydraFacial", "Filler"]},
        ]
        glow["booking"] = {"lead_minutes": 60}
    path = Path(database_url.removeprefix("sqlite:///")).with_name("locations-prop.yaml")
    if not database_url.startswith("sqlite"):
        path = Path(f"/tmp/ringback-prop-{uuid.uuid4().hex}.yaml")
    path.write_text(yaml.safe_dump(config))
    locations = load_locations(path)
    sms = RecordingSms()
    clock = Clock(now)
    deps = Deps(
        locations=locations,
        sessions=make_sessionmaker(make_engine(database_url)),
        sms=sms,
        lookup=None,
        jobs=NoQueue(),
        public_url="https://ringback.test",
        clock=clock,
    )
    return InProcess(deps=deps, sms=sms, clock=clock, locations=locations)
