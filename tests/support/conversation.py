"""Driving the pure conversation machine in tests: slots are answered by a plain function."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
