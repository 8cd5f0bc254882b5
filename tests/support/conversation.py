"""Driving the pure conversation machine in tests: slots are answered by a plain function."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from ringback.config import Location, load_locations
from ringback.conversation.machine import (
    Command,
    Event,
    FindOffers,
    Machine,
    Offer,
    OffersFound,
    State,
)

SlotFinder = Callable[[str, tuple[tuple[str, str], ...], tuple[str, ...]], tuple[Offer, ...]]


class SettlingMachine:
    """A :class:`Machine` whose :class:`FindOffers` commands are answered at once by
    ``find_slots`` (as the service answers them from the database); the commands of every
    step come back together, the FindOffers themselves included."""

    def __init__(self, machine: Machine, find_slots: SlotFinder) -> None:
        self.machine = machine
        self.find_slots = find_slots

    def transition(self, state: State, event: Event, now: datetime) -> tuple[State, list[Command]]:
        state, commands = self.machine.transition(state, event, now)
        out = list(commands)
        for command in commands:
            if isinstance(command, FindOffers):
                found = self.find_slots(command.treatment, command.times, command.exclude)
                state, more = self.transition(
                    state, OffersFound(found, command.template, command.price_line), now
                )
                out += more
        return state, out


DEMO = Path(__file__).parents[2] / "src" / "ringback" / "demo" / "locations.yaml"


ZONE = ZoneInfo("America/Los_Angeles")


NOW = datetime(2026, 11, 24, 10, 15, tzinfo=ZONE)  # a Tuesday morning


def location(**changes: object) -> Location:
    glow = load_locations(DEMO).get("glow-downtown")
    assert glow is not None
    return glow.model_copy(update=changes)


GLOW = location()
