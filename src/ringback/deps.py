"""What the domain services are handed: adapters and settings, no web framework."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Locations
from ringback.ports import (
    AlertEmailer,
    CalendarFactory,
    CallerLookup,
    ChatWebhook,
    JobScheduler,
    OutboundSms,
    SendFailure,
    SentSms,
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

    @property
    def sms_status_callback(self) -> str:
        # Twilio's route; a SignalWire sender asks for its receipts at /signalwire/sms/status.
        return f"{self.public_url}/twilio/sms/status"


class ProviderRoutedSms:
    """An :class:`SmsSender` that sends each text through its location's provider.

    A text goes out from a location's number, so the location owning ``From`` decides
    (``provider: twilio | signalwire`` in the locations file); a number that is no
    location's goes through ``default``. The domain sees one sender and never the choice.
    """

    def __init__(
        self,
        locations: Locations,
        senders: Mapping[str, SmsSender],
        *,
        default: str = "twilio",
    ) -> None:
        self._locations = locations
        self._senders = dict(senders)
        self._default = default

    def provider_for(self, from_number: str) -> str:
        location = self._locations.by_number(from_number)
        return location.provider if location is not None else self._default

    def _sender(self, from_number: str) -> SmsSender:
        provider = self.provider_for(from_number)
        sender = self._senders.get(provider)
        if sender is None:
            # An operator problem (credentials missing), not the patient's: keep the text.
            raise SendFailure("retry", f"no {provider} sender is configured for {from_number}")
        return sender

    def send(self, sms: OutboundSms) -> SentSms:
        return self._sender(sms.from_).send(sms)

    def find_sent(self, sms: OutboundSms, since: datetime) -> SentSms | None:
        return self._sender(sms.from_).find_sent(sms, since)
