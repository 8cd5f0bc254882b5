"""What a US texting registration (A2P 10DLC) asks for, written from the location itself.

Carriers review a campaign's description, how people opt in, sample messages, and the
opt-out and help wording; a registration whose samples do not match what is sent gets
rejected or filtered. So every text here comes from the wording Ringback really sends for
this location: its own text-back template, the bot's replies, its HELP and STOP answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ringback import readable
from ringback.config import Location
from ringback.conversation.replies import render
from ringback.messaging.keywords import HELP_WORDS, START_WORDS, STOP_WORDS
from ringback.messaging.segments import Encoding, message_segments, prefer_gsm7
from ringback.phones import display


@dataclass(frozen=True, slots=True)
class Sample:
    """One message as a patient would receive it, and what it costs to send."""

    purpose: str
    body: str
    encoding: Encoding
    segments: int


@dataclass(frozen=True, slots=True)
class Registration:
    use_case: str
    description: str
    message_flow: str
    samples: tuple[Sample, ...]
    opt_in_keywords: str
    opt_in_message: str
    opt_out_keywords: str
    opt_out_message: str
    help_keywords: str
    help_message: str
    has_links: bool
    has_phone_numbers: bool


def sample(purpose: str, body: str) -> Sample:
    text = prefer_gsm7(body)
    encoding, segments = message_segments(text)
    return Sample(purpose, text, encoding, segments)


def _words(words: frozenset[str]) -> str:
    return ", ".join(sorted(word.upper() for word in words))


def build(location: Location, textback: str, now: datetime) -> Registration:
    """The registration for ``location``; ``textback`` is its first text as sent."""
    name, phone = location.name, display(location.phone_number)
    service = next((s for s in location.services if not s.consult), None)
    treatment = service.name if service is not None else "your visit"
    when = readable.when((now + timedelta(days=2)).replace(hour=17, minute=0), location.zone)
    values = {
        "location": name,
        "phone": phone,
        "treatment": treatment,
        "slots": f"1) {when}",
        "choices": "1",
        "when": when,
        "provider": "our provider",
        "address": f"{location.address}. " if location.address else "",
        "booking_link": location.booking_url or "",
        "name": "",
    }
    where = f" at {location.address}" if location.address else ""
    samples = [
        sample("First text after a missed call", textback),
        sample("Question to help book", render("ask_time", "en", values)),
        sample(
            "Appointment times offered",
            render("offer_slots" if location.schedules else "booking_link", "en", values),
        ),
        sample("Booking confirmation", render("booked", "en", values)),
        sample("Reply to HELP", location.render(location.messages.help)),
    ]
    description = (
        f"{name}{where} is a medical spa. When someone calls {phone} and we cannot answer, "
        "we send them one text so they can reach us by text instead. The conversation that "
        "follows is the caller's own: which treatment they want, a day and time that suits "
        "them, appointment times we can offer, the booking confirmation, and answers from our "
        "staff. We only text people who called us first, and we never send marketing."
    )
    greeting = location.render(location.messages.voice_greeting)
    flow = (
        f"People opt in by calling our business line {phone}. When we miss the call, the "
        f'greeting tells them a text is coming: "{greeting}" '
        "The first text names the business and says how to opt out "
        f'("{location.messages.opt_out_suffix}"). Numbers that replied STOP are never texted '
        "again unless they reply START."
    )
    return Registration(
        use_case="Customer Care",
        description=description,
        message_flow=flow,
        samples=tuple(samples),
        opt_in_keywords=_words(START_WORDS),
        opt_in_message=location.render(location.messages.start),
        opt_out_keywords=_words(STOP_WORDS),
        opt_out_message=location.render(location.messages.stop),
        help_keywords=_words(HELP_WORDS),
        help_message=location.render(location.messages.help),
        has_links=any("http" in s.body for s in samples),
        has_phone_numbers=True,
    )
