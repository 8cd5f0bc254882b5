"""SignalWire's compatibility (cXML, formerly LaML) REST API: Messages send and list.

SignalWire mirrors Twilio's API v2010 under its Space, so the Twilio client's Messages
code is reused as it is; what differs is only where and as whom:

* base ``https://{space}.signalwire.com/api/laml``, then Twilio's own path
  ``/2010-04-01/Accounts/{ProjectID}/Messages.json``
  (https://developer.signalwire.com/compatibility-api/rest/entities/messages/);
* HTTP basic auth with the Project ID and an API token (``ProjectID:APIToken``);
* ids are UUIDs (the project, every message), not ``AC``/``SM`` SIDs;
* errors carry Twilio's fields and numbering (``code``, ``message``, ``more_info``,
  ``status``; https://developer.signalwire.com/rest/compatibility-api/overview/error-codes),
  and SignalWire adds 21217 for a destination that is not a valid phone number.

SignalWire has no Twilio-compatible line-type lookup (its own Lookup lives under
``/api/relay/rest/lookup`` with another shape), so this client is an SmsSender only.
"""

from __future__ import annotations

import httpx

from ringback.ports import OutboundSms
from ringback.telephony.twilio_rest import NOT_TEXTABLE_CODES, CompatibleMessagesClient

# "A call or SMS is placed to a destination which does not represent a valid phone number".
SIGNALWIRE_INVALID_DESTINATION = 21217


class SignalWireRestClient(CompatibleMessagesClient):
    """Satisfies :class:`ringback.ports.SmsSender` for one SignalWire project.

    Delivery receipts for SignalWire texts must come back to SignalWire's own webhook
    (it signs them with the Space's signing key, not Twilio's token), so whenever the
    domain asks for a receipt this client asks for it at ``status_callback_url``.
    """

    provider_name = "SignalWire"
    not_textable_codes = NOT_TEXTABLE_CODES | {SIGNALWIRE_INVALID_DESTINATION}

    def __init__(
        self,
        project_id: str,
        api_token: str,
        *,
        api_base_url: str,
        status_callback_url: str,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(
            project_id,
            api_token,
            api_base_url=api_base_url,
            timeout=timeout,
            transport=transport,
        )
        self.status_callback_url = status_callback_url

    def _status_callback(self, sms: OutboundSms) -> str | None:
        return self.status_callback_url if sms.status_callback else None
