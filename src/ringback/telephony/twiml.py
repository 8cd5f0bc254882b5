"""TwiML answers for the voice and messaging webhooks, built with the twilio package."""

from __future__ import annotations

from xml.sax.saxutils import escape

from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Dial, VoiceResponse

from ringback.config import Location


def ring_front_desk(location: Location, action_url: str) -> str:
    """Ring the front desk for ``ring_seconds``; Twilio posts the outcome to ``action_url``."""
    response = VoiceResponse()
    dial = Dial(action=action_url, method="POST", timeout=location.ring_seconds)
    for number in location.front_desk:
        dial.number(number)
    response.append(dial)
    return str(response)


def greeting(location: Location, *, after_hours: bool) -> str:
    """A short branded message telling the caller a text is on its way, then hang up."""
    template = (
        location.messages.after_hours_greeting if after_hours else location.messages.voice_greeting
    )
    response = VoiceResponse()
    response.say(location.render(template))
    response.hangup()
    return str(response)


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def empty_messaging() -> str:
    """No TwiML reply: Ringback sends its texts through the REST API, durably."""
    return str(MessagingResponse())


def error_voice(message: str, spoken: str | None) -> str:
    """A TwiML-safe error body: valid TwiML for Twilio, the reason in a comment for people."""
    comment = escape(message).replace("--", "- -")
    say = f"<Say>{escape(spoken)}</Say>" if spoken else ""
    head = f'<?xml version="1.0" encoding="UTF-8"?><!-- {comment} -->'
    return f"{head}<Response>{say}<Hangup/></Response>"


def error_messaging(message: str) -> str:
    comment = escape(message).replace("--", "- -")
    return f'<?xml version="1.0" encoding="UTF-8"?><!-- {comment} --><Response/>'
