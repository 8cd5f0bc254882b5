"""iCalendar text (RFC 5545): write Ringback's booking events and feeds, read busy time.

Pure: no network and no clock (the caller passes ``stamp``). Writing produces what every
calendar app reads: CRLF line endings, lines folded at 75 octets without splitting a UTF-8
character, TEXT values escaped, times in UTC (``...Z``).

Reading (:func:`parse_busy`) is for the calendar-data a CalDAV server answers with, which
other apps wrote: times in UTC, with a ``TZID`` (an IANA name; a few well-known non-IANA
spellings are mapped), floating, or all-day dates; ``DTEND`` or ``DURATION``; folded lines;
transparent and cancelled events skipped; recurring events (``RRULE`` with ``RDATE``,
``EXDATE`` and overridden instances) expanded within the window. CalDAV servers that honour
``<C:expand>`` send single instances already, so the recurrence code is the fallback for
those that do not. Lines that are not content lines are skipped, as calendar apps do; a
date, time, duration or rule Ringback cannot read raises :class:`ICalendarError`, whose
message names the property and the value (never a summary or description).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ringback.ports import BusyTime, CalendarEvent

PRODID = "-//Ringback//Booking//EN"
CRLF = "\r\n"
LINE_OCTETS = 75
# How often a subscribed feed asks to be fetched again (RFC 7986 REFRESH-INTERVAL).
FEED_REFRESH = "PT15M"
# A recurring event is walked period by period from its first instance; this bounds the
# walk for rules that never match again (BYMONTHDAY=31;BYMONTH=2) or windows years long.
MAX_PERIODS = 100_000

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_NAME = re.compile(r"[A-Za-z0-9-]+")
_PARAM_NAME = re.compile(r"([A-Za-z0-9-]+)=")
_PARAM_VALUE = re.compile(r'[^";:,]*')
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(Z?)")
_DURATION = re.compile(
    r"([+-])?P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", re.IGNORECASE
)
_BY_DAY = re.compile(r"([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)")
_WEEKDAYS = {"MO": 0, "TU": 1, "WE": 2, "TH": 3, "FR": 4, "SA": 5, "SU": 6}
_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_UNSUPPORTED_RULE_PARTS = ("BYSECOND", "BYMINUTE", "BYHOUR", "BYYEARDAY", "BYWEEKNO")

# TZIDs that are not IANA names but common in the wild (Outlook/Exchange exports).
_WINDOWS_ZONES = {
    "hawaiian standard time": "Pacific/Honolulu",
    "alaskan standard time": "America/Anchorage",
    "pacific standard time": "America/Los_Angeles",
    "us mountain standard time": "America/Phoenix",
    "mountain standard time": "America/Denver",
    "central standard time": "America/Chicago",
    "eastern standard time": "America/New_York",
    "us eastern standard time": "America/Indiana/Indianapolis",
    "atlantic standard time": "America/Halifax",
    "newfoundland standard time": "America/St_Johns",
    "gmt standard time": "Europe/London",
    "w. europe standard time": "Europe/Berlin",
    "romance standard time": "Europe/Paris",
    "central europe standard time": "Europe/Budapest",
    "aus eastern standard time": "Australia/Sydney",
    "utc": "UTC",
}


class ICalendarError(ValueError):
    """Calendar text Ringback cannot read. The message names the property and its value."""


# --- writing ---------------------------------------------------------------------------------


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): ``\\ ; ,`` and newlines escaped, other controls dropped."""
    value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


def fold(line: str) -> str:
    """Fold a content line so no physical line is longer than 75 octets (RFC 5545 3.1).

    Continuation lines start with a space, which counts towards their 75; a UTF-8 character
    is never split between lines.
    """
    if len(line.encode()) <= LINE_OCTETS:
        return line
    parts: list[str] = []
    current: list[str] = []
    size = 0
    limit = LINE_OCTETS
    for char in line:
        octets = len(char.encode())
        if size + octets > limit:
            parts.append("".join(current))
            current, size, limit = [], 0, LINE_OCTETS - 1
        current.append(char)
        size += octets
    parts.append("".join(current))
    return (CRLF + " ").join(parts)


def utc_stamp(moment: datetime, what: str = "time") -> str:
    """``moment`` as an iCalendar UTC DATE-TIME (``20261124T180000Z``); seconds truncated."""
    _require_aware(moment, what)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event_to_ics(event: CalendarEvent, *, prodid: str = PRODID, stamp: datetime) -> str:
    """One VCALENDAR holding ``event`` as a VEVENT, ready to PUT to a CalDAV collection.

    Only the event's own fields are written (its uid, times, summary, description and
    location), with ``stamp`` as DTSTAMP. Empty description or location are left out.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{escape_text(prodid)}",
        "CALSCALE:GREGORIAN",
        *_vevent_lines(event, stamp),
        "END:VCALENDAR",
    ]
    return _join(lines)


def feed_to_ics(
    name: str, events: Iterable[CalendarEvent], stamp: datetime, *, prodid: str = PRODID
) -> str:
    """A subscription feed: one VCALENDAR named ``name`` holding every event in ``events``.

    The calendar carries its name both as ``X-WR-CALNAME`` (Apple, Google, Outlook) and as
    RFC 7986 ``NAME``, and asks subscribers to refresh every 15 minutes.
    """
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{escape_text(prodid)}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"NAME:{escape_text(name)}",
        f"X-WR-CALNAME:{escape_text(name)}",
        f"REFRESH-INTERVAL;VALUE=DURATION:{FEED_REFRESH}",
        f"X-PUBLISHED-TTL:{FEED_REFRESH}",
    ]
    for event in events:
        lines.extend(_vevent_lines(event, stamp))
    lines.append("END:VCALENDAR")
    return _join(lines)


def _vevent_lines(event: CalendarEvent, stamp: datetime) -> list[str]:
    if not event.uid or _CONTROL.search(event.uid) or "\n" in event.uid:
        raise ValueError(f"event uid: expected printable text, got {event.uid!r}")
    start = utc_stamp(event.start, f"event {event.uid} start")
    end = utc_stamp(event.end, f"event {event.uid} end")
    if event.end <= event.start:
        raise ValueError(
            f"event {event.uid}: end {event.end.isoformat()} is not after "
            f"start {event.start.isoformat()}"
        )
    lines = [
        "BEGIN:VEVENT",
        f"UID:{escape_text(event.uid)}",
        f"DTSTAMP:{utc_stamp(stamp, 'stamp')}",
        f"DTSTART:{start}",
        f"DTEND:{end}",
        f"SUMMARY:{escape_text(event.summary)}",
    ]
    if event.description:
        lines.append(f"DESCRIPTION:{escape_text(event.description)}")
    if event.location:
        lines.append(f"LOCATION:{escape_text(event.location)}")
    lines.append("END:VEVENT")
    return lines


def _join(lines: list[str]) -> str:
    return CRLF.join(fold(line) for line in lines) + CRLF


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what}: expected a timezone-aware datetime, got {moment.isoformat()}")


# --- reading: content lines and components ------------------------------------------------------


@dataclass(slots=True)
class _Property:
    name: str
    params: dict[str, list[str]]
    value: str

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None


@dataclass(slots=True)
class _Component:
    name: str
    properties: list[_Property] = field(default_factory=list)
    children: list[_Component] = field(default_factory=list)

    def first(self, name: str) -> _Property | None:
        return next((p for p in self.properties if p.name == name), None)

    def every(self, name: str) -> list[_Property]:
        return [p for p in self.properties if p.name == name]

    def walk(self, name: str) -> Iterator[_Component]:
        """Components called ``name`` below this one (not looking inside a match)."""
        for child in self.children:
            if child.name == name:
                yield child
            else:
                yield from child.walk(name)


def _unfold(text: str) -> list[str]:
    lines: list[str] = []
    for raw in re.split(r"\r\n|\n|\r", text):
        if raw[:1] in (" ", "\t"):
            if lines:
                lines[-1] += raw[1:]
        elif raw:
            lines.append(raw)
    return lines


def _parse_line(line: str) -> _Property | None:
    """``NAME;PARAM=a,"b:c":value``, or None when the line is not a content line."""
    match = _NAME.match(line)
    if match is None:
        return None
    pos, size = match.end(), len(line)
    params: dict[str, list[str]] = {}
    while pos < size and line[pos] == ";":
        param = _PARAM_NAME.match(line, pos + 1)
        if param is None:
            return None
        pos = param.end()
        values: list[str] = []
        while True:
            if pos < size and line[pos] == '"':
                close = line.find('"', pos + 1)
                if close < 0:
                    return None
                values.append(line[pos + 1 : close])
                pos = close + 1
            else:
                value = _PARAM_VALUE.match(line, pos)
                assert value is not None  # the pattern matches the empty string
                values.append(value.group())
                pos = value.end()
            if pos < size and line[pos] == ",":
                pos += 1
                continue
            break
        params[param.group(1).upper()] = values
    if pos >= size or line[pos] != ":":
        return None
    return _Property(match.group().upper(), params, line[pos + 1 :])


def _components(text: str) -> _Component:
    root = _Component("")
    stack = [root]
    for line in _unfold(text):
        prop = _parse_line(line)
        if prop is None:
            continue
        if prop.name == "BEGIN":
            component = _Component(prop.value.strip().upper())
            stack[-1].children.append(component)
            stack.append(component)
        elif prop.name == "END":
            name = prop.value.strip().upper()
            # Close the innermost open component of that name (tolerating a missing END).
            for depth in range(len(stack) - 1, 0, -1):
                if stack[depth].name == name:
                    del stack[depth:]
                    break
        else:
            stack[-1].properties.append(prop)
    return root


# --- reading: values --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _When:
    """A DATE or DATE-TIME value. ``at`` is aware: UTC, its TZID's zone, or the default zone
    (floating times, and midnight starting an all-day date)."""

    at: datetime
    all_day: bool

    @property
    def utc(self) -> datetime:
        return self.at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Length:
    """An event's length: nominal days (wall-clock, so a day across a DST change is still a
    day) plus an exact part."""

    days: int = 0
    exact: timedelta = timedelta(0)

    def end(self, start: datetime) -> datetime:
        # Aware arithmetic within one zone is wall-clock arithmetic, as RFC 5545 wants for days.
        return (start + timedelta(days=self.days)).astimezone(UTC) + self.exact


class _Zones:
    """Resolves TZIDs: IANA names, prefixed names (``/mozilla.org/.../Europe/Berlin``), the
    VTIMEZONE's X-LIC-LOCATION, a few Windows names; otherwise the default zone."""

    def __init__(self, default: tzinfo, locations: dict[str, str]) -> None:
        self.default = default
        self._locations = locations
        self._cache: dict[str, tzinfo] = {}

    def get(self, tzid: str) -> tzinfo:
        if tzid not in self._cache:
            self._cache[tzid] = self._resolve(tzid)
        return self._cache[tzid]

    def _resolve(self, tzid: str) -> tzinfo:
        name = tzid.strip()
        parts = [part for part in name.split("/") if part]
        candidates = ["/".join(parts[i:]) for i in range(len(parts))]
        if name in self._locations:
            candidates.append(self._locations[name])
        if name.lower() in _WINDOWS_ZONES:
            candidates.append(_WINDOWS_ZONES[name.lower()])
        for candidate in candidates:
            zone = _zone(candidate)
            if zone is not None:
                return zone
        return self.default


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _parse_when(prop: _Property, zones: _Zones) -> list[_When]:
    """The (comma-separated) DATE or DATE-TIME values of ``prop``."""
    value_type = (prop.param("VALUE") or "").upper()
    if value_type == "PERIOD":  # RDATE periods: the start of each is the instance
        texts = [item.split("/", 1)[0] for item in prop.value.split(",")]
    else:
        texts = prop.value.split(",")
    tzid = prop.param("TZID")
    return [_parse_one_when(prop.name, text.strip(), value_type, tzid, zones) for text in texts]


def _parse_one_when(
    name: str, text: str, value_type: str, tzid: str | None, zones: _Zones
) -> _When:
    if value_type == "DATE" or len(text) == 8:
        on = _parse_date(name, text)
        return _When(datetime(on.year, on.month, on.day, tzinfo=zones.default), all_day=True)
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise ICalendarError(f"{name}: expected a DATE-TIME like 20261124T180000Z, got {text!r}")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    if match.group(7):
        zone: tzinfo = UTC
    elif tzid:
        zone = zones.get(tzid)
    else:
        zone = zones.default
    try:
        # A leap second (:60) is read as :59.
        at = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=zone)
    except ValueError as exc:
        raise ICalendarError(f"{name}: {text!r} is not a real date and time") from exc
    return _When(at, all_day=False)


def _parse_date(name: str, text: str) -> date:
    match = _DATE.fullmatch(text)
    if match is None:
        raise ICalendarError(f"{name}: expected a DATE like 20261124, got {text!r}")
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError as exc:
        raise ICalendarError(f"{name}: {text!r} is not a real date") from exc


def _parse_duration(text: str) -> _Length:
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.group(i) for i in range(2, 7)):
        raise ICalendarError(f"DURATION: expected a duration like PT45M or P1D, got {text!r}")
    weeks, days, hours, minutes, seconds = (int(match.group(i) or 0) for i in range(2, 7))
    exact = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if match.group(1) == "-":
        return _Length(-(weeks * 7 + days), -exact)
    return _Length(weeks * 7 + days, exact)


# --- reading: recurrence rules ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    freq: str
    interval: int = 1
    count: int | None = None
    until: _When | None = None
    by_day: tuple[tuple[int, int], ...] = ()  # (ordinal, weekday); ordinal 0 means every
    by_month_day: tuple[int, ...] = ()
    by_month: tuple[int, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    week_start: int = 0


def _parse_rule(text: str, start: _When, zones: _Zones) -> _Rule:
    parts: dict[str, str] = {}
    for item in text.strip().split(";"):
        if item:
            key, _, value = item.partition("=")
            parts[key.strip().upper()] = value.strip()

    def bad(part: str) -> ICalendarError:
        return ICalendarError(f"RRULE: cannot read {part}={parts.get(part, '')!r}")

    freq = parts.get("FREQ", "").upper()
    if freq not in _FREQUENCIES:
        raise ICalendarError(f"RRULE: FREQ={freq!r} is not supported (only {_FREQUENCIES})")
    for part in _UNSUPPORTED_RULE_PARTS:
        if part in parts:
            raise ICalendarError(f"RRULE: {part} is not supported")

    def numbers(part: str, low: int, high: int) -> tuple[int, ...]:
        if part not in parts:
            return ()
        try:
            values = tuple(int(v) for v in parts[part].split(","))
        except ValueError as exc:
            raise bad(part) from exc
        if not all(low <= abs(v) <= high for v in values):
            raise bad(part)
        return values

    try:
        interval = int(parts.get("INTERVAL", "1"))
        count = int(parts["COUNT"]) if "COUNT" in parts else None
    except ValueError as exc:
        raise ICalendarError(f"RRULE: cannot read INTERVAL or COUNT in {text!r}") from exc
    if interval < 1 or (count is not None and count < 1):
        raise ICalendarError(f"RRULE: INTERVAL and COUNT must be positive, got {text!r}")
    by_day: list[tuple[int, int]] = []
    for item in filter(None, parts.get("BYDAY", "").upper().split(",")):
        match = _BY_DAY.fullmatch(item.strip())
        if match is None:
            raise bad("BYDAY")
        by_day.append((int(match.group(1) or 0), _WEEKDAYS[match.group(2)]))
    week_start = parts.get("WKST", "MO").upper()
    if week_start not in _WEEKDAYS:
        raise bad("WKST")
    until = None
    if "UNTIL" in parts:
        # A floating UNTIL is in the zone of the event's start.
        start_zones = _Zones(start.at.tzinfo or UTC, {})
        until = _parse_one_when("RRULE UNTIL", parts["UNTIL"], "", None, start_zones)
    return _Rule(
        freq=freq,
        interval=interval,
        count=count,
        until=until,
        by_day=tuple(by_day),
        by_month_day=numbers("BYMONTHDAY", 1, 31),
        by_month=numbers("BYMONTH", 1, 12),
        by_set_pos=numbers("BYSETPOS", 1, 366),
        week_start=_WEEKDAYS[week_start],
    )


def _weekday_days(first: date, last: date, by_day: tuple[tuple[int, int], ...]) -> set[date]:
    """Days in [first, last] that match BYDAY (``2TU``: the second Tuesday, ``-1FR``: the last
    Friday, ``MO``: every Monday)."""
    days: set[date] = set()
    for ordinal, weekday in by_day:
        offset = (weekday - first.weekday()) % 7
        matches: list[date] = []
        day = first + timedelta(days=offset)
        while day <= last:
            matches.append(day)
            day += timedelta(days=7)
        if ordinal == 0:
            days.update(matches)
        elif -len(matches) <= ordinal <= len(matches) and ordinal != 0:
            days.add(matches[ordinal - 1 if ordinal > 0 else ordinal])
    return days


def _month_days(year: int, month: int, rule: _Rule, default_day: int) -> set[date]:
    last = calendar.monthrange(year, month)[1]
    days: set[date] = set()
    for month_day in rule.by_month_day:
        day = month_day if month_day > 0 else last + month_day + 1
        if 1 <= day <= last:
            days.add(date(year, month, day))
    if rule.by_day:
        weekdays = _weekday_days(date(year, month, 1), date(year, month, last), rule.by_day)
        days = days & weekdays if rule.by_month_day else weekdays
    elif not rule.by_month_day and default_day <= last:
        # A rule from the 31st skips shorter months (RFC 5545: invalid dates are ignored).
        days.add(date(year, month, default_day))
    return days


def _period_days(rule: _Rule, first: date, index: int) -> list[date]:
    """The candidate days of the ``index``-th period (day, week, month, year) of ``rule``."""
    step = index * rule.interval
    if rule.freq == "DAILY":
        day = first + timedelta(days=step)
        days = {day}
        if rule.by_day and day.weekday() not in {weekday for _, weekday in rule.by_day}:
            days = set()
        if rule.by_month_day and not _month_days(day.year, day.month, rule, 0) & days:
            days = set()
    elif rule.freq == "WEEKLY":
        week = first - timedelta(days=(first.weekday() - rule.week_start) % 7)
        week += timedelta(days=7 * step)
        weekdays = {weekday for _, weekday in rule.by_day} or {first.weekday()}
        days = {week + timedelta(days=i) for i in range(7)}
        days = {day for day in days if day.weekday() in weekdays}
    elif rule.freq == "MONTHLY":
        months = first.year * 12 + first.month - 1 + step
        days = _month_days(months // 12, months % 12 + 1, rule, first.day)
    else:  # YEARLY
        year = first.year + step
        if year > date.max.year:
            return []
        if rule.by_day and not rule.by_month and not rule.by_month_day:
            days = _weekday_days(date(year, 1, 1), date(year, 12, 31), rule.by_day)
        else:
            days = set()
            for month in rule.by_month or (first.month,):
                days |= _month_days(year, month, rule, first.day)
    if rule.by_month:
        days = {day for day in days if day.month in rule.by_month}
    ordered = sorted(days)
    if rule.by_set_pos:
        ordered = sorted(
            {ordered[p - 1 if p > 0 else p] for p in rule.by_set_pos if abs(p) <= len(ordered)}
        )
    return ordered


def _period_start(rule: _Rule, first: date, index: int) -> date:
    step = index * rule.interval
    if rule.freq == "DAILY":
        return first + timedelta(days=step)
    if rule.freq == "WEEKLY":
        week = first - timedelta(days=(first.weekday() - rule.week_start) % 7)
        return week + timedelta(days=7 * step)
    if rule.freq == "MONTHLY":
        months = first.year * 12 + first.month - 1 + step
        return date(months // 12, months % 12 + 1, 1)
    return date(min(first.year + step, date.max.year), 1, 1)


def _rule_starts(start: _When, rule: _Rule, stop: datetime) -> Iterator[datetime]:
    """Instance starts of ``rule`` from ``start`` (the first instance, as RFC 5545 says)
    until COUNT, UNTIL or ``stop`` (UTC), in the start's zone."""
    first = start.at
    yield first
    produced = 1
    if rule.count is not None and produced >= rule.count:
        return
    zone = first.tzinfo
    wall = first.time()
    for index in range(MAX_PERIODS):
        try:
            period = _period_start(rule, first.date(), index)
        except (ValueError, OverflowError):
            return
        if datetime.combine(period, wall, zone) - timedelta(days=1) >= stop:
            return
        for day in _period_days(rule, first.date(), index):
            candidate = datetime.combine(day, wall, zone)
            if candidate <= first:
                continue
            if rule.until is not None and _after_until(candidate, rule.until):
                return
            if candidate.astimezone(UTC) >= stop:
                return
            yield candidate
            produced += 1
            if rule.count is not None and produced >= rule.count:
                return


def _after_until(candidate: datetime, until: _When) -> bool:
    if until.all_day:
        return candidate.date() > until.at.date()
    return candidate.astimezone(UTC) > until.utc


def _same_instance(moment: datetime, when: _When) -> bool:
    if when.all_day:
        return moment.date() == when.at.date()
    return moment.astimezone(UTC) == when.utc


# --- reading: events ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Event:
    uid: str
    start: _When
    length: _Length
    busy: bool
    rule: _Rule | None = None
    rdates: list[_When] = field(default_factory=list)
    exdates: list[_When] = field(default_factory=list)
    recurrence_id: _When | None = None


def _read_event(vevent: _Component, zones: _Zones) -> _Event | None:
    dtstart = vevent.first("DTSTART")
    if dtstart is None:
        return None
    start = _parse_when(dtstart, zones)[0]
    uid_prop = vevent.first("UID")
    uid = uid_prop.value.strip() if uid_prop else ""
    dtend = vevent.first("DTEND")
    duration = vevent.first("DURATION")
    if dtend is not None:
        end = _parse_when(dtend, zones)[0]
        if start.all_day and end.all_day:
            length = _Length(days=(end.at.date() - start.at.date()).days)
        else:
            length = _Length(exact=end.utc - start.utc)
    elif duration is not None:
        length = _parse_duration(duration.value)
    else:
        length = _Length(days=1) if start.all_day else _Length()
    if start.all_day and length.days <= 0 and length.exact <= timedelta(0):
        length = _Length(days=1)  # an all-day event ending on its start day still takes it
    transp = vevent.first("TRANSP")
    status = vevent.first("STATUS")
    busy = not (
        (transp is not None and transp.value.strip().upper() == "TRANSPARENT")
        or (status is not None and status.value.strip().upper() == "CANCELLED")
    )
    rrule = vevent.first("RRULE")
    recurrence_id = vevent.first("RECURRENCE-ID")
    return _Event(
        uid=uid,
        start=start,
        length=length,
        busy=busy,
        rule=_parse_rule(rrule.value, start, zones) if rrule is not None else None,
        rdates=[w for p in vevent.every("RDATE") for w in _parse_when(p, zones)],
        exdates=[w for p in vevent.every("EXDATE") for w in _parse_when(p, zones)],
        recurrence_id=_parse_when(recurrence_id, zones)[0] if recurrence_id else None,
    )


def _instance_starts(event: _Event, excluded: list[_When], stop: datetime) -> Iterator[datetime]:
    if event.rule is None and not event.rdates:
        yield event.start.at
        return
    if event.rule is not None:
        starts = list(_rule_starts(event.start, event.rule, stop))
    else:
        starts = [event.start.at]
    starts += [rdate.at for rdate in event.rdates if rdate.utc < stop]
    seen: set[datetime] = set()
    for moment in sorted(starts, key=lambda m: m.astimezone(UTC)):
        instant = moment.astimezone(UTC)
        if instant in seen or any(_same_instance(moment, when) for when in excluded):
            continue
        seen.add(instant)
        yield moment


def parse_busy(
    ics_text: str,
    window_start: datetime,
    window_end: datetime,
    *,
    default_zone: str = "UTC",
) -> list[BusyTime]:
    """Busy stretches of the VEVENTs in ``ics_text`` that overlap [window_start, window_end).

    Recurring events are expanded within the window. Floating times and all-day dates are
    read in ``default_zone`` (the calendar's zone, an IANA name); an all-day event is busy
    from that local midnight to the next. Transparent and cancelled events are not busy.
    Times come back in UTC, sorted by start, not clipped to the window.
    """
    _require_aware(window_start, "window start")
    _require_aware(window_end, "window end")
    zone = _zone(default_zone)
    if zone is None:
        raise ValueError(f"default_zone: expected an IANA time zone name, got {default_zone!r}")
    root = _components(ics_text)
    locations: dict[str, str] = {}
    for vtimezone in root.walk("VTIMEZONE"):
        tzid, location = vtimezone.first("TZID"), vtimezone.first("X-LIC-LOCATION")
        if tzid is not None and location is not None:
            locations[tzid.value.strip()] = location.value.strip()
    zones = _Zones(zone, locations)
    events = [e for e in (_read_event(v, zones) for v in root.walk("VEVENT")) if e is not None]

    # Instances overridden by their own VEVENT (same UID, RECURRENCE-ID) leave the series,
    # even when the override is cancelled.
    overridden: dict[str, list[_When]] = {}
    for event in events:
        if event.recurrence_id is not None:
            overridden.setdefault(event.uid, []).append(event.recurrence_id)

    low, high = window_start.astimezone(UTC), window_end.astimezone(UTC)
    busy: list[BusyTime] = []
    for event in events:
        if not event.busy:
            continue
        excluded = event.exdates
        if event.recurrence_id is None:
            excluded = excluded + overridden.get(event.uid, [])
        for moment in _instance_starts(event, excluded, high):
            start = moment.astimezone(UTC)
            end = event.length.end(moment)
            if start < high and end > low and end > start:
                busy.append(BusyTime(uid=event.uid, start=start, end=end))
    busy.sort(key=lambda b: (b.start, b.end, b.uid))
    return busy
