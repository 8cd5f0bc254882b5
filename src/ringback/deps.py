"""What the domain services are handed: adapters and settings, no web framework."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Locations
from ringback.ports import (
    AlertEmailer,
    BookingSystemFactory,
    CalendarFactory,
    CallerLookup,
    ChatWebhook,
    JobScheduler,
    SmsSender,
)


@dataclass(frozen=True)
class Deps:
    locations: Locations
    sessions: sessionmaker[Session]
    sms: SmsSender
    lookup: CallerLookup | None
    jobs: JobScheduler
    public_url: str
    clock: Callable[[], datetime]
    send_timeout_seconds: float = 10.0
    # Staff alert channels beyond SMS; None when not configured (those alerts are skipped).
    emailer: AlertEmailer | None = None
    chat: ChatWebhook | None = None
    # Opens a location's outside calendar by key (a provider id, or "location"); None when
    # that calendar is not configured.
    calendars: CalendarFactory | None = None
    # Signs booking links and calendar feed URLs (RINGBACK_SECRET_KEY).
    link_secret: bytes = b"ringback-unset-secret"
    # Opens a location's own booking system (Google Calendar, Square); None: none is used.
    booking_systems: BookingSystemFactory | None = None
    # RINGBACK_ALLOW_PRIVATE_WEBHOOKS: outbound webhooks may go to private addresses.
    allow_private_webhooks: bool = False

    @property
    def sms_status_callback(self) -> str:
        # Twilio's route; a SignalWire sender asks for its receipts at /signalwire/sms/status.
        return f"{self.public_url}/twilio/sms/status"
