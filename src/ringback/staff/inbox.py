"""The staff inbox's queries, in one place: queues and their counts, a conversation with
everything around it, colleagues to assign to, and a cheap marker for live updates.

Every query is limited to the locations the viewer may see; a conversation elsewhere is
simply not found. Nothing here writes (see :mod:`ringback.staff.actions`) and nothing here
knows the web.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, Protocol, get_args

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session, joinedload

from ringback.config import Locations
from ringback.models import Call, Conversation, Message, Note, Patient, StaffUser

Queue = Literal["urgent", "needs_staff", "active", "booked", "closed"]
QUEUES: tuple[Queue, ...] = get_args(Queue)
QUEUE_LABELS: dict[Queue, str] = {
    "urgent": "Urgent",
    "needs_staff": "Needs staff",
    "active": "With the bot",
    "booked": "Booked",
    "closed": "Closed",
}
LIST_LIMIT = 100
# Delivery receipts arrive within minutes of a send, so only recent texts can change
# status: the marker looks at this many of the newest message ids, not the whole table.
RECENT_MESSAGES = 500


class Viewer(Protocol):
    """Who is looking: a signed-in staff member (``ringback.web.SignedIn``)."""

    @property
    def user_id(self) -> int: ...

    def can_see(self, location_id: str) -> bool: ...


def visible_location_ids(locations: Locations, viewer: Viewer) -> list[str]:
    return [location.id for location in locations if viewer.can_see(location.id)]


def queue_counts(session: Session, location_ids: list[str]) -> dict[Queue, int]:
    """How many conversations each queue holds, over the given locations."""
    counts: dict[Queue, int] = dict.fromkeys(QUEUES, 0)
    rows = session.execute(
        select(Conversation.status, func.count())
        .where(Conversation.location_id.in_(location_ids))
        .group_by(Conversation.status)
    ).all()
    for status, count in rows:
        if status in counts:
            counts[status] = int(count)
    return counts


@dataclass(frozen=True)
class ConversationRow:
    """One line of a queue: the conversation, who it is with, and the latest text."""

    conversation: Conversation
    patient: Patient
    last_message: Message | None
    assignee: str | None
    # The patient's own latest words: what a card waiting for staff shows (the symptom,
    # the question), rather than the bot's safety or handoff text that followed them.
    last_inbound: Message | None = None

    @property
    def shown_message(self) -> Message | None:
        waiting = self.conversation.status in ("urgent", "needs_staff")
        if waiting and self.last_inbound is not None:
            return self.last_inbound
        return self.last_message


def conversation_list(
    session: Session, location_ids: list[str], queue: Queue, limit: int = LIST_LIMIT
) -> list[ConversationRow]:
    """A queue's conversations: urgent and handed-off threads oldest first (the one waiting
    longest on top), the others newest activity first."""
    query = (
        select(Conversation)
        .options(joinedload(Conversation.patient))
        .where(Conversation.location_id.in_(location_ids), Conversation.status == queue)
    )
    if queue == "urgent":
        query = query.order_by(
            func.coalesce(Conversation.urgent_at, Conversation.updated_at), Conversation.id
        )
    elif queue == "needs_staff":
        query = query.order_by(
            case((Conversation.handed_off_at.is_(None), 1), else_=0),
            Conversation.handed_off_at,
            Conversation.id,
        )
    else:
        query = query.order_by(Conversation.updated_at.desc(), Conversation.id.desc())
    conversations = list(session.scalars(query.limit(limit)).unique())
    return _rows(session, conversations)


def _rows(session: Session, conversations: list[Conversation]) -> list[ConversationRow]:
    ids = [c.id for c in conversations]
    latest = _newest_messages(session, ids, Message.kind != "alert")
    waiting = [c.id for c in conversations if c.status in ("urgent", "needs_staff")]
    inbound = _newest_messages(session, waiting, Message.direction == "inbound")
    names = _user_names(session, {c.assigned_user_id for c in conversations})
    return [
        ConversationRow(
            conversation=c,
            patient=c.patient,
            last_message=latest.get(c.id),
            assignee=names.get(c.assigned_user_id) if c.assigned_user_id else None,
            last_inbound=inbound.get(c.id),
        )
        for c in conversations
    ]


def _newest_messages(
    session: Session, conversation_ids: list[int], which: ColumnElement[bool]
) -> dict[int, Message]:
    """Each conversation's newest message of the kind ``which`` picks, by conversation id."""
    if not conversation_ids:
        return {}
    newest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conversation_ids), which)
        .group_by(Message.conversation_id)
    )
    return {
        message.conversation_id: message
        for message in session.scalars(select(Message).where(Message.id.in_(newest)))
        if message.conversation_id is not None
    }


def _user_names(session: Session, ids: set[int | None]) -> dict[int | None, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = session.execute(select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_(wanted)))
    return {user_id: name for user_id, name in rows}


def find_visible(
    session: Session, viewer: Viewer, conversation_id: int, *, for_update: bool = False
) -> Conversation | None:
    """The conversation, or None when there is none or the viewer may not see its location."""
    conversation = session.get(Conversation, conversation_id, with_for_update=for_update)
    if conversation is None or not viewer.can_see(conversation.location_id):
        return None
    return conversation


@dataclass(frozen=True)
class NoteView:
    note: Note
    author: str | None


@dataclass(frozen=True)
class ConversationDetail:
    """A conversation with its thread, the calls behind it, notes and the patient record."""

    conversation: Conversation
    patient: Patient
    messages: list[Message]
    calls: list[Call]
    notes: list[NoteView]
    assignee: StaffUser | None
    # The patient's other conversations at this location, newest first.
    others: list[Conversation]


def conversation_detail(
    session: Session, viewer: Viewer, conversation_id: int
) -> ConversationDetail | None:
    conversation = find_visible(session, viewer, conversation_id)
    if conversation is None:
        return None
    patient = conversation.patient
    messages = list(
        session.scalars(
            select(Message)
            .where(Message.conversation_id == conversation.id)
            .order_by(Message.created_at, Message.id)
        )
    )
    calls = list(
        session.scalars(
            select(Call).where(Call.conversation_id == conversation.id).order_by(Call.started_at)
        )
    )
    notes = list(
        session.scalars(
            select(Note).where(Note.patient_id == patient.id).order_by(Note.created_at, Note.id)
        )
    )
    names = _user_names(session, {n.author_id for n in notes})
    assignee = (
        session.get(StaffUser, conversation.assigned_user_id)
        if conversation.assigned_user_id
        else None
    )
    others = list(
        session.scalars(
            select(Conversation)
            .where(
                Conversation.patient_id == patient.id,
                Conversation.location_id == conversation.location_id,
                Conversation.id != conversation.id,
            )
            .order_by(Conversation.opened_at.desc())
            .limit(20)
        )
    )
    return ConversationDetail(
        conversation=conversation,
        patient=patient,
        messages=messages,
        calls=calls,
        notes=[NoteView(n, names.get(n.author_id)) for n in notes],
        assignee=assignee,
        others=others,
    )


def colleagues(session: Session, location_id: str) -> list[StaffUser]:
    """Active staff who can see ``location_id``: the people a thread there can go to."""
    users = session.scalars(
        select(StaffUser).where(StaffUser.active.is_(True)).order_by(StaffUser.name)
    )
    return [user for user in users if user.can_see(location_id)]


def change_marker(session: Session, location_ids: list[str]) -> str:
    """A short value that moves whenever anything the inbox shows changes: a conversation
    (status, handoff, assignment; a new note touches its conversation too), a new text, or
    a delivery status. Three small aggregates, cheap enough to poll every second."""
    conversations = session.execute(
        select(func.max(Conversation.updated_at), func.count()).where(
            Conversation.location_id.in_(location_ids)
        )
    ).one()
    newest_id = session.scalar(
        select(func.max(Message.id)).where(Message.location_id.in_(location_ids))
    )
    status_at = None
    if newest_id is not None:
        status_at = session.scalar(
            select(func.max(Message.status_at)).where(
                Message.id > newest_id - RECENT_MESSAGES,
                Message.location_id.in_(location_ids),
            )
        )
    raw = f"{conversations[0]}|{conversations[1]}|{newest_id}|{status_at}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]
