"""The waitlist: who wants which treatment when, and the slots cancellations free for them.

An entry names a patient, a treatment and time windows (weekdays and a time range in the
location's zone; none: any time). A cancellation (by text, staff, the booking page, the
clinic's booking system or calendar) writes a :class:`WaitlistOpening` when someone waits
for that treatment; the sweep (:mod:`ringback.conversation.waitlist`) texts it to the
matching patients. The first "yes" books it through :func:`booking.reserve` (its lock
and the partial unique index: exactly one booking per slot); :func:`filled` then closes
the opening and puts the other offered entries back to waiting.

Everything here joins the caller's transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from ringback.config import Location
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import Appointment, Patient, WaitlistEntry, WaitlistOpening

log = logging.getLogger(__name__)

STATUSES = ("waiting", "offered", "booked", "expired", "removed")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class WaitlistError(Exception):
    """A waitlist request was refused; ``problem`` names the field (a 422 or 404)."""

    def __init__(self, problem: str, status: int = 422) -> None:
        super().__init__(problem)
        self.problem = problem
        self.status = status


@dataclass(frozen=True, slots=True)
class TimeWish:
    """Weekdays (0 Monday .. 6 Sunday; empty: every day) between two local clock times."""

    days: tuple[int, ...]
    start: time
    end: time

    def to_json(self) -> dict[str, Any]:
        return {"days": list(self.days), "from": f"{self.start:%H:%M}", "to": f"{self.end:%H:%M}"}

    def fits(self, local_start: datetime, local_end: datetime) -> bool:
        if self.days and local_start.weekday() not in self.days:
            return False
        if local_start.time() < self.start:
            return False
        if self.end == time(23, 59):
            return True
        return local_end.date() == local_start.date() and local_end.time() <= self.end


def parse_windows(raw: Iterable[Any]) -> list[TimeWish]:
    """Windows as the API and the pages send them; a clear error naming the bad one."""
    wishes: list[TimeWish] = []
    for n, item in enumerate(raw):
        field = f"windows[{n}]"
        if not isinstance(item, dict):
            raise WaitlistError(f"{field}: expected an object with days, from and to")
        days_raw = item.get("days", [])
        if not isinstance(days_raw, list):
            raise WaitlistError(f"{field}.days: expected a list of weekdays")
        days: list[int] = []
        for day in days_raw:
            if isinstance(day, int) and not isinstance(day, bool) and 0 <= day <= 6:
                days.append(day)
            elif isinstance(day, str) and day[:3].casefold() in DAY_NAMES:
                days.append(DAY_NAMES.index(day[:3].casefold()))
            else:
                raise WaitlistError(f"{field}.days: expected mon..sun or 0..6, got {day!r}")
        bounds: list[time] = []
        for key, default in (("from", "00:00"), ("to", "23:59")):
            value = item.get(key, default)
            match = _CLOCK.match(value) if isinstance(value, str) else None
            if match is None:
                raise WaitlistError(f"{field}.{key}: expected HH:MM, got {value!r}")
            bounds.append(time(int(match[1]), int(match[2])))
        if bounds[0] >= bounds[1]:
            raise WaitlistError(f"{field}: 'from' must be before 'to'")
        wishes.append(TimeWish(tuple(sorted(set(days))), bounds[0], bounds[1]))
    return wishes


def wishes_from_times(location: Location, times: Sequence[tuple[str, str]]) -> list[TimeWish]:
    """The bot's ISO windows ("thursday afternoon" this week) as weekday and clock ranges,
    so a slot freed on a later Thursday afternoon matches too."""
    wishes: list[TimeWish] = []
    for start_iso, end_iso in times:
        start = datetime.fromisoformat(start_iso).astimezone(location.zone)
        end = datetime.fromisoformat(end_iso).astimezone(location.zone)
        if end - start >= timedelta(hours=23):
            wishes.append(TimeWish((start.weekday(),), time(0), time(23, 59)))
            continue
        last = end - timedelta(minutes=1) if end.time() == time(0) else end
        until = time(23, 59) if last.date() != start.date() else last.time()
        wishes.append(TimeWish((start.weekday(),), start.time(), max(until, start.time())))
    return wishes


def matches(
    location: Location, windows: Sequence[dict[str, Any]], start: datetime, end: datetime
) -> bool:
    """Whether a slot from ``start`` to ``end`` fits an entry's stored windows."""
    if not windows:
        return True
    local_start, local_end = start.astimezone(location.zone), end.astimezone(location.zone)
    return any(wish.fits(local_start, local_end) for wish in parse_windows(windows))


def add(
    session: Session,
    location: Location,
    patient: Patient,
    service_name: str,
    wishes: Sequence[TimeWish],
    now: datetime,
    *,
    source: str,
) -> WaitlistEntry:
    """Put ``patient`` on the waitlist (a waiting entry for the same treatment is updated
    rather than doubled)."""
    service = location.service_named(service_name)
    if service is None or service.consult:
        names = ", ".join(s.name for s in location.services if not s.consult)
        raise WaitlistError(f"service: expected one of {names}, got {service_name!r}")
    entry = session.scalars(
        select(WaitlistEntry).where(
            WaitlistEntry.location_id == location.id,
            WaitlistEntry.patient_id == patient.id,
            WaitlistEntry.service == service.name,
            WaitlistEntry.status.in_(("waiting", "offered")),
        )
    ).first()
    if entry is None:
        entry = WaitlistEntry(
            location_id=location.id,
            patient_id=patient.id,
            service=service.name,
            status="waiting",
            source=source,
            created_at=now,
        )
        session.add(entry)
    entry.windows = [w.to_json() for w in wishes]
    entry.expires_at = now + timedelta(days=location.waitlist_days)
    session.flush()
    log_event(log, "waitlist.added", location=location.id, entry_id=entry.id, source=source)
    return entry


def entries(
    session: Session, location_ids: Iterable[str], *, patient_id: int | None = None
) -> list[WaitlistEntry]:
    """Live entries (waiting or offered), oldest first."""
    query = select(WaitlistEntry).where(
        WaitlistEntry.location_id.in_(list(location_ids)),
        WaitlistEntry.status.in_(("waiting", "offered")),
    )
    if patient_id is not None:
        query = query.where(WaitlistEntry.patient_id == patient_id)
    return list(session.scalars(query.order_by(WaitlistEntry.created_at, WaitlistEntry.id)))


def slot_freed(
    session: Session, location: Location, appointment: Appointment, now: datetime
) -> None:
    """A live appointment was cancelled or moved: its slot is an opening when someone
    waits for that treatment and the slot is still ahead."""
    if not location.waitlist or appointment.provider_id is None or appointment.starts_at <= now:
        return
    waiting = session.scalar(
        select(
            exists().where(
                WaitlistEntry.location_id == location.id,
                WaitlistEntry.service == appointment.service,
                WaitlistEntry.status == "waiting",
                WaitlistEntry.patient_id != appointment.patient_id,
            )
        )
    )
    if not waiting:
        return
    opening = WaitlistOpening(
        location_id=location.id,
        service=appointment.service,
        provider_id=appointment.provider_id,
        room_id=appointment.room_id,
        starts_at=appointment.starts_at,
        ends_at=appointment.ends_at,
        freed_by_id=appointment.id,
        status="open",
        offered=0,
        created_at=now,
    )
    session.add(opening)
    session.flush()
    log_event(log, "waitlist.slot_freed", location=location.id, opening_id=opening.id)


def matching(
    session: Session, location: Location, opening: WaitlistOpening, now: datetime, limit: int
) -> list[WaitlistEntry]:
    """Waiting entries whose treatment and windows fit ``opening``, oldest first (not the
    patient who freed it)."""
    freed_by = session.get(Appointment, opening.freed_by_id) if opening.freed_by_id else None
    query = (
        select(WaitlistEntry)
        .where(
            WaitlistEntry.location_id == location.id,
            WaitlistEntry.service == opening.service,
            WaitlistEntry.status == "waiting",
        )
        .order_by(WaitlistEntry.created_at, WaitlistEntry.id)
        .with_for_update(skip_locked=True)
    )
    if freed_by is not None:
        query = query.where(WaitlistEntry.patient_id != freed_by.patient_id)
    found: list[WaitlistEntry] = []
    for entry in session.scalars(query):
        if entry.expires_at is not None and entry.expires_at <= now:
            continue
        if matches(location, entry.windows, opening.starts_at, opening.ends_at):
            found.append(entry)
            if len(found) >= limit:
                break
    return found


def filled(session: Session, entry_id: int, appointment: Appointment, now: datetime) -> None:
    """The entry's patient booked the slot offered: the entry is booked, its opening
    filled (with the booking's value), and the others offered it wait on."""
    entry = session.get(WaitlistEntry, entry_id, with_for_update=True)
    if entry is None:
        return
    entry.status = "booked"
    entry.appointment_id = appointment.id
    entry.settled_at = now
    if entry.opening_id is None:
        return
    opening = session.get(WaitlistOpening, entry.opening_id, with_for_update=True)
    if opening is not None and opening.appointment_id is None:
        opening.status = "filled"
        opening.appointment_id = appointment.id
        opening.value_cents = appointment.value_cents
        opening.settled_at = now
        log_event(log, "waitlist.filled", opening_id=opening.id, appointment_id=appointment.id)
    session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.opening_id == entry.opening_id, WaitlistEntry.status == "offered")
        .values(status="waiting")
    )


def keep_waiting(session: Session, entry_id: int) -> None:
    """The patient passed on the slot, or lost it to a faster reply: back to waiting."""
    session.execute(
        update(WaitlistEntry)
        .where(WaitlistEntry.id == entry_id, WaitlistEntry.status == "offered")
        .values(status="waiting")
    )


def join_from_thread(
    session: Session,
    location: Location,
    patient: Patient,
    service_name: str,
    times: Sequence[tuple[str, str]],
    now: datetime,
) -> WaitlistEntry | None:
    """The patient said yes to the bot's "join the waitlist?"."""
    try:
        return add(
            session,
            location,
            patient,
            service_name,
            wishes_from_times(location, times),
            now,
            source="bot",
        )
    except WaitlistError:
        return None


def expire(session: Session, now: datetime) -> int:
    """Entries past their time, and openings whose start passed unfilled; how many entries."""
    result = session.execute(
        update(WaitlistEntry)
        .where(
            WaitlistEntry.status.in_(("waiting", "offered")),
            WaitlistEntry.expires_at.is_not(None),
            WaitlistEntry.expires_at <= now,
        )
        .values(status="expired", settled_at=now)
    )
    lapsed = list(
        session.scalars(
            select(WaitlistOpening.id).where(
                WaitlistOpening.status.in_(("open", "offered")), WaitlistOpening.starts_at <= now
            )
        )
    )
    if lapsed:
        session.execute(
            update(WaitlistOpening)
            .where(WaitlistOpening.id.in_(lapsed))
            .values(status="lapsed", settled_at=now)
        )
        session.execute(
            update(WaitlistEntry)
            .where(WaitlistEntry.opening_id.in_(lapsed), WaitlistEntry.status == "offered")
            .values(status="waiting")
        )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as staff and the API see it."""

    id: int
    location_id: str
    patient_id: int
    service: str
    windows: list[dict[str, Any]]
    status: str
    source: str
    created_at: datetime
    expires_at: datetime | None


def view(entry: WaitlistEntry) -> EntryView:
    return EntryView(
        id=entry.id,
        location_id=entry.location_id,
        patient_id=entry.patient_id,
        service=entry.service,
        windows=list(entry.windows or []),
        status=entry.status,
        source=entry.source,
        created_at=entry.created_at,
        expires_at=entry.expires_at,
    )


def add_for_patient(
    deps: Deps,
    patient_id: int,
    service_name: str,
    raw_windows: Iterable[Any],
    can_see: Callable[[str], bool],
    *,
    source: str = "staff",
) -> EntryView:
    """Staff (a page or the API) put a patient on the waitlist; one transaction. A patient
    the caller may not see is a 404, like one that does not exist."""
    wishes = parse_windows(raw_windows)
    with transaction(deps.sessions) as session:
        patient = session.get(Patient, patient_id)
        if patient is None or patient.deleted_at is not None or not can_see(patient.location_id):
            raise WaitlistError(f"patient: no patient {patient_id}", 404)
        location = deps.locations.get(patient.location_id)
        if location is None:
            raise WaitlistError(f"patient: no patient {patient_id}", 404)
        if not location.waitlist:
            raise WaitlistError(f"service: {location.name} does not keep a waitlist", 409)
        return view(
            add(session, location, patient, service_name, wishes, deps.clock(), source=source)
        )


def remove_entry(deps: Deps, entry_id: int, can_see: Callable[[str], bool]) -> EntryView:
    """Staff take an entry off the waitlist; one transaction."""
    with transaction(deps.sessions) as session:
        entry = session.get(WaitlistEntry, entry_id, with_for_update=True)
        if entry is None or not can_see(entry.location_id):
            raise WaitlistError(f"waitlist entry: no entry {entry_id}", 404)
        if entry.status in ("waiting", "offered"):
            entry.status = "removed"
            entry.settled_at = deps.clock()
        return view(entry)


def listing(
    deps: Deps, location_ids: Iterable[str], patient_id: int | None = None
) -> list[EntryView]:
    """Live entries at ``location_ids`` (optionally one patient's), oldest first."""
    with transaction(deps.sessions) as session:
        return [view(e) for e in entries(session, location_ids, patient_id=patient_id)]
