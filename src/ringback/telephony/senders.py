"""The provider adapters a process needs, built from settings and the locations file.

Twilio serves every location by default; locations with ``provider: signalwire`` send
through SignalWire, chosen per text by :class:`ProviderRoutedSms`.
Line-type lookups stay with Twilio's Lookup v2 (SignalWire has no compatible one): they
need Twilio credentials, and without them screening carries on without a line type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ringback.config import Locations, Settings, check_provider_settings
from ringback.ports import CallerLookup, OutboundSms, SendFailure, SentSms, SmsSender
from ringback.telephony.signalwire_rest import SignalWireRestClient
from ringback.telephony.twilio_rest import TwilioRestClient

SIGNALWIRE_SMS_STATUS_PATH = "/signalwire/sms/status"


@dataclass
class Telephony:
    """The SmsSender and CallerLookup to hand the domain, and how to close them."""

    sms: SmsSender
    lookup: CallerLookup | None
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for closer in self.closers:
            closer()


def build_telephony(settings: Settings, locations: Locations) -> Telephony:
    """Raise :class:`ringback.config.ConfigError` when a provider in use lacks settings."""
    check_provider_settings(settings, locations)
    twilio = TwilioRestClient(
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        api_base_url=settings.twilio_api_base_url,
        lookup_base_url=settings.twilio_lookup_base_url,
        timeout=settings.send_timeout_seconds,
    )
    telephony = Telephony(
        sms=twilio,
        lookup=twilio if settings.twilio_account_sid else None,
        closers=[twilio.close],
    )
    if any(location.provider == "signalwire" for location in locations):
        signalwire = SignalWireRestClient(
            settings.signalwire_project_id,
            settings.signalwire_api_token,
            api_base_url=settings.signalwire_api_base_url,
            status_callback_url=settings.public_url + SIGNALWIRE_SMS_STATUS_PATH,
            timeout=settings.send_timeout_seconds,
        )
        telephony.closers.append(signalwire.close)
        telephony.sms = ProviderRoutedSms(locations, {"twilio": twilio, "signalwire": signalwire})
    return telephony


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
