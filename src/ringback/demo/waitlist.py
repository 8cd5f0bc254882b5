"""The demo phone's "Free a slot (waitlist)" control: put the phone on the waitlist, book
the next free time for someone else, cancel it as staff would, and let the waitlist step
text the freed slot now, so a refill (and the "yes" that books it) can be tried at once.

Real parts throughout: :func:`ringback.booking.waitlist.add` writes the entry, the
booking service books and cancels (the cancellation writes the opening), and
:func:`ringback.conversation.waitlist.offer_opening` texts it, or says why not (outside
texting hours, the day's automated text already sent, opted out).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ringback.booking import service as booking
from ringback.booking import waitlist as waitlists
from ringback.conversation import waitlist
from ringback.db import transaction
from ringback.demo.reminder import DemoReminderError, bookable
from ringback.deps import Deps
from ringback.models import WaitlistEntry, WaitlistOpening
from ringback.patients import service as patients
from ringback.readable import when

# The demo's other patient, whose cancellation frees the slot.
SOMEONE_ELSE = "+12135550199"


@dataclass(frozen=True, slots=True)
class DemoRefill:
    when: str
    offered: bool
    reason: str | None  # why the offer was not texted


def free_a_slot(deps: Deps, caller: str, to: str) -> DemoRefill:
    location, service = bookable(deps, to)
    if service is None or not location.waitlist:
        raise DemoReminderError("to", f"{location.name} keeps no waitlist")
    now = deps.clock()
    with transaction(deps.sessions) as session:
        patient = patients.get_or_create(session, location.id, caller, now)
        entry = waitlists.add(session, location, patient, service.name, [], now, source="staff")
        entry.status = "waiting"  # an earlier demo offer is over: wait again
        other = patients.get_or_create(session, location.id, SOMEONE_ELSE, now)
        slots = booking.offer(session, location, service, now, limit=1)
        appointment = (
            booking.reserve(session, deps, location, service, other, slots[0], source="staff")
            if slots
            else None
        )
        if appointment is None:
            raise DemoReminderError("to", f"{location.name} has no free time to free")
        booking.cancel(session, deps, location, appointment, by="staff")
        session.flush()
        opening = session.scalars(
            select(WaitlistOpening).where(WaitlistOpening.freed_by_id == appointment.id)
        ).one()
        texted = waitlist.offer_opening(session, deps, opening)
        starts_at = appointment.starts_at
        reason = None
        if not texted:
            reason = (
                "outside texting hours"
                if location.next_texting_time(now) != now
                else "the phone may not get another automated text today"
            )
        session.flush()
        still = session.get(WaitlistEntry, entry.id)
        offered = still is not None and still.status == "offered"
    return DemoRefill(when=when(starts_at, location.zone), offered=offered, reason=reason)
