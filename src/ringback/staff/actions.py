"""What staff do to a conversation: reply, hand back, resolve, mark booked or lost, assign,
note, and name the patient.

Each action checks that the person may see the conversation's location (if not, the
conversation is :class:`ConversationNotFound`, the same as one that does not exist),
validates its input before writing anything, and runs in its own transaction. Expected
failures are typed, carry the HTTP status they mean, and name the field that was wrong.
No web framework here: the pages in :mod:`ringback.staff.pages` call these.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.conversation import service as conversation_service
from ringback.conversation import threads
from ringback.db import transaction, utcnow
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.messaging.outbox import queue_sms
from ringback.models import Conversation, Message, Note, Patient, StaffUser
from ringback.outbound_webhooks import service as webhooks
from ringback.patients import service as patients
from ringback.staff.inbox import Viewer, find_visible

log = logging.getLogger(__name__)

MAX_REPLY = 1600  # Twilio's limit for one message body
MAX_NOTE = 5000
MAX_LOST_REASON = 200
MAX_RESOLVE_NOTE = 1000
RESOLVABLE = ("urgent", "needs_staff")
RESOLVED_NOTE = "Called back, resolved."
MAX_VALUE_CENTS = 10_000_000  # $100,000: anything above is a typo, not a booking
# A reply form carries a random nonce, so a double-submitted form sends one text.
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

NOT_TEXTABLE_WHY = {
    "opted_out": "This patient opted out of texts (they replied STOP or asked us to stop). "
    "Ringback will not text them unless they text START.",
    "deleted": "This patient's record was deleted, so they cannot be texted.",
    "not_textable": "The carrier reported that this number cannot receive texts.",
}


class ActionError(Exception):
    """An action that cannot be done as asked; ``field`` names what was wrong."""

    status = 400

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidInput(ActionError):
    """A form value out of range or malformed (400)."""


class ConversationNotFound(ActionError):
    """No such conversation, or one at a location this person may not see (404)."""

    status = 404

    def __init__(self, conversation_id: int) -> None:
        super().__init__("conversation", f"no conversation {conversation_id}")


class WrongState(ActionError):
    """The conversation is not in a state that allows this (409)."""

    status = 409


class NotTextable(WrongState):
    """The patient may not be texted; ``reason`` is :func:`patients.why_not_textable`'s."""

    def __init__(self, reason: str) -> None:
        super().__init__("body", NOT_TEXTABLE_WHY.get(reason, f"patient not textable ({reason})"))
        self.reason = reason


def _visible(session: Session, user: Viewer, conversation_id: int) -> Conversation:
    conversation = find_visible(session, user, conversation_id, for_update=True)
    if conversation is None:
        raise ConversationNotFound(conversation_id)
    return conversation


def _text(field: str, value: str, limit: int) -> str:
    text = value.strip()
    if not 1 <= len(text) <= limit:
        raise InvalidInput(field, f"write between 1 and {limit} characters (got {len(text)})")
    return text


def _textable(session: Session, conversation: Conversation) -> Patient:
    patient = session.get(Patient, conversation.patient_id)
    if patient is None:
        raise ConversationNotFound(conversation.id)
    # Consent first: when both apply, why the patient cannot be texted is the news.
    blocked = patients.why_not_textable(patient)
    if blocked:
        raise NotTextable(blocked)
    if not conversation.is_open:
        raise WrongState(
            "conversation",
            f"this conversation is {conversation.status}; the patient's next text or call "
            "opens a new one",
        )
    return patient


def reply(deps: Deps, conversation_id: int, user: Viewer, body: str, nonce: str) -> Message:
    """Text the patient from the location's number as staff; the bot stops talking in this
    conversation (until :func:`hand_back`). The same ``nonce`` sends once."""
    text = _text("body", body, MAX_REPLY)
    if not _NONCE.match(nonce):
        raise InvalidInput("nonce", "missing or malformed; reload the page and send again")
    key = f"staff:{conversation_id}:{nonce}"
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        sent = session.scalars(select(Message).where(Message.idempotency_key == key)).first()
        if sent is not None:
            return sent  # the same form, submitted again
        _textable(session, conversation)
        paused = conversation.bot_paused
        take = user.user_id if conversation.assigned_user_id is None else None
    # The bot is paused first, in its own transaction (the conversation service owns it):
    # a reply must never go out while the bot may still answer over it.
    if not paused and not conversation_service.take_over(deps, conversation_id, take):
        raise WrongState("conversation", "closed while you were writing")
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        patient = _textable(session, conversation)
        location = deps.locations.get(conversation.location_id)
        if location is None:
            raise WrongState("location", f"{conversation.location_id!r} is not configured")
        now = deps.clock()
        message = queue_sms(
            session,
            deps,
            location_id=location.id,
            patient=patient,
            from_number=location.phone_number,
            body=text,
            kind="staff",
            idempotency_key=key,
            conversation_id=conversation.id,
            trigger_at=now,
        )
        conversation.last_outbound_at = now
        log_event(
            log,
            "staff.replied",
            conversation_id=conversation_id,
            user_id=user.user_id,
            message_id=message.id,
        )
        return message


class PatientNotFound(ActionError):
    """No such patient, or one at a location this person may not see (404)."""

    status = 404

    def __init__(self, patient_id: int) -> None:
        super().__init__("patient", f"no patient {patient_id}")


def start_text(deps: Deps, patient_id: int, user: Viewer, body: str, nonce: str) -> Message:
    """Text a patient from their record: in their open conversation if there is one, else
    in a new one that staff own from the start (the bot stays quiet in it). Consent is
    checked first; the same ``nonce`` sends once, as for :func:`reply`."""
    _text("body", body, MAX_REPLY)
    if not _NONCE.match(nonce):
        raise InvalidInput("nonce", "missing or malformed; reload the page and send again")
    with transaction(deps.sessions) as session:
        patient = session.get(Patient, patient_id, with_for_update=True)
        if patient is None or not user.can_see(patient.location_id):
            raise PatientNotFound(patient_id)
        blocked = patients.why_not_textable(patient)
        if blocked:
            raise NotTextable(blocked)
        if deps.locations.get(patient.location_id) is None:
            raise WrongState("location", f"{patient.location_id!r} is not configured")
        conversation, created = threads.open_conversation(
            session, patient.location_id, patient, deps.clock(), None
        )
        if created:
            # Staff started it: they own it from the first text, as after a take-over.
            conversation.bot_paused = True
            conversation.assigned_user_id = user.user_id
            log_event(
                log,
                "staff.thread_started",
                conversation_id=conversation.id,
                patient_id=patient_id,
                user_id=user.user_id,
            )
        conversation_id = conversation.id
    return reply(deps, conversation_id, user, body, nonce)


def hand_back(
    deps: Deps, conversation_id: int, user: Viewer, *, already_answered: bool = False
) -> None:
    """Give the conversation back to the bot, which carries on from what it captured and
    answers the patient's last text unless staff say they already answered it."""
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        if not conversation.is_open:
            raise WrongState("conversation", f"this conversation is {conversation.status}")
        if conversation.status == "urgent":
            raise WrongState(
                "conversation",
                "urgent conversations stay with staff; resolve it once you have called back, "
                "or mark it booked or lost",
            )
    if not conversation_service.hand_back(deps, conversation_id, already_answered=already_answered):
        raise WrongState("conversation", "closed in the meantime")
    log_event(log, "staff.handed_back", conversation_id=conversation_id, user_id=user.user_id)


def resolve(deps: Deps, conversation_id: int, user: Viewer, note: str = "") -> Note:
    """Staff called the patient back and dealt with it (an urgent symptom, a question):
    close the thread as ``resolved``, neither booked nor lost. Who and when are kept as a
    note on the thread (with what staff wrote, if anything)."""
    extra = note.strip()
    if len(extra) > MAX_RESOLVE_NOTE:
        raise InvalidInput(
            "note", f"write at most {MAX_RESOLVE_NOTE} characters (got {len(extra)})"
        )
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        if not conversation.is_open or conversation.status not in RESOLVABLE:
            raise WrongState(
                "conversation",
                f"only urgent or handed-off conversations are resolved; this one is "
                f"{conversation.status}",
            )
        now = deps.clock()
        record = Note(
            conversation_id=conversation.id,
            patient_id=conversation.patient_id,
            author_id=user.user_id,
            body=f"{RESOLVED_NOTE} {extra}".strip(),
            created_at=now,
        )
        session.add(record)
        conversation.lost_reason = None
        conversation_service.close(conversation, now, "resolved")
        webhooks.conversation_closed(session, deps, conversation)
        session.flush()
        log_event(
            log,
            "staff.resolved",
            conversation_id=conversation_id,
            user_id=user.user_id,
            note_id=record.id,
        )
        return record


def mark_booked(
    deps: Deps, conversation_id: int, user: Viewer, value_cents: int | None = None
) -> None:
    """The patient booked (staff did it, by phone or in the clinic's system): close as booked.

    Without a value, the captured treatment's price from the location's menu is used."""
    if value_cents is not None and not 0 <= value_cents <= MAX_VALUE_CENTS:
        raise InvalidInput(
            "value", f"expected $0 to ${MAX_VALUE_CENTS // 100:,}, got {value_cents / 100:,.2f}"
        )
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        if conversation.status == "booked":
            raise WrongState("conversation", "already marked booked")
        if value_cents is None:
            value_cents = treatment_price(deps, conversation)
        conversation.booked_by = "staff"
        conversation.booked_value_cents = value_cents
        conversation.lost_reason = None
        conversation_service.close(conversation, deps.clock(), "booked")
        webhooks.conversation_closed(session, deps, conversation)
        log_event(
            log,
            "staff.marked_booked",
            conversation_id=conversation_id,
            user_id=user.user_id,
            value_cents=value_cents,
        )


def mark_lost(deps: Deps, conversation_id: int, user: Viewer, reason: str) -> None:
    """The patient will not book: close with the reason, for the funnel."""
    why = _text("reason", reason, MAX_LOST_REASON)
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        if conversation.status == "booked":
            raise WrongState("conversation", "already marked booked")
        conversation.lost_reason = why
        conversation_service.close(conversation, deps.clock(), "lost")
        log_event(log, "staff.marked_lost", conversation_id=conversation_id, user_id=user.user_id)


def treatment_price(deps: Deps, conversation: Conversation) -> int:
    """The menu price of the conversation's treatment; refused when it is not known."""
    location = deps.locations.get(conversation.location_id)
    service = (
        location.service_named(conversation.treatment)
        if location is not None and conversation.treatment
        else None
    )
    if service is None:
        raise InvalidInput(
            "value",
            "enter what the visit is worth in dollars (the treatment is not known, so there "
            "is no price to use)",
        )
    return service.price_cents


def rename_patient(
    deps: Deps, conversation_id: int, user: Viewer, first_name: str, last_name: str
) -> None:
    """Set the name of the conversation's patient (what the bot greets them by)."""
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        patient = session.get(Patient, conversation.patient_id)
        if patient is None or patient.deleted_at is not None:
            raise WrongState("name", "this patient's data was deleted on request")
        try:
            changed = patients.rename(patient, first_name, last_name, deps.clock())
        except patients.InvalidName as error:
            raise InvalidInput(error.field, error.problem) from error
        if changed:
            conversation.updated_at = utcnow()  # open inboxes show the new name
        log_event(
            log,
            "staff.renamed_patient",
            conversation_id=conversation_id,
            patient_id=patient.id,
            user_id=user.user_id,
            changed=changed,
        )


def assign(deps: Deps, conversation_id: int, user: Viewer, assignee_id: int | None) -> None:
    """Give the conversation to a colleague who can see its location (None: nobody)."""
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        if assignee_id is not None:
            assignee = session.get(StaffUser, assignee_id)
            if (
                assignee is None
                or not assignee.active
                or not assignee.can_see(conversation.location_id)
            ):
                raise InvalidInput(
                    "assignee",
                    f"no active colleague with id {assignee_id} works at "
                    f"{conversation.location_id}",
                )
        conversation.assigned_user_id = assignee_id
        log_event(
            log,
            "staff.assigned",
            conversation_id=conversation_id,
            user_id=user.user_id,
            assignee_id=assignee_id,
        )


def add_note(deps: Deps, conversation_id: int, user: Viewer, body: str) -> Note:
    """A note on the conversation (and so on the patient's record), for colleagues."""
    text = _text("body", body, MAX_NOTE)
    with transaction(deps.sessions) as session:
        conversation = _visible(session, user, conversation_id)
        now = deps.clock()
        note = Note(
            conversation_id=conversation.id,
            patient_id=conversation.patient_id,
            author_id=user.user_id,
            body=text,
            created_at=now,
        )
        session.add(note)
        # Touch the conversation so open inboxes see the change (wall time, like every
        # other write to updated_at).
        conversation.updated_at = utcnow()
        session.flush()
        log_event(log, "staff.noted", conversation_id=conversation_id, user_id=user.user_id)
        return note
