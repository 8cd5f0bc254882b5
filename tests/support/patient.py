"""A patient texting the spa from their phone, for end-to-end conversation tests.

Drives the real service over signed webhooks (a missed call, then texts) and reads what
the spa sent back through the fake Twilio, so the invariant the product lives by can be
checked after every text: while the bot owns the thread, each patient text gets exactly
one answer, within seconds.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ringback.conversation.machine import State
from ringback.models import Conversation
from tests.conftest import Service, settle, wait_for
from tests.support.phone import FRONT_DESK_TO, miss, text_in, texts_to

# How long a reply may take before the patient counts as left on read.
REPLY_WITHIN_SECONDS = 8.0
# How long to watch for a text that must not come.
QUIET_SECONDS = 1.0


class LeftOnRead(AssertionError):
    """The bot owned the thread and did not answer the patient."""


class Patient:
    """One caller: ``call()`` misses a call to the spa, ``say(text)`` texts it."""

    def __init__(self, service: Service, number: str, spa: str = FRONT_DESK_TO) -> None:
        self.service = service
        self.number = number
        self.spa = spa

    @property
    def received(self) -> list[str]:
        return [str(m.body) for m in texts_to(self.service, self.number)]

    def call(self) -> str:
        """A missed call; returns the text-back."""
        before = len(self.received)
        miss(self.service, self.number, to=self.spa)
        return self._next_after(before, "the text-back")

    def conversation(self) -> Conversation | None:
        with self.service.db() as session:
            return session.scalars(
                select(Conversation)
                .where(Conversation.patient.has(phone=self.number))
                .order_by(Conversation.id.desc())
            ).first()

    def bot_owns_thread(self) -> bool:
        conversation = self.conversation()
        if conversation is None or not conversation.is_open:
            return False
        state = State.from_json(conversation.state)
        return not state.paused and state.stage in ("qualifying", "offering", "routed")

    def say(self, text: str, *, quiet: bool = False) -> list[str]:
        """Text the spa and return what came back: wait for one answer (or, when ``quiet``
        is expected, a moment), then a short settle for any second one."""
        before = len(self.received)
        text_in(self.service, self.number, text)
        try:
            wait_for(
                lambda: len(self.received) > before,
                QUIET_SECONDS if quiet else REPLY_WITHIN_SECONDS,
                f"an answer to {text!r}",
            )
        except AssertionError:
            return []
        settle(0.3)
        return self.received[before:]

    def wait(self, delta: timedelta) -> None:
        """Time passes on the spa's clock (the patient replies hours or days later)."""
        self.service.clock.advance(delta)

    def _next_after(self, count: int, what: str) -> str:
        texts = wait_for(lambda: len(self.received) > count and self.received, 10.0, what)
        return texts[count]
