"""Who got the slot, when the outside system lets two bookings overlap.

Google Calendar never refuses an overlapping event, and Square lets a seller-level app
double-book. Checking first and writing second leaves a window in which two writers both
see the slot free. So each writer writes, then reads back every booking overlapping its
own, and the earliest created one keeps the slot; the others take theirs back out and
report a conflict. Any two writers agree, because a later writer's read-back happens
after its own write, and so after the earlier writer's write: it always sees the winner.
(Ties on the creation stamp are broken by id; both systems stamp to the millisecond.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Claim:
    """A booking holding (part of) a slot: its id in the outside system and when it was made."""

    external_id: str
    created: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.created, self.external_id)


def first_claim_wins(own: Claim, overlapping: Iterable[Claim]) -> bool:
    """True when ``own`` was made before every other booking overlapping it."""
    return all(
        own.order < other.order for other in overlapping if other.external_id != own.external_id
    )
