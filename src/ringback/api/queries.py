"""What the JSON API reads: conversations, their threads, and patients (no web framework).

Every query takes the caller's :data:`Visible` locations and filters by them in SQL, so a
row from a location the caller may not see is never loaded, let alone returned.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from ringback.models import Call, Conversation, Message, Note, Patient, StaffUser

ConversationStatus = Literal["active", "needs_staff", "urgent", "booked", "closed"]

MAX_ID = 2**63 - 1  # ids are BIGINT; a larger number would be a database error, not a miss
# The moments the database can compare: stored in UTC, and Python's datetime ends at years 1
# and 9999, so a moment a day from either end (in any offset) overflows on the way in.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, tzinfo=UTC)


class OutOfRange(ValueError):
    """A moment outside :data:`EARLIEST`..:data:`LATEST`: no row can be that old or new."""


def in_range(moment: datetime) -> datetime:
    """``moment`` (aware) if the database can compare it; raises :class:`OutOfRange`."""
    if not EARLIEST <= moment <= LATEST:
        raise OutOfRange(
            f"expected a moment between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d} UTC, "
            f"got {moment.isoformat()}"
        )
    return moment


# The locations a caller may see; None means every location (an owner).
Visible = frozenset[str] | None

_Row = TypeVar("_Row", bound=Any)


def _visible_only(statement: Select[_Row], column: Any, visible: Visible) -> Select[_Row]:
    return statement if visible is None else statement.where(column.in_(sorted(visible)))


class BadCursor(ValueError):
    """A ``cursor`` this API did not hand out (or that was altered)."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the (updated_at, id) order: the last conversation of the previous page."""

    updated_at: datetime
    id: int

    def encode(self) -> str:
        raw = json.dumps({"u": self.updated_at.isoformat(), "i": self.id}, separators=(",", ":"))
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            data = json.loads(raw)
            updated_at = datetime.fromisoformat(data["u"])
            ident = data["i"]
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise BadCursor(
                f"expected a next_cursor value from a previous page, got {text[:60]!r}"
            ) from exc
        if (
            updated_at.tzinfo is None
            or not isinstance(ident, int)
            or isinstance(ident, bool)
            or not 0 <= ident <= MAX_ID
            or not EARLIEST <= updated_at <= LATEST
        ):
            raise BadCursor(f"expected a next_cursor value from a previous page, got {text[:60]!r}")
        return cls(updated_at=updated_at, id=ident)


@dataclass(frozen=True, slots=True)
class ConversationFilter:
    status: ConversationStatus | None = None
    location_id: str | None = None
    updated_since: datetime | None = None  # inclusive


@dataclass(frozen=True, slots=True)
class ConversationPage:
    conversations: list[Conversation]
    next_cursor: Cursor | None  # None on the last page


def conversations_page(
    session: Session,
    visible: Visible,
    filters: ConversationFilter,
    *,
    after: Cursor | None,
    limit: int,
) -> ConversationPage:
    """One page of conversations in (updated_at, id) order, oldest change first.

    Ordering by last change means a conversation that changes while a client pages
    through moves to the end and is seen again, never skipped.
    """
    statement = _visible_only(
        select(Conversation).options(selectinload(Conversation.patient)),
        Conversation.location_id,
        visible,
    )
    if filters.status is not None:
        statement = statement.where(Conversation.status == filters.status)
    if filters.location_id is not None:
        statement = statement.where(Conversation.location_id == filters.location_id)
    if filters.updated_since is not None:
        statement = statement.where(Conversation.updated_at >= filters.updated_since)
    if after is not None:
        statement = statement.where(
            or_(
                Conversation.updated_at > after.updated_at,
                and_(Conversation.updated_at == after.updated_at, Conversation.id > after.id),
            )
        )
    rows = list(
        session.scalars(
            statement.order_by(Conversation.updated_at, Conversation.id).limit(limit + 1)
        ).all()
    )
    page = rows[:limit]
    more = len(rows) > limit
    last = page[-1] if page else None
    return ConversationPage(
        conversations=page,
        next_cursor=Cursor(last.updated_at, last.id) if more and last is not None else None,
    )


def conversation(session: Session, visible: Visible, conversation_id: int) -> Conversation | None:
    """The conversation, or None when it does not exist or the caller may not see it."""
    statement = _visible_only(
        select(Conversation)
        .options(selectinload(Conversation.patient))
        .where(Conversation.id == conversation_id),
        Conversation.location_id,
        visible,
    )
    return session.scalars(statement).one_or_none()


def thread(session: Session, conversation_id: int) -> Sequence[Message]:
    """The texts with the patient, in order. Staff alerts (texts to staff phones) are not
    part of the thread."""
    return session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.kind != "alert")
        .order_by(Message.created_at, Message.id)
    ).all()


def calls(session: Session, conversation_id: int) -> Sequence[Call]:
    return session.scalars(
        select(Call)
        .where(Call.conversation_id == conversation_id)
        .order_by(Call.started_at, Call.id)
    ).all()


def notes(session: Session, patient_id: int) -> Sequence[tuple[Note, str | None]]:
    """Staff notes on the patient's record (whichever conversation they were written on,
    as the staff thread shows them), with the author's email (None when there is none)."""
    rows = session.execute(
        select(Note, StaffUser.email)
        .outerjoin(StaffUser, StaffUser.id == Note.author_id)
        .where(Note.patient_id == patient_id)
        .order_by(Note.created_at, Note.id)
    ).all()
    return [(note, email) for note, email in rows]


def patient(session: Session, visible: Visible, patient_id: int) -> Patient | None:
    """The patient, or None when missing, deleted, or at a location the caller may not see."""
    statement = _visible_only(
        select(Patient).where(Patient.id == patient_id, Patient.deleted_at.is_(None)),
        Patient.location_id,
        visible,
    )
    return session.scalars(statement).one_or_none()


def conversation_ids(session: Session, patient_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Conversation.id)
            .where(Conversation.patient_id == patient_id)
            .order_by(Conversation.id)
        ).all()
    )
