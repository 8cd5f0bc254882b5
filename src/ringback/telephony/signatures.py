"""How each provider signs the webhooks it sends us, and how we check them.

Twilio
    ``X-Twilio-Signature`` = base64(HMAC-SHA1(auth token, URL + each POST parameter's
    name and value, sorted by name)); a Webhooks Rule may switch it to HMAC-SHA256 with a
    shared key, announced in ``X-Twilio-Webhooks-Signature-Settings``
    (https://www.twilio.com/docs/usage/webhooks/webhooks-security).

SignalWire (compatibility / cXML webhooks)
    The same construction as Twilio's, keyed with the project's **Signing Key**, which is
    not the API token: "You can find your personalized signing key in the API Credentials
    Space of your Dashboard ... Each project in your Dashboard will have its own signing
    key" (https://developer.signalwire.com/guides/webhook-security). The signature is in
    ``X-SignalWire-Signature``; ``X-Twilio-Signature`` is accepted as a legacy alias
    (https://signalwire.com/docs/server-sdks/reference/python/core/security). SignalWire's
    Python SDK does exactly this: the old ``signalwire.request_validator.RequestValidator``
    hands form parameters to Twilio's own validator with the signing key
    (github.com/signalwire/signalwire-python, ``signalwire/request_validator.py``), and the
    current ``signalwire.core.security.webhook_validator.validate_request`` computes
    base64(HMAC-SHA1(signing key, URL + sorted params)), trying the URL with and without
    the default port. (Its other scheme, hex(HMAC-SHA1(key, URL + raw body)), is for
    RELAY/SWML JSON callbacks, which Ringback does not take.)

A Twilio-signed request therefore fails at a SignalWire route (wrong key) and the other
way round; each route only trusts its own provider's secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from twilio.request_validator import RequestValidator, get_signature_algorithm

Provider = Literal["twilio", "signalwire"]

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
SIGNALWIRE_SIGNATURE_HEADER = "X-SignalWire-Signature"


def twilio_signature_valid(
    headers: Mapping[str, str], url: str, form: Any, auth_token: str
) -> bool:
    """Twilio's scheme; ``form`` is the parsed form (a mapping, multi-values allowed)."""
    signature = headers.get(TWILIO_SIGNATURE_HEADER)
    if not signature:
        return False
    algorithm = get_signature_algorithm(headers.get(TWILIO_SETTINGS_HEADER))
    return bool(RequestValidator(auth_token).validate(url, form, signature, algorithm))


def signalwire_signature_header(headers: Mapping[str, str]) -> str | None:
    """The signature SignalWire sent: its own header first, then the legacy alias."""
    return headers.get(SIGNALWIRE_SIGNATURE_HEADER) or headers.get(TWILIO_SIGNATURE_HEADER)


def signalwire_signature_valid(
    headers: Mapping[str, str], url: str, form: Any, signing_key: str
) -> bool:
    """SignalWire's compatibility scheme, keyed with the project's signing key.

    Twilio's validator computes exactly that construction and also tries the URL with
    and without its default port, as SignalWire's own validator does.
    """
    signature = signalwire_signature_header(headers)
    if not signature:
        return False
    return bool(RequestValidator(signing_key).validate(url, form, signature))


def signalwire_signature(signing_key: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-SignalWire-Signature`` SignalWire would send (for fakes and tests)."""
    return str(RequestValidator(signing_key).compute_signature(url, params))
