"""Staff alerts beyond SMS: an email with the thread, and a post to a team chat.

When the conversation machine hands a thread to staff, or a patient reports an urgent
symptom, :func:`queue_staff_alerts` (called by the conversation service inside its
transaction) enqueues one job per configured channel after commit. The jobs
(:func:`deliver_email_alert`, :func:`deliver_chat_alert`) read the conversation afresh,
compose the alert and hand it to an adapter; a failure the adapter marks retryable is
retried by the queue with a growing delay, so a slow or down mail server never holds
up the conversation.

What goes where: the SMS alert stays minimal (it is sent in ``conversation.service``);
the chat post adds what the bot captured (treatment, time, new or returning); the email,
which goes to the clinic's own addresses, also carries the whole thread. Every channel
shows the patient's full number, written the way people dial it (staff are authorised to
see it, and the nurse calls back from the alert), and links to the thread.

The adapters (:class:`ringback.integrations.email.SmtpEmailer`,
:class:`ringback.integrations.chat.HttpChatWebhook`) satisfy the Protocols in
:mod:`ringback.ports`; tests run them against a real local SMTP server and a real HTTP
receiver.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from ringback.config import Location
from ringback.conversation.machine import State
from ringback.db import after_commit, transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import Conversation, Message, Patient
from ringback.phones import display
from ringback.readable import clock, day

log = logging.getLogger(__name__)

TIMING = {"asap": "as soon as possible", "flexible": "flexible", "unsure": "not sure yet"}
UNDELIVERED = frozenset({"suppressed", "failed", "undelivered"})


# --- enqueueing (inside the conversation's transaction) -----------------------------------


def queue_staff_alerts(
    session: Session,
    deps: Deps,
    location: Location,
    conversation_id: int,
    *,
    reason: str,
    urgent: bool,
) -> None:
    """Enqueue the email and chat alerts ``location`` has configured, after commit.

    A channel the location wants but this process cannot reach (no ``RINGBACK_SMTP_URL``)
    is skipped with a warning; the SMS alert still goes.
    """
    jobs = deps.jobs
    if location.staff_alert_emails:
        if deps.emailer is None:
            log_event(
                log,
                "staff_alert.email_not_configured",
                logging.WARNING,
                location=location.id,
                conversation_id=conversation_id,
            )
        else:
            after_commit(session, lambda: jobs.email_staff_alert(conversation_id, reason, urgent))
    if location.slack_webhook_url:
        if deps.chat is None:
            log_event(
                log,
                "staff_alert.chat_not_configured",
                logging.WARNING,
                location=location.id,
                conversation_id=conversation_id,
            )
        else:
            after_commit(session, lambda: jobs.post_staff_alert(conversation_id, reason, urgent))


# --- what an alert says --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ThreadLine:
    at: datetime  # in the location's zone
    who: str  # Patient | Ringback | Staff
    body: str
    note: str = ""  # e.g. "not sent: suppressed"


@dataclass(frozen=True, slots=True)
class AlertFacts:
    """Everything an alert says, read from the conversation when the job runs."""

    location: str
    zone: str
    urgent: bool
    reason: str
    phone: str  # the patient's number as people write it: (310) 555-0142
    treatment: str | None
    time_preference: str | None
    patient_status: str | None
    link: str
    thread: tuple[ThreadLine, ...] = ()

    @property
    def why(self) -> str:
        return self.reason.replace("_", " ")


def describe_time_preference(state: State, zone: ZoneInfo) -> str | None:
    """The windows the patient gave (``Thu Nov 26, 9:00 AM-12:00 PM``), or their timing."""
    windows = []
    for start_iso, end_iso in state.times:
        start = datetime.fromisoformat(start_iso).astimezone(zone)
        end = datetime.fromisoformat(end_iso).astimezone(zone)
        same_day = end.date() == start.date() or (end.time().hour == 0 and end.minute == 0)
        end_text = clock(end) if same_day else f"{day(end)}, {clock(end)}"
        windows.append(f"{day(start)}, {clock(start)}-{end_text}")
    if windows:
        return "; ".join(windows)
    return TIMING.get(state.timing, state.timing) if state.timing else None


def headline(facts: AlertFacts) -> str:
    if facts.urgent:
        return f"URGENT: message from a patient {facts.phone} at {facts.location}"
    return f"Handoff ({facts.why}): a patient {facts.phone} at {facts.location} needs a person"


def _captured(facts: AlertFacts) -> list[str]:
    return [
        f"Treatment: {facts.treatment or 'not given'}",
        f"Time: {facts.time_preference or 'not given'}",
        f"New or returning: {facts.patient_status or 'not known'}",
    ]


def email_subject(facts: AlertFacts) -> str:
    """Urgent subjects start with ``URGENT``; no health details (subjects show in lists)."""
    return headline(facts)


def email_body(facts: AlertFacts) -> str:
    if facts.urgent:
        lead = (
            f"A patient {facts.phone} texted {facts.location} about something that may be "
            "urgent. Ringback answered with the safety wording and stopped; please call "
            "them back now."
        )
    else:
        lead = (
            f"Ringback handed a conversation at {facts.location} to staff ({facts.why}). "
            "The bot stays quiet in it; please reply or call the patient."
        )
    lines = [lead, "", *_captured(facts), "", f"Open the conversation: {facts.link}", ""]
    lines.append(f"Conversation (times in {facts.zone}):")
    for line in facts.thread:
        note = f" [{line.note}]" if line.note else ""
        body = line.body.replace("\r\n", "\n").replace("\n", "\n    ")
        lines.append(f"{day(line.at)} {clock(line.at)}  {line.who}{note}: {body}")
    if not facts.thread:
        lines.append("(no messages)")
    lines += [
        "",
        "--",
        "Sent by Ringback. This email holds patient messages: keep it in the clinic.",
    ]
    return "\n".join(lines) + "\n"


def chat_text(facts: AlertFacts) -> str:
    """What the team chat gets: no message bodies (the chat is a third party's service)."""
    return "\n".join([headline(facts), " | ".join(_captured(facts)), f"Open: {facts.link}"])


def _thread(session: Session, conversation_id: int, zone: ZoneInfo) -> tuple[ThreadLine, ...]:
    messages = session.scalars(
        select(Message)
        .where(Message.conversation_id == conversation_id, Message.kind != "alert")
        .order_by(Message.created_at, Message.id)
    ).all()
    lines = []
    for message in messages:
        if message.direction == "inbound":
            who = "Patient"
        else:
            who = "Staff" if message.kind == "staff" else "Ringback"
        note = f"not sent: {message.status}" if message.status in UNDELIVERED else ""
        lines.append(ThreadLine(message.created_at.astimezone(zone), who, message.body, note))
    return tuple(lines)


def gather_facts(
    deps: Deps, conversation_id: int, *, reason: str, urgent: bool, with_thread: bool
) -> tuple[Location, AlertFacts] | None:
    """Read what the alert says; None when the conversation or its location is gone."""
    with transaction(deps.sessions) as session:
        conversation = session.get(Conversation, conversation_id)
        if conversation is None:
            return None
        location = deps.locations.get(conversation.location_id)
        patient = session.get(Patient, conversation.patient_id)
        if location is None or patient is None:
            return None
        state = State.from_json(conversation.state)
        status = patient.status or state.patient or ("returning" if state.known_patient else None)
        facts = AlertFacts(
            location=location.name,
            zone=location.timezone,
            urgent=urgent,
            reason=reason,
            phone=display(patient.phone),
            treatment=conversation.treatment or state.treatment,
            time_preference=describe_time_preference(state, location.zone),
            patient_status=status,
            link=f"{deps.public_url}/staff/conversations/{conversation.id}",
            thread=_thread(session, conversation.id, location.zone) if with_thread else (),
        )
        return location, facts


# --- the jobs ------------------------------------------------------------------------------


def deliver_email_alert(deps: Deps, conversation_id: int, reason: str, urgent: bool) -> None:
    """Email the location's staff; raises :class:`AlertDeliveryFailed` when it did not go."""
    emailer = deps.emailer
    found = gather_facts(deps, conversation_id, reason=reason, urgent=urgent, with_thread=True)
    if emailer is None or found is None or not found[0].staff_alert_emails:
        return
    location, facts = found
    recipients = list(location.staff_alert_emails)
    emailer.send(recipients, email_subject(facts), email_body(facts))
    log_event(
        log,
        "staff_alert.emailed",
        location=location.id,
        conversation_id=conversation_id,
        urgent=urgent,
        reason=reason,
        recipients=len(recipients),
    )


def deliver_chat_alert(deps: Deps, conversation_id: int, reason: str, urgent: bool) -> None:
    """Post to the location's chat webhook; raises :class:`AlertDeliveryFailed` if refused."""
    chat = deps.chat
    found = gather_facts(deps, conversation_id, reason=reason, urgent=urgent, with_thread=False)
    if chat is None or found is None:
        return
    location, facts = found
    if not location.slack_webhook_url:
        return
    chat.post(location.slack_webhook_url, chat_text(facts))
    log_event(
        log,
        "staff_alert.posted",
        location=location.id,
        conversation_id=conversation_id,
        urgent=urgent,
        reason=reason,
    )
