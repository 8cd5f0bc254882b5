"""The bot's wording: every text names the spa, fits one SMS segment, in both languages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback.config import load_locations
from ringback.conversation.replies import TEMPLATES, render
from ringback.messaging.segments import message_segments, prefer_gsm7

DEMO = Path(__file__).parents[2] / "src" / "ringback" / "demo" / "locations.yaml"
GLOW = load_locations(DEMO).get("glow-downtown")
assert GLOW is not None
VALUES = {
    "location": GLOW.name,
    "phone": GLOW.phone_number,
    "treatment": "Laser Hair Removal",
    "price": "Laser Hair Removal starts at $250.",
    "examples": "Botox, Filler, HydraFacial",
    "booking_link": "https://glow.example/book?service=Laser+Hair+Removal",
    "slots": "1) Tue Dec 1 at 3:00pm with Anna, 2) Tue Dec 1 at 4:15pm with Bea, "
    "3) Wed Dec 2 at 10:00am with Anna",
    "choices": "1, 2 or 3",
    "when": "Tue Dec 1 at 3:00pm",
    "provider": "Anna",
    "address": "1200 Main St, Suite 4, Los Angeles, CA 90012. ",
    "prep": "Please avoid alcohol for 24 hours before. ",
}
# Texts that carry a price line, a link, a list of times or an address may take two
# segments; nothing takes three.
TWO_SEGMENTS = {
    "booking_link",
    "no_show_offer",
    "ask_time",
    "ask_patient",
    "offer_slots",
    "offer_more",
    "offer_again",
    "slot_taken",
    "no_slots_link",
    "booked",
    "rescheduled",
    "waitlist_offer",
    "rebook",
}


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("template", sorted(TEMPLATES["en"]))
def test_every_text_names_the_spa_and_fits_where_possible(language: str, template: str) -> None:
    body = prefer_gsm7(render(template, language, VALUES))  # type: ignore[arg-type]
    assert body.startswith("Glow Med Spa: ")
    encoding, segments = message_segments(body)
    assert encoding == "GSM-7", body
    limit = 2 if template in TWO_SEGMENTS else 1
    assert segments <= limit, (len(body), body)
    assert "{" not in body
    assert "}" not in body


def test_both_languages_have_every_template() -> None:
    assert set(TEMPLATES["es"]) == set(TEMPLATES["en"])


def test_prefer_gsm7_keeps_what_cannot_be_helped() -> None:
    assert prefer_gsm7("It’s “fine” – thanks…") == 'It\'s "fine" - thanks...'
    assert prefer_gsm7("¿Qué día?") == "¿Qué dia?"
    assert prefer_gsm7("See you 😊") == "See you 😊"  # an emoji stays UCS-2 either way
    assert message_segments("a" * 160) == ("GSM-7", 1)
    assert message_segments("a" * 161) == ("GSM-7", 2)
    assert message_segments("é" * 70)[0] == "GSM-7"
    assert message_segments("á" * 70) == ("UCS-2", 1)
    assert message_segments("á" * 71) == ("UCS-2", 2)
