"""Which times can be booked: pure functions of the location's config and busy time.

A slot is a provider (and, where the location has rooms, a room) free for the service's
duration plus its buffer, inside both the location's opening hours and the provider's
working hours, no sooner than the lead time, on a step grid (default every 15 minutes from
the start of each opening range). Wall-clock hours are read in the location's zone for each
calendar day, so a day on which clocks change simply has one hour more or less; a start
time that does not exist that day (the spring-forward gap) is skipped.

Busy time is keyed ``provider:<id>``, ``room:<id>`` or ``location`` (busy for everyone: an
event on the location-wide calendar) and is given as UTC intervals that already include
each appointment's buffer.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from ringback.config import Location, Provider, Service, TimeRange, parse_ranges

# Offered times should be real alternatives, not 10:00, 10:15 and 10:30.
OFFER_SPACING = timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable time: aware UTC start and end, who, and which room (if rooms are used)."""

    start: datetime
    end: datetime
    provider_id: str
    room_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.start.astimezone(UTC).isoformat()}|{self.provider_id}|{self.room_id or ''}"


@dataclass(frozen=True, slots=True)
class Window:
    """A time the patient asked for (aware datetimes)."""

    start: datetime
    end: datetime


class BusyIndex:
    """Busy intervals per key, merged and sorted, answering "is [a, b) free?" by bisection."""

    def __init__(
        self,
        intervals: Iterable[tuple[str, datetime, datetime]] = (),
        allowed_starts: Mapping[str, frozenset[datetime]] | None = None,
    ) -> None:
        # The only starts an outside system that computes slots allows, per provider id.
        self._allowed = (
            {k: frozenset(s.timestamp() for s in v) for k, v in allowed_starts.items()}
            if allowed_starts is not None
            else None
        )
        raw: dict[str, list[tuple[float, float]]] = {}
        for key, start, end in intervals:
            if end > start:
                raw.setdefault(key, []).append((start.timestamp(), end.timestamp()))
        self._starts: dict[str, list[float]] = {}
        self._ends: dict[str, list[float]] = {}
        for key, items in raw.items():
            items.sort()
            starts: list[float] = []
            ends: list[float] = []
            for start_ts, end_ts in items:
                if starts and start_ts <= ends[-1]:
                    ends[-1] = max(ends[-1], end_ts)
                else:
                    starts.append(start_ts)
                    ends.append(end_ts)
            self._starts[key] = starts
            self._ends[key] = ends

    def start_allowed(self, provider_id: str, start: datetime) -> bool:
        if self._allowed is None:
            return True
        return start.timestamp() in self._allowed.get(provider_id, frozenset())

    def free(self, key: str, start: datetime, end: datetime) -> bool:
        starts = self._starts.get(key)
        if not starts:
            return True
        a, b = start.timestamp(), end.timestamp()
        i = bisect_right(starts, a) - 1
        if i >= 0 and self._ends[key][i] > a:
            return False
        return not (i + 1 < len(starts) and starts[i + 1] < b)


def working_ranges(
    location: Location, provider: Provider, day: date
) -> list[tuple[datetime, datetime]]:
    """The provider's bookable stretches on ``day`` as aware instants (opening ∩ working hours)."""
    if day.isoformat() in location.closures:
        return []
    zone = location.zone
    opening = location.opening_ranges(day.weekday())
    if provider.hours is not None:
        own = parse_ranges(provider.hours[_weekday_key(day)])
        ranges = _intersect(opening, own)
    else:
        ranges = [(r.start_minutes, r.end_minutes) for r in opening]
    out = []
    for start_minutes, end_minutes in ranges:
        out.append((_at(day, start_minutes, zone), _at(day, end_minutes, zone)))
    return out


def candidate_slots(
    location: Location,
    service: Service,
    day: date,
    busy: BusyIndex,
    not_before: datetime,
    providers: Sequence[Provider] | None = None,
) -> Iterator[Slot]:
    """Every free slot on ``day`` for ``service``, by start time then provider order."""
    step = timedelta(minutes=location.booking.step_minutes)
    duration = timedelta(minutes=service.minutes)
    blocked = duration + timedelta(minutes=service.buffer_minutes)
    rooms = [r for r in location.rooms if r.fits(service.name)]
    found: list[Slot] = []
    for provider in providers if providers is not None else bookable_providers(location, service):
        for range_start, range_end in working_ranges(location, provider, day):
            local_start = range_start.astimezone(location.zone)
            n = 0
            while True:
                wall = local_start.replace(tzinfo=None) + step * n
                n += 1
                start = _local(wall, location)
                if start is None:
                    continue  # no such wall-clock time today (spring forward)
                start = start.astimezone(UTC)  # arithmetic on real instants, not wall time
                if start + duration > range_end:
                    break
                if start < not_before:
                    continue
                busy_end = start + blocked
                if not busy.start_allowed(provider.id, start):
                    continue
                if not (
                    busy.free(f"provider:{provider.id}", start, busy_end)
                    and busy.free("location", start, start + duration)
                ):
                    continue
                room_id: str | None = None
                if rooms:
                    room = next(
                        (r for r in rooms if busy.free(f"room:{r.id}", start, busy_end)), None
                    )
                    if room is None:
                        continue
                    room_id = room.id
                found.append(Slot(start, start + duration, provider.id, room_id))
    found.sort(key=lambda s: s.start)
    yield from found


def bookable_providers(location: Location, service: Service) -> list[Provider]:
    return [p for p in location.providers if p.performs(service.name)]


def find_slots(
    location: Location,
    service: Service,
    now: datetime,
    busy: BusyIndex,
    *,
    windows: Sequence[Window] = (),
    limit: int | None = None,
    exclude: frozenset[datetime] = frozenset(),
    provider_id: str | None = None,
    spread: bool = False,
) -> list[Slot]:
    """Up to ``limit`` slots closest to what the patient asked for (the earliest if nothing).

    Slots inside a requested window come first; then the nearest to one. Offered times are
    at least :data:`OFFER_SPACING` apart where the day allows, and never a start in
    ``exclude`` (times the patient already turned down). With ``spread`` ("none of
    those"), the new times avoid the parts of the day already turned down and come from
    different days or parts of the day, so the patient gets a real choice rather than the
    same times a quarter of an hour later.
    """
    limit = limit or location.booking.offers
    providers = bookable_providers(location, service)
    if provider_id is not None:
        providers = [p for p in providers if p.id == provider_id]
    if not providers or service.consult:
        return []
    not_before = now + timedelta(minutes=location.booking.lead_minutes)
    today = now.astimezone(location.zone).date()
    last_day = today + timedelta(days=location.booking.horizon_days)
    days = _days_by_distance(today, last_day, windows, location)
    zone = location.zone
    turned_down = {_part_of_day(s, zone) for s in exclude} if spread else set()
    pool: list[tuple[float, Slot]] = []
    for index, (day, _lower_bound) in enumerate(days):
        for slot in candidate_slots(location, service, day, busy, not_before, providers):
            if slot.start in exclude or _part_of_day(slot.start, zone) in turned_down:
                continue
            pool.append((_distance(slot, windows, not_before), slot))
        chosen = _choose(pool, limit, zone if spread else None)
        next_distance = days[index + 1][1] if index + 1 < len(days) else float("inf")
        if len(chosen) == limit and max(d for d, _ in chosen) <= next_distance:
            break
    if spread and not pool:  # every other part of the day is full: the nearest will do
        return find_slots(
            location,
            service,
            now,
            busy,
            windows=windows,
            limit=limit,
            exclude=exclude,
            provider_id=provider_id,
        )
    return sorted(
        (s for _, s in _choose(pool, limit, zone if spread else None)), key=lambda s: s.start
    )


def is_bookable(
    location: Location, service: Service, slot: Slot, now: datetime, busy: BusyIndex
) -> bool:
    """Whether ``slot`` is still free and valid (checked again, under the lock, when booking)."""
    provider = location.find_provider(slot.provider_id)
    if provider is None or not provider.performs(service.name) or service.consult:
        return False
    not_before = now + timedelta(minutes=location.booking.lead_minutes)
    day = slot.start.astimezone(location.zone).date()
    if day > now.astimezone(location.zone).date() + timedelta(days=location.booking.horizon_days):
        return False
    for candidate in candidate_slots(location, service, day, busy, not_before, [provider]):
        if candidate.start == slot.start:
            if slot.room_id is None or candidate.room_id == slot.room_id:
                return True
            blocked = timedelta(minutes=service.minutes + service.buffer_minutes)
            room = location.find_room(slot.room_id)
            return (
                room is not None
                and room.fits(service.name)
                and busy.free(f"room:{room.id}", slot.start, slot.start + blocked)
            )
    return False


# --- helpers ------------------------------------------------------------------------------


def _part_of_day(moment: datetime, zone: tzinfo) -> tuple[date, int]:
    """(local day, 0 morning / 1 afternoon / 2 evening): what "none of those" turns down."""
    local = moment.astimezone(zone)
    return local.date(), 0 if local.hour < 12 else 1 if local.hour < 17 else 2


def _choose(
    pool: list[tuple[float, Slot]], limit: int, spread_in: tzinfo | None = None
) -> list[tuple[float, Slot]]:
    ordered = sorted(pool, key=lambda item: (item[0], item[1].start))
    chosen: list[tuple[float, Slot]] = []
    if spread_in is not None:  # one per day and part of day first
        parts: set[tuple[date, int]] = set()
        for item in ordered:
            part = _part_of_day(item[1].start, spread_in)
            if len(chosen) < limit and part not in parts:
                parts.add(part)
                chosen.append(item)
    for spacing in (OFFER_SPACING, timedelta(0)):
        for item in ordered:
            if len(chosen) == limit:
                return chosen
            if item in chosen:
                continue
            if all(abs(item[1].start - c[1].start) >= spacing for c in chosen) and all(
                item[1].start != c[1].start for c in chosen
            ):
                chosen.append(item)
    return chosen


def _distance(slot: Slot, windows: Sequence[Window], not_before: datetime) -> float:
    if not windows:
        return (slot.start - not_before).total_seconds()
    best = float("inf")
    for window in windows:
        if window.start <= slot.start < window.end:
            return 0.0
        gap = min(
            abs((slot.start - window.start).total_seconds()),
            abs((slot.start - window.end).total_seconds()),
        )
        best = min(best, gap)
    return best


def _days_by_distance(
    today: date, last_day: date, windows: Sequence[Window], location: Location
) -> list[tuple[date, float]]:
    """Every day in the horizon with a lower bound on how far its slots are from the wish."""
    days = [today + timedelta(days=n) for n in range((last_day - today).days + 1)]
    if not windows:
        # Earliest first: a later day's slots are at least this far from the first day.
        return [(d, max(0.0, ((d - today).days - 1) * 86400.0)) for d in days]
    zone = location.zone
    bounds = []
    for d in days:
        best = float("inf")
        for window in windows:
            first = window.start.astimezone(zone).date()
            last = window.end.astimezone(zone).date()
            if first <= d <= last:
                best = 0.0
                break
            gap_days = (first - d).days if d < first else (d - last).days
            best = min(best, max(0.0, (gap_days - 1) * 86400.0))
        bounds.append((d, best))
    bounds.sort(key=lambda item: (item[1], item[0]))
    return bounds


def _intersect(a: Sequence[TimeRange], b: Sequence[TimeRange]) -> list[tuple[int, int]]:
    out = []
    for x in a:
        for y in b:
            start, end = max(x.start_minutes, y.start_minutes), min(x.end_minutes, y.end_minutes)
            if end > start:
                out.append((start, end))
    return sorted(out)


def _at(day: date, minutes: int, zone: tzinfo) -> datetime:
    if minutes >= 1440:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=zone)


def _local(wall: datetime, location: Location) -> datetime | None:
    """The instant for a naive local wall-clock time, or None when it does not exist."""
    zone = location.zone
    aware = wall.replace(tzinfo=zone)
    back = aware.astimezone(UTC).astimezone(zone)
    if back.replace(tzinfo=None) != wall:
        return None
    return aware


def _weekday_key(day: date) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[day.weekday()]
