"""The provider adapters a process needs, built from settings and the locations file.

Twilio serves every location by default; locations with ``provider: signalwire`` send
through SignalWire, chosen per text by :class:`ringback.deps.ProviderRoutedSms`.
Line-type lookups stay with Twilio's Lookup v2 (SignalWire has no compatible one): they
need Twilio credentials, and without them screening carries on without a line type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ringback.config import Locations, Settings, check_provider_settings
from ringback.deps import ProviderRoutedSms
from ringback.ports import CallerLookup, SmsSender
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
