"""All tables in one place.

Shape of the data (the mission, read as rows):

* ``ProviderEvent``: every webhook as received, keyed by the provider's id; the durable
  inbox that makes handling idempotent and replayable.
* ``Patient``: one per phone number and location; carries consent (opt-out) and
  textability, so every path that sends checks one row.
* ``Call``: one per inbound call (``CallSid``); whether and why it was missed, and what
  screening decided.
* ``Conversation``: the thread with one caller; at most one open per patient.
* ``Message``: every SMS in or out. Outbound rows are the outbox: written in the same
  transaction as the decision to send, delivered by a job, keyed so nothing goes twice.
* ``Appointment``: booked visits (imported or booked by Ringback); screening reads them.
* ``LineTypeCache``: Twilio Lookup answers, so a number is looked up once.
* ``WebhookEndpoint`` / ``WebhookDelivery``: the clinic's URLs for outbound webhooks, and
  the outbox of events for them (one row per event and endpoint, with each attempt's outcome).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ringback.db import Base, UTCDateTime, utcnow
from ringback.roles import role_can

# A JSON column that is JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class ProviderEvent(Base):
    """A webhook from a provider, stored before anything acts on it."""

    __tablename__ = "provider_events"
    __table_args__ = (UniqueConstraint("provider", "kind", "external_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(30))
    external_id: Mapped[str] = mapped_column(String(120))
    location_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The sweep handed the event to a job and will not hand it again before this time.
    redrive_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_provider_events_unhandled", ProviderEvent.received_at, ProviderEvent.handled_at)


class Patient(Base):
    """A caller of one location, known by phone number, with their consent state."""

    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("location_id", "phone"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    first_name: Mapped[str | None] = mapped_column(String(80))
    last_name: Mapped[str | None] = mapped_column(String(80))
    status: Mapped[str | None] = mapped_column(String(12))  # new | returning
    opted_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opt_out_source: Mapped[str | None] = mapped_column(String(40))
    opted_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    not_textable_reason: Mapped[str | None] = mapped_column(String(60))
    wrong_number_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When an import said the patient agreed to texts (their appointments get reminders).
    text_consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    external_id: Mapped[str | None] = mapped_column(String(120))
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    @property
    def opted_out(self) -> bool:
        return self.opted_out_at is not None


class Call(Base):
    """An inbound call to a location's number, and what Ringback made of it."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("provider", "call_sid"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20), default="twilio")
    call_sid: Mapped[str] = mapped_column(String(120))
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    from_raw: Mapped[str] = mapped_column(String(40))  # as received; may be "anonymous"
    from_number: Mapped[str | None] = mapped_column(String(20))  # E.164 when valid
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    after_hours: Mapped[bool] = mapped_column(Boolean, default=False)
    mode: Mapped[str] = mapped_column(String(20))  # ring | forwarded | after_hours
    # pending -> missed | answered
    outcome: Mapped[str] = mapped_column(String(12), default="pending")
    # staff_busy | no_answer | after_hours | caller_hung_up | failed
    miss_reason: Mapped[str | None] = mapped_column(String(20))
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # texted | joined_conversation | opted_out | anonymous | invalid_number | own_number
    # | blocklisted | cooldown | landline | not_textable | wrong_number | appointment_textback
    screening: Mapped[str | None] = mapped_column(String(30))
    screening_detail: Mapped[str | None] = mapped_column(String(200))
    screened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    source_event_id: Mapped[str | None] = mapped_column(String(120))

    patient: Mapped[Patient | None] = relationship()


Index("ix_calls_location_missed", Call.location_id, Call.missed_at)


class Conversation(Base):
    """The thread with one caller. At most one is open per patient (a partial unique index)."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    # active | needs_staff | urgent | booked | closed
    status: Mapped[str] = mapped_column(String(16), default="active")
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    close_reason: Mapped[str | None] = mapped_column(String(30))
    language: Mapped[str] = mapped_column(String(5), default="en")
    variant: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    bot_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    assigned_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    lost_reason: Mapped[str | None] = mapped_column(String(200))
    booked_by: Mapped[str | None] = mapped_column(String(10))  # bot | page | staff
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    first_reply_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_outbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    booked_value_cents: Mapped[int | None] = mapped_column(Integer)
    # What the bot captured and decided, as columns for the inbox and the funnel.
    treatment: Mapped[str | None] = mapped_column(String(80))
    qualified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    handed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    urgent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The earliest nudge/close timer due; the sweep fires timers whose job was lost.
    next_timer_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    patient: Mapped[Patient] = relationship()


Index("ix_conversations_timer", Conversation.is_open, Conversation.next_timer_at)
# A caller's threads. SQLite cannot use the partial index below for ``is_open = 1``.
Index("ix_conversations_location_patient", Conversation.location_id, Conversation.patient_id)

Index(
    "uq_conversations_open_per_patient",
    Conversation.location_id,
    Conversation.patient_id,
    unique=True,
    sqlite_where=text("is_open"),
    postgresql_where=text("is_open"),
)


class ConversationDecision(Base):
    """One step of the conversation machine: the event it saw and the commands it gave."""

    __tablename__ = "conversation_decisions"
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    seq: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    event: Mapped[dict[str, Any]] = mapped_column(JSONType)
    commands: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))


class Message(Base):
    """One SMS. Outbound rows are the outbox: ``idempotency_key`` makes each send unique."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("provider", "provider_sid"),
        UniqueConstraint("idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    direction: Mapped[str] = mapped_column(String(8))  # inbound | outbound
    # textback | reply | nudge | keyword | alert | staff | inbound
    kind: Mapped[str] = mapped_column(String(16))
    from_number: Mapped[str] = mapped_column(String(20))
    to_number: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(String(20), default="twilio")
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(120))
    # outbound: pending -> sending -> queued|sent|delivered|undelivered|failed, or suppressed
    # inbound: received
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_detail: Mapped[str | None] = mapped_column(String(300))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Measured from here for speed-to-lead: the moment the event that caused this text happened.
    trigger_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    send_after: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The claim on an outbound row: who may act on it (a send attempt or a reconcile) and
    # until when. A ``sending`` row always has one; its holder renews the lease while the
    # provider call is in flight, the sweep takes over a lapsed one with a new token, and
    # every step that writes the outcome checks the token is still its own. A ``pending``
    # row's lease says a job has it (the sweep does not hand it out again before then).
    claim_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Failed Messages-list lookups while settling an unknown outcome (backoff, then failed).
    lookup_failures: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_messages_outbox", Message.status, Message.send_after)
# Screening's cooldown check: a patient's latest text-back.
Index("ix_messages_patient_kind_created", Message.patient_id, Message.kind, Message.created_at)


class Appointment(Base):
    """A booked visit: imported from the clinic's system or booked through Ringback."""

    __tablename__ = "appointments"
    __table_args__ = (UniqueConstraint("location_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    service: Mapped[str] = mapped_column(String(80))
    provider_name: Mapped[str | None] = mapped_column(String(80))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # held (a slot kept while the patient confirms) | booked | cancelled | expired (a lapsed hold)
    status: Mapped[str] = mapped_column(String(12), default="booked")
    source: Mapped[str] = mapped_column(String(12), default="import")  # import|bot|page|staff
    value_cents: Mapped[int | None] = mapped_column(Integer)
    external_id: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Scheduling (ringback.booking): who and where, and how long the provider stays busy
    # (the end plus the service's buffer). Imported appointments may have none of these.
    provider_id: Mapped[str | None] = mapped_column(String(64))
    room_id: Mapped[str | None] = mapped_column(String(64))
    busy_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_by: Mapped[str | None] = mapped_column(String(12))  # patient | staff | import
    rescheduled_from_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), onupdate=utcnow)
    # Reminders (ringback.booking.reminders): when the sweep wrote this appointment's
    # reminder rows; None while it has not (every new booked appointment, whatever made it).
    reminders_planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What staff marked after the visit: kept | no_show (None: not marked).
    attendance: Mapped[str | None] = mapped_column(String(10))
    attendance_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_appointments_patient_start", Appointment.patient_id, Appointment.starts_at)
Index("ix_appointments_location_start", Appointment.location_id, Appointment.starts_at)
# The last guard against a double booking: one live appointment per provider and start.
Index(
    "uq_appointments_live_slot",
    Appointment.location_id,
    Appointment.provider_id,
    Appointment.starts_at,
    unique=True,
    sqlite_where=text("status IN ('held', 'booked') AND provider_id IS NOT NULL"),
    postgresql_where=text("status IN ('held', 'booked') AND provider_id IS NOT NULL"),
)


# The reminder sweep's planning step: booked appointments whose reminders are not written yet.
Index(
    "ix_appointments_reminders_unplanned",
    Appointment.starts_at,
    sqlite_where=text("reminders_planned_at IS NULL AND status = 'booked'"),
    postgresql_where=text("reminders_planned_at IS NULL AND status = 'booked'"),
)


class AppointmentReminder(Base):
    """One reminder of one appointment, ``offset_minutes`` before it: exactly once.

    Written by the sweep for every booked appointment (booked by the bot, the page, staff,
    an import, any other path); ``status`` pending -> sent | skipped (with why). The unique
    (appointment, offset) and the row lock taken to send it make the claim idempotent.
    """

    __tablename__ = "appointment_reminders"
    __table_args__ = (UniqueConstraint("appointment_id", "offset_minutes"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    location_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    offset_minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|sent|skipped
    skip_reason: Mapped[str | None] = mapped_column(String(30))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    # A job has it until then (the sweep does not hand it out again before).
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


# The sweep's due query: pending reminders by due time.
Index("ix_appointment_reminders_due", AppointmentReminder.status, AppointmentReminder.due_at)
Index(
    "ix_appointment_reminders_location_settled",
    AppointmentReminder.location_id,
    AppointmentReminder.settled_at,
)


class WaitlistEntry(Base):
    """A patient who wants a time that was not free: which treatment, when (``windows``:
    ``[{"days": [0..6], "from": "HH:MM", "to": "HH:MM"}]`` in the location's zone, none
    for any time). ``status`` waiting -> offered (a freed slot was texted) -> booked, or
    back to waiting when someone else took it; expired (past ``expires_at``) | removed."""

    __tablename__ = "waitlist_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    service: Mapped[str] = mapped_column(String(80))
    windows: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(10), default="waiting")
    source: Mapped[str] = mapped_column(String(12), default="staff")  # bot | staff | api
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    opening_id: Mapped[int | None] = mapped_column(ForeignKey("waitlist_openings.id"))
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_waitlist_entries_match", WaitlistEntry.location_id, WaitlistEntry.status)
Index("ix_waitlist_entries_patient", WaitlistEntry.patient_id)


class WaitlistOpening(Base):
    """A slot freed by a cancellation, for the waitlist: ``status`` open (the sweep has
    not offered it yet) -> offered -> filled (``appointment_id``, ``value_cents``) |
    lapsed (nobody matched, or it started, or another booking took it)."""

    __tablename__ = "waitlist_openings"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    service: Mapped[str] = mapped_column(String(80))
    provider_id: Mapped[str] = mapped_column(String(64))
    room_id: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    freed_by_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    status: Mapped[str] = mapped_column(String(10), default="open")
    offered: Mapped[int] = mapped_column(Integer, default=0)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id"))
    value_cents: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_waitlist_openings_status", WaitlistOpening.status, WaitlistOpening.starts_at)
Index(
    "ix_waitlist_openings_location_created", WaitlistOpening.location_id, WaitlistOpening.created_at
)


class RetentionText(Base):
    """One rebooking or review-request text (``kind`` rebook | review) about a kept visit:
    the unique (kind, appointment) makes each go once."""

    __tablename__ = "retention_texts"
    __table_args__ = (UniqueConstraint("kind", "appointment_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    location_id: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    status: Mapped[str] = mapped_column(String(10), default="sent")  # sent | skipped
    skip_reason: Mapped[str | None] = mapped_column(String(30))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_retention_texts_patient", RetentionText.patient_id, RetentionText.kind)
Index("ix_retention_texts_location_created", RetentionText.location_id, RetentionText.created_at)


class BookingLock(Base):
    """One row per provider and room: booking locks it so overlapping bookings queue up.

    PostgreSQL takes the row with ``SELECT ... FOR UPDATE``; SQLite's single writer already
    serialises the check-then-insert.
    """

    __tablename__ = "booking_locks"

    key: Mapped[str] = mapped_column(String(140), primary_key=True)  # location:provider:<id>


class CalendarSync(Base):
    """Keeps one appointment's event on one outside calendar in step with the appointment.

    The job makes the calendar match the appointment as it is now (written while booked,
    removed once cancelled), so a retry, a reorder or a replay is harmless. ``status`` is
    pending until it succeeds; failures stay visible to staff with ``last_error``.
    """

    __tablename__ = "calendar_syncs"
    __table_args__ = (UniqueConstraint("appointment_id", "calendar_key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id"))
    location_id: Mapped[str] = mapped_column(String(64))
    calendar_key: Mapped[str] = mapped_column(String(64))  # a provider id, or "location"
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # The clinic's booking system (calendar_key "booking-system"): the id Ringback gave the
    # booking there (unique per attempt, so a rolled-back try is never replayed), and the
    # system's own id for it once written.
    ringback_ref: Mapped[str | None] = mapped_column(String(80), index=True)
    external_ref: Mapped[str | None] = mapped_column(String(300))


Index("ix_calendar_syncs_due", CalendarSync.status, CalendarSync.next_attempt_at)


class BookingSystemCredential(Base):
    """A location's sign-in to its booking system (a Google refresh token), sealed with
    the install's secret key; never stored or logged in the clear."""

    __tablename__ = "booking_system_credentials"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    system: Mapped[str] = mapped_column(String(20))
    sealed: Mapped[str] = mapped_column(Text)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BookingSystemState(Base):
    """Reading a location's booking system for changes: the cursor (Google's sync tokens,
    Square's last update time), when it was last read (None: read at the next sweep, a
    push asked for it), and the last error."""

    __tablename__ = "booking_system_states"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))


class BookingSystemChannel(Base):
    """A Google Calendar push channel (events.watch) on one calendar, renewed by the sweep
    before it expires; pushes are accepted only with its token."""

    __tablename__ = "booking_system_channels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # our channel id
    location_id: Mapped[str] = mapped_column(String(64), index=True)
    calendar_id: Mapped[str] = mapped_column(String(300))
    resource_id: Mapped[str] = mapped_column(String(200))
    token: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ExternalBusy(Base):
    """Busy time read from an outside calendar, refreshed by the sweep; offers avoid it."""

    __tablename__ = "external_busy"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str] = mapped_column(String(64))
    calendar_key: Mapped[str] = mapped_column(String(64))
    uid: Mapped[str] = mapped_column(String(300))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())


Index("ix_external_busy_location_start", ExternalBusy.location_id, ExternalBusy.starts_at)


class CalendarRead(Base):
    """When each outside calendar was last read, and the last error (shown to staff)."""

    __tablename__ = "calendar_reads"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    calendar_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(300))


class StaffUser(Base):
    """A person at the clinic: an owner, an admin (office manager) or staff; what each may
    do is :mod:`ringback.roles`."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lowercased
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(10))  # owner | admin | staff (no constraint)
    location_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)  # staff only
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def can_see(self, location_id: str) -> bool:
        return role_can(self.role, "all_locations") or location_id in (self.location_ids or [])


class StaffSession(Base):
    """A signed-in browser. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    user: Mapped[StaffUser] = relationship()


class ApiToken(Base):
    """A token for the JSON API, for a clinic's other tools. Hashed at rest, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists to tell tokens apart
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[StaffUser] = relationship()


class StaffLink(Base):
    """A one-time link: an invitation to join (``invite``) or to set a new password
    (``reset``). Only the token's hash is stored; it expires and works once."""

    __tablename__ = "staff_links"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))  # invite | reset
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(10))
    location_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The account a reset is for; None for an invitation (the account is made on accepting).
    user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    created_by: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """Failed sign-ins, counted per email and per address to slow down guessing."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


Index("ix_login_attempts_email_at", LoginAttempt.email, LoginAttempt.at)
Index("ix_login_attempts_address_at", LoginAttempt.address, LoginAttempt.at)


class Note(Base):
    """A staff note on a conversation (and so on the patient's record)."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LineTypeCache(Base):
    """Twilio Lookup v2 line type for a number, so each number is looked up once."""

    __tablename__ = "line_type_cache"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    line_type: Mapped[str | None] = mapped_column(String(30))
    carrier_name: Mapped[str | None] = mapped_column(String(120))
    looked_up_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- funnel rollups (ringback.funnel) ------------------------------------------------------
#
# Pre-aggregated figures per location and *local* day of the missed call (the cohort: a
# reply or a booking days later counts on the day of the call that started it). They are
# a pure function of the rows above: ``ringback.funnel.rollup`` recomputes a day whenever
# ``funnel_dirty`` says something that feeds it changed, so they can always be rebuilt.
# Wide tables with one column per counter keep a year of 50 locations to a few hundred
# thousand short rows that sum in milliseconds.

# Screening outcomes that mean "no text will be sent for this call".
FUNNEL_SCREENED_OUT = (
    "anonymous",
    "invalid_number",
    "own_number",
    "blocklisted",
    "opted_out",
    "wrong_number",
    "not_textable",
    "landline",
    "cooldown",
)
# Upper bounds (inclusive, milliseconds) of the latency histogram's buckets; one more
# bucket holds everything slower than the last bound.
FUNNEL_LATENCY_BOUNDS_MS = (
    100, 200, 300, 400, 500, 600, 800,
    1_000, 1_250, 1_500, 2_000, 2_500, 3_000, 4_000, 5_000, 6_000, 8_000,
    10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000, 180_000, 300_000,
    600_000, 900_000, 1_800_000, 3_600_000, 7_200_000, 14_400_000, 28_800_000, 43_200_000,
    86_400_000,
)  # fmt: skip
FUNNEL_HOURS = tuple(f"h{hour:02d}" for hour in range(24))
FUNNEL_BUCKETS = tuple(f"b{i:02d}" for i in range(len(FUNNEL_LATENCY_BOUNDS_MS) + 1))
FUNNEL_DAILY_COUNTERS = (
    "missed",
    "pending",
    "screened_out",
    *(f"screened_{reason}" for reason in FUNNEL_SCREENED_OUT),
    "screened_other",
    "joined",
    "to_text",
    "texted",
    "delivered",
    "replied",
    "qualified",
    "booked_bot",
    "booked_page",
    "booked_staff",
    "booked_other",
    # Of the bookings above, those since cancelled (every appointment the thread booked is
    # cancelled and none replaced it), and those still booked after a reschedule.
    "cancelled",
    "rebooked",
    "handoffs",
    "urgent",
    "opted_out",
    "wrong_number",
    "no_reply",
    "lost",
    "resolved",  # staff called back and closed it: neither booked nor lost
)
FUNNEL_VARIANT_COUNTERS = ("texted", "replied", "qualified", "booked")


def _counter(name: str) -> Column[int]:
    return Column(name, Integer, nullable=False, default=0, server_default="0")


# One row per location, local day and miss reason: the funnel's counters, the screened-out
# reasons, and the misses by local hour (h00-h23) for the hour-of-week heatmap.
funnel_daily = Table(
    "funnel_daily",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("miss_reason", String(20), primary_key=True),
    Column("weekday", SmallInteger, nullable=False),  # 0 = Monday, of ``day``
    *(_counter(name) for name in FUNNEL_DAILY_COUNTERS),
    *(_counter(name) for name in FUNNEL_HOURS),
)

# Text-back template variants, counted over text-backs that were sent: the A/B comparison.
funnel_variants = Table(
    "funnel_variants",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("variant", String(20), primary_key=True),
    *(_counter(name) for name in FUNNEL_VARIANT_COUNTERS),
)

# Speed-to-lead histograms: kind is "textback" (end of the missed call to the text-back
# leaving) or "reply" (the patient's text to the bot's answer leaving).
funnel_latency = Table(
    "funnel_latency",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("kind", String(10), primary_key=True),
    _counter("n"),
    Column("sum_ms", BigInteger, nullable=False, default=0, server_default="0"),
    Column("max_ms", BigInteger, nullable=False, default=0, server_default="0"),
    *(_counter(name) for name in FUNNEL_BUCKETS),
)

# Bookings by treatment, so revenue is priced from the location's catalogue when read
# (``valued``/``value_cents``: bookings whose value is known, staff's entry or the booked
# appointment's, and its sum). ``cancelled*``: the same for the ones since cancelled, so
# revenue recovered (the bookings not cancelled) is the difference. A rescheduled booking
# is one booking, at its current appointment's treatment and value.
funnel_bookings = Table(
    "funnel_bookings",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("miss_reason", String(20), primary_key=True),
    Column("variant", String(20), primary_key=True),
    Column("treatment", String(80), primary_key=True),
    _counter("booked"),
    _counter("valued"),
    Column("value_cents", BigInteger, nullable=False, default=0, server_default="0"),
    _counter("cancelled"),
    _counter("cancelled_valued"),
    Column("cancelled_value_cents", BigInteger, nullable=False, default=0, server_default="0"),
)

# When the bookings not cancelled start (their current appointment's start), so that
# "kept" (the start has passed) is counted against the clock when read, not when rolled
# up. Bookings with no appointment (staff marked them booked) have no row here.
funnel_booking_starts = Table(
    "funnel_booking_starts",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("starts_at", UTCDateTime(), primary_key=True),
    _counter("booked"),
)

# Rollups out of date, by location and the hour (UTC) the missed call behind the change
# was missed in. Written when the transaction that changed a call, conversation or text
# commits; an hour maps to one local day (two where a zone's offset is not whole hours).
funnel_dirty = Table(
    "funnel_dirty",
    Base.metadata,
    Column("location_id", String(64), primary_key=True),
    Column("utc_hour", UTCDateTime(), primary_key=True),
    Column("marked_at", UTCDateTime(), nullable=False),
)

# What the rollups look up: a conversation's calls, a call's text-back, a thread's
# appointments and what replaced them.
Index("ix_calls_conversation_id", Call.conversation_id)
Index("ix_messages_call_id", Message.call_id)
Index("ix_appointments_conversation_id", Appointment.conversation_id)
Index("ix_appointments_rescheduled_from_id", Appointment.rescheduled_from_id)


# --- patient records (ringback.patients) -----------------------------------------------------


class SuppressedNumber(Base):
    """An opt-out that outlived the deletion of a patient's record.

    Deleting a patient erases their number, so the opt-out on their row would be lost. When
    they had opted out, a one-way hash of location and number is kept here instead, and a
    fresh record for that number (they called or texted again) starts opted out. The hash
    is pseudonymous, not anonymous (phone numbers can be enumerated); it is kept only to
    honour "don't text me".
    """

    __tablename__ = "suppressed_numbers"

    location_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex
    opted_out_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# --- outbound webhooks (ringback.outbound_webhooks.service) -------------------------------------
#
# An endpoint is a URL of the clinic's own systems (a CRM, a spreadsheet bridge) and the
# events it wants. A delivery is the outbox row for one event to one endpoint: written in
# the transaction that decided the event happened, then posted, retried and logged.


class WebhookEndpoint(Base):
    """A URL the clinic registered, the events it wants, and the secret that signs them."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    location_id: Mapped[str | None] = mapped_column(String(64))  # None: every location
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # A shared secret, stored as created (not hashed) because every delivery is signed with it.
    secret: Mapped[str] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)  # False once removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set while an owner has paused it: deliveries are still written but wait, unsent,
    # until it is resumed.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """One event for one endpoint: its payload, and every attempt's outcome so far."""

    __tablename__ = "webhook_deliveries"
    # One delivery per event and endpoint, however often the producing code runs again.
    __table_args__ = (UniqueConstraint("endpoint_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event: Mapped[str] = mapped_column(String(40))  # missed_call.detected, ...
    event_id: Mapped[str] = mapped_column(String(160))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next attempt is due (while one runs: when it may be taken over); None once settled.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_response: Mapped[str | None] = mapped_column(String(1024))  # the body's first 1 KB
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


Index("ix_webhook_deliveries_due", WebhookDelivery.status, WebhookDelivery.next_attempt_at)


# --- settings ---------------------------------------------------------------------------
# The clinic's settings (what the locations file holds) live in one row with a version
# every process checks cheaply; each change is kept in the audit log with before and after.


class SettingsState(Base):
    """Every location's settings as one document, its version, and who manages it."""

    __tablename__ = "settings_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # always 1
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The locations file that was applied at start (its settings are read only in the
    # pages), or None when the settings are managed here.
    managed_by: Mapped[str | None] = mapped_column(String(1000))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SettingsChange(Base):
    """One changed setting: who, when, which location and key, the value before and after."""

    __tablename__ = "settings_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(1100))  # a staff email, or "file <path>"
    location_id: Mapped[str] = mapped_column(String(64))
    section: Mapped[str] = mapped_column(String(60))
    before: Mapped[Any] = mapped_column(JSONType, nullable=True)
    after: Mapped[Any] = mapped_column(JSONType, nullable=True)


Index("ix_settings_changes_changed_at", SettingsChange.changed_at)
