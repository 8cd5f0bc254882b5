"""Keeping the booking: what became of the appointments that start in the period.

The cohort is every appointment (not a booking-page hold) starting on one of the report's
local days at the report's locations, however it was made. Each ends in exactly one of
five places, so the figures add up::

    appointments = cancelled + rescheduled + no_shows + kept + upcoming

*rescheduled*: cancelled and replaced by another appointment (by text or staff);
*cancelled*: cancelled and not replaced; *no_shows*: staff marked it so; *kept*: its
start passed and nobody marked it a no-show; *upcoming*: not started yet. Beside them:
*reminded* (at least one reminder sent), *reminders_sent*, *confirmed* (the patient
confirmed, and it was not cancelled) and *reminded_confirmed*.

Read straight from the appointments (an index on location and start) and their reminder
rows, so it is always current.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, and_, case, exists, func, select
from sqlalchemy.orm import Session, aliased

from ringback.config import Location
from ringback.models import (
    Appointment,
    AppointmentReminder,
    RetentionText,
    WaitlistEntry,
    WaitlistOpening,
)


@dataclass(frozen=True, slots=True)
class Retention:
    appointments: int = 0
    reminded: int = 0
    reminders_sent: int = 0
    confirmed: int = 0
    reminded_confirmed: int = 0
    cancelled: int = 0
    rescheduled: int = 0
    no_shows: int = 0
    kept: int = 0
    upcoming: int = 0

    def __add__(self, other: Retention) -> Retention:
        return Retention(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )


def _bounds(location: Location, since: date, until: date) -> tuple[datetime, datetime]:
    zone = location.zone
    start = datetime.combine(since, time(0), tzinfo=zone)
    end = datetime.combine(until + timedelta(days=1), time(0), tzinfo=zone)
    return start, end


def retention(
    session: Session, locations: Sequence[Location], since: date, until: date, now: datetime
) -> Retention:
    """The retention figures for ``locations`` over local days ``since``..``until``."""
    total = Retention()
    replacement = aliased(Appointment)
    replaced = exists().where(replacement.rescheduled_from_id == Appointment.id)
    reminded = exists().where(
        AppointmentReminder.appointment_id == Appointment.id,
        AppointmentReminder.status == "sent",
    )
    sent = (
        select(func.count(AppointmentReminder.id))
        .where(
            AppointmentReminder.appointment_id == Appointment.id,
            AppointmentReminder.status == "sent",
        )
        .correlate(Appointment)
        .scalar_subquery()
    )
    cancelled = Appointment.status == "cancelled"
    live = Appointment.status == "booked"
    confirmed = and_(live, Appointment.confirmed_at.is_not(None))

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    for location in locations:
        start, end = _bounds(location, since, until)
        row = session.execute(
            select(
                func.count(Appointment.id),
                count(reminded),
                func.coalesce(func.sum(sent), 0),
                count(confirmed),
                count(and_(confirmed, reminded)),
                count(and_(cancelled, ~replaced)),
                count(and_(cancelled, replaced)),
                count(and_(live, Appointment.attendance == "no_show")),
                count(
                    and_(
                        live,
                        Appointment.starts_at <= now,
                        func.coalesce(Appointment.attendance, "") != "no_show",
                    )
                ),
                count(and_(live, Appointment.starts_at > now)),
            ).where(
                Appointment.location_id == location.id,
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
                Appointment.status.in_(("booked", "cancelled")),
            )
        ).one()
        total += Retention(*(int(value or 0) for value in row))
    return total


# --- refilling and coming back ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Refills:
    """What the waitlist, rebooking and review texts did in the period (by when each
    happened, local days): ``slots_freed`` cancelled slots someone waited for,
    ``waitlist_offers`` texts offering them, ``refilled`` slots booked again from the
    waitlist and ``refilled_revenue_cents`` their value; ``rebook_texts`` and
    ``rebooked`` (the patient booked something after the text); ``review_requests``;
    ``waitlist_now`` patients waiting or offered a slot right now."""

    slots_freed: int = 0
    waitlist_offers: int = 0
    refilled: int = 0
    refilled_revenue_cents: int = 0
    rebook_texts: int = 0
    rebooked: int = 0
    review_requests: int = 0
    waitlist_now: int = 0

    def __add__(self, other: Refills) -> Refills:
        return Refills(
            *(getattr(self, name) + getattr(other, name) for name in self.__dataclass_fields__)
        )


def refills(session: Session, locations: Sequence[Location], since: date, until: date) -> Refills:
    """The refill figures for ``locations`` over local days ``since``..``until``."""
    total = Refills()
    for location in locations:
        start, end = _bounds(location, since, until)
        opened = session.execute(
            select(
                func.count(WaitlistOpening.id),
                func.coalesce(func.sum(WaitlistOpening.offered), 0),
            ).where(
                WaitlistOpening.location_id == location.id,
                WaitlistOpening.created_at >= start,
                WaitlistOpening.created_at < end,
            )
        ).one()
        filled = session.execute(
            select(
                func.count(WaitlistOpening.id),
                func.coalesce(func.sum(WaitlistOpening.value_cents), 0),
            ).where(
                WaitlistOpening.location_id == location.id,
                WaitlistOpening.status == "filled",
                WaitlistOpening.settled_at >= start,
                WaitlistOpening.settled_at < end,
            )
        ).one()
        sent = and_(
            RetentionText.location_id == location.id,
            RetentionText.status == "sent",
            RetentionText.created_at >= start,
            RetentionText.created_at < end,
        )
        booked_after = exists().where(
            Appointment.patient_id == RetentionText.patient_id,
            Appointment.source != "import",
            Appointment.status.in_(("booked", "cancelled")),
            Appointment.created_at >= RetentionText.created_at,
        )
        texts = session.execute(
            select(
                func.coalesce(func.sum(case((RetentionText.kind == "rebook", 1), else_=0)), 0),
                func.coalesce(
                    func.sum(
                        case((and_(RetentionText.kind == "rebook", booked_after), 1), else_=0)
                    ),
                    0,
                ),
                func.coalesce(func.sum(case((RetentionText.kind == "review", 1), else_=0)), 0),
            ).where(sent)
        ).one()
        waiting = session.scalar(
            select(func.count(WaitlistEntry.id)).where(
                WaitlistEntry.location_id == location.id,
                WaitlistEntry.status.in_(("waiting", "offered")),
            )
        )
        total += Refills(
            slots_freed=int(opened[0] or 0),
            waitlist_offers=int(opened[1] or 0),
            refilled=int(filled[0] or 0),
            refilled_revenue_cents=int(filled[1] or 0),
            rebook_texts=int(texts[0] or 0),
            rebooked=int(texts[1] or 0),
            review_requests=int(texts[2] or 0),
            waitlist_now=int(waiting or 0),
        )
    return total
