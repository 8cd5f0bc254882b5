"""The outside world, as Protocols the domain is handed, and the plain data they speak."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from ringback.config import Location


@dataclass(frozen=True, slots=True)
class OutboundSms:
    to: str
    from_: str
    body: str
    status_callback: str | None = None


@dataclass(frozen=True, slots=True)
class SentSms:
    """What the provider said when it accepted a message."""

    sid: str
    status: str


FailureKind = Literal["retry", "ambiguous", "opted_out", "not_textable", "rejected"]


class SendFailure(Exception):
    """A send that did not go through, with what to do about it.

    * ``retry``: nothing was sent (429, 5xx, refused connection); try again later.
    * ``ambiguous``: the provider may have accepted it (timeout after sending); reconcile
      before sending again, so the patient never gets it twice.
    * ``opted_out``: the carrier says the recipient unsubscribed (Twilio 21610).
    * ``not_textable``: the number cannot get texts (Twilio 21211, 21614).
    * ``rejected``: anything else permanent; recorded, not retried.
    """

    def __init__(
        self,
        kind: FailureKind,
        detail: str,
        *,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind: FailureKind = kind
        self.detail = detail
        self.code = code
        self.retry_after = retry_after


class SmsSender(Protocol):
    """Sends texts through a provider (Twilio's Messages API, or the demo network)."""

    def send(self, sms: OutboundSms) -> SentSms:
        """Send one SMS; raise :class:`SendFailure` when it did not (certainly) go."""
        ...

    def find_sent(self, sms: OutboundSms, since: datetime) -> SentSms | None:
        """Return the provider's record of ``sms`` if it was accepted after ``since``."""
        ...


class CallerLookup(Protocol):
    """Tells what kind of line a number is (mobile, landline, voip), or None if unknown."""

    def line_type(self, number: str) -> str | None:
        """Raise :class:`LookupFailed` when the provider cannot answer right now."""
        ...


class LookupFailed(Exception):
    """The line-type lookup could not be done; callers carry on without it."""


class AlertDeliveryFailed(Exception):
    """A staff alert (email or chat post) did not go out.

    ``retry`` is True when trying again later may work (refused connection, timeout, SMTP
    4xx, HTTP 429/5xx) and False when it will not (address or URL refused, login refused).
    ``detail`` names what happened, never the message, the addresses or the webhook URL.
    """

    def __init__(self, detail: str, *, retry: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry = retry


class AlertEmailer(Protocol):
    """Sends plain-text email to clinic staff (SMTP)."""

    def send(self, to: list[str], subject: str, body: str) -> None:
        """Send one message to all of ``to``; raise :class:`AlertDeliveryFailed` if not sent."""
        ...


class ChatWebhook(Protocol):
    """Posts a line of text to a team chat's incoming webhook (Slack and compatibles)."""

    def post(self, url: str, text: str) -> None:
        """Post ``text`` to ``url``; raise :class:`AlertDeliveryFailed` if it was not accepted."""
        ...


class EnqueueFailed(Exception):
    """The queue did not take a job (it is down). What the job was for is stored already;
    the sweep hands it to a worker once the queue answers again."""

    def __init__(self, job: str, detail: str) -> None:
        super().__init__(f"could not queue {job}: {detail}")
        self.job = job


class JobScheduler(Protocol):
    """Hands work to the job queue. Calls made inside a transaction take effect on commit."""

    def handle_event(self, event_id: int) -> None:
        """Process a stored provider event."""
        ...

    def deliver_sms(self, message_id: int, at: datetime | None = None) -> None:
        """Send an outbox message now, or at ``at``."""
        ...

    def reconcile_sms(self, message_id: int, claim: str, at: datetime | None = None) -> None:
        """Find out whether an ambiguous send reached the provider, then finish it; acts
        only while the message is still under ``claim`` (its claim token)."""
        ...

    def conversation_timer(self, conversation_id: int, kind: str, at: datetime) -> None:
        """Fire a conversation's nudge or close timer at ``at``."""
        ...

    def email_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None:
        """Email the location's staff about a handoff or an urgent message (retried)."""
        ...

    def post_staff_alert(self, conversation_id: int, reason: str, urgent: bool) -> None:
        """Post the alert to the location's chat webhook (retried)."""
        ...

    def deliver_webhook(self, delivery_id: int, at: datetime | None = None) -> None:
        """Post an outbound webhook delivery to its endpoint now, or at ``at``."""
        ...

    def sync_calendar(self, sync_id: int, at: datetime | None = None) -> None:
        """Make an appointment's event on an outside calendar match it (retried)."""
        ...

    def send_reminder(self, reminder_id: int) -> None:
        """Send one appointment reminder, or skip it with why (exactly once)."""
        ...


# --- calendars -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CalendarEvent:
    """An event Ringback writes for a booking: the patient's first name and the service only.

    ``uid`` is stable per appointment, so writing the same booking again replaces the event
    instead of adding a second one. Times are aware datetimes (stored as UTC).
    """

    uid: str
    start: datetime
    end: datetime
    summary: str
    description: str = ""
    location: str = ""


@dataclass(frozen=True, slots=True)
class BusyTime:
    """A busy stretch read from an outside calendar (``uid`` lets us skip our own events)."""

    uid: str
    start: datetime
    end: datetime


class CalendarUnavailable(Exception):
    """The calendar could not be read or written right now.

    ``retry`` is False when trying again cannot help (the calendar refused our login, the
    URL is not a calendar). ``detail`` never holds credentials or patient details.
    """

    def __init__(self, detail: str, *, retry: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry = retry


class Calendar(Protocol):
    """A provider's or location's outside calendar (CalDAV: Google, iCloud, Nextcloud ...)."""

    def put_event(self, event: CalendarEvent) -> None:
        """Create or replace the event with ``event.uid``; raise :class:`CalendarUnavailable`."""
        ...

    def delete_event(self, uid: str) -> None:
        """Remove the event; an event that is already gone is not an error."""
        ...

    def busy(self, start: datetime, end: datetime) -> list[BusyTime]:
        """Busy stretches overlapping [start, end), recurring events expanded."""
        ...

    def close(self) -> None:
        """Release the connection; the calendar is opened anew for each sync or read."""
        ...


# Opens the outside calendar ``key`` (a provider id, or "location") of a location, or None.
CalendarFactory = Callable[["Location", str], "Calendar | None"]


# --- booking systems ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookingSystemCapabilities:
    """What a clinic's booking system can do, so the booking flow knows what to ask it.

    ``offers_availability``: the system computes bookable slots itself (Square) rather than
    only reporting busy time (Google Calendar), in which case Ringback computes the slots.
    ``push_notifications``: it can tell us about changes (webhooks, watch channels).
    ``incremental_sync``: :meth:`BookingSystem.changes` reads only what changed.
    """

    knows_services: bool
    knows_staff: bool
    offers_availability: bool
    push_notifications: bool
    incremental_sync: bool


@dataclass(frozen=True, slots=True)
class ExternalBooking:
    """An appointment Ringback asks a booking system to hold.

    ``ringback_id`` is stable per appointment: writing it again (a retry) never makes a
    second booking. ``summary`` is the patient's first name and the service, never health
    details. ``provider_ref`` and ``service_ref`` are the outside system's ids for the
    staff member (or calendar) and the service. ``version`` is the outside system's
    version of the booking, when rescheduling one it holds.
    """

    ringback_id: str
    start: datetime
    end: datetime
    summary: str
    note: str
    provider_ref: str | None
    service_ref: str | None
    customer_phone: str | None
    customer_given_name: str | None
    customer_family_name: str | None
    version: int | None = None


@dataclass(frozen=True, slots=True)
class ExternalBookingRef:
    """Where a booking lives in the outside system: its id and version (or etag)."""

    external_id: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class ExternalSlot:
    """A bookable slot the outside system offered (systems that compute availability)."""

    start: datetime
    end: datetime
    provider_ref: str | None
    service_ref: str | None


ExternalChangeKind = Literal["created", "updated", "cancelled"]


@dataclass(frozen=True, slots=True)
class ExternalChange:
    """A booking that changed in the outside system; ``ringback_id`` if it is one of ours.

    ``start``/``end`` are ``None`` when the system no longer says (a deleted event).
    """

    external_id: str
    ringback_id: str | None
    kind: ExternalChangeKind
    start: datetime | None
    end: datetime | None


class BookingConflict(Exception):
    """The outside system says the slot is taken (by someone else's booking)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BookingSystemUnavailable(Exception):
    """The booking system could not be read or written right now.

    ``retry`` is False when trying again cannot help (our access was refused and could not
    be renewed, the request was rejected). ``detail`` never holds tokens or patient details.
    ``retry_after`` is the system's hint in seconds, when it gave one.
    """

    def __init__(
        self, detail: str, *, retry: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retry = retry
        self.retry_after = retry_after


class BookingSystem(Protocol):
    """The booking system a clinic already runs (Google Calendar, Square Appointments).

    Every method raises :class:`BookingSystemUnavailable` when the system cannot be
    reached or refuses us.
    """

    @property
    def capabilities(self) -> BookingSystemCapabilities:
        """What this system can do (see :class:`BookingSystemCapabilities`)."""
        ...

    def busy(self, start: datetime, end: datetime, provider_refs: list[str]) -> list[BusyTime]:
        """Busy stretches overlapping [start, end) for each provider, sorted by start."""
        ...

    def availability(
        self, start: datetime, end: datetime, service_ref: str, provider_refs: list[str]
    ) -> list[ExternalSlot]:
        """Bookable slots starting in [start, end) the system computed itself.

        Busy-only systems (``capabilities.offers_availability`` False) raise
        :class:`NotImplementedError`; Ringback computes slots from :meth:`busy` there.
        """
        ...

    def create(self, booking: ExternalBooking) -> ExternalBookingRef:
        """Book it; idempotent on ``booking.ringback_id`` (a retry returns the same ref).

        Raise :class:`BookingConflict` when the slot is taken in the outside system.
        """
        ...

    def reschedule(self, ref: ExternalBookingRef, booking: ExternalBooking) -> ExternalBookingRef:
        """Move the booking to ``booking``'s times (and provider); return the new version."""
        ...

    def cancel(self, ref: ExternalBookingRef) -> None:
        """Cancel the booking; one that is already gone or cancelled is not an error."""
        ...

    def changes(self, cursor: str | None) -> tuple[list[ExternalChange], str]:
        """What changed since ``cursor``, and the cursor to keep for the next call.

        ``cursor=None`` is a full read (every booking the system holds in its window). A
        cursor the system no longer honours (Google's 410 GONE) also gives a full read.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# Opens a location's booking system (from its config and stored credential), or None when
# the location books into Ringback itself.
BookingSystemFactory = Callable[["Location"], "BookingSystem | None"]
