"""An urgent text: the machine keeps the treatment it names, and the safety reply gives a
number someone will answer, written the way people write numbers (or no number at all)."""

from __future__ import annotations

from datetime import datetime

from ringback.conversation import replies
from ringback.conversation.machine import Inbound, Machine, State, TextedBack
from ringback.conversation.service import clinic, urgent_reply
from ringback.conversation.understand import understand
from tests.support.conversation import GLOW, NOW, ZONE, location

OPEN = NOW  # Tuesday 10:15 in Los Angeles
CLOSED = datetime(2026, 11, 24, 22, 0, tzinfo=ZONE)


def test_the_treatment_named_in_an_urgent_text_is_kept() -> None:
    machine = Machine(clinic(GLOW))
    state, _ = machine.transition(State(), TextedBack(), NOW)
    u = understand("my lip is swelling after filler yesterday", NOW, GLOW, known_patient=False)
    state, _ = machine.transition(state, Inbound(u), NOW)
    assert state.stage == "urgent"
    assert state.treatment == "Filler"


def test_urgent_reply_gives_the_on_call_line_whenever_there_is_one() -> None:
    on_call = location(urgent_phone="+13105550177")
    assert urgent_reply(on_call, OPEN) == ("urgent", "(310) 555-0177")
    assert urgent_reply(on_call, CLOSED) == ("urgent", "(310) 555-0177")


def test_urgent_reply_gives_the_spa_only_while_it_is_open() -> None:
    assert urgent_reply(GLOW, OPEN) == ("urgent", "(310) 555-0100")
    template, phone = urgent_reply(GLOW, CLOSED)
    assert (template, phone) == ("urgent_callback", "")
    for language in ("en", "es"):
        text = replies.render(template, language, {"location": "Glow Med Spa"})
        assert "911" in text
        assert "555" not in text
