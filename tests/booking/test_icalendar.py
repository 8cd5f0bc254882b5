"""iCalendar writing and reading, without a server: folding, escaping, what real software
(vobject, Radicale's parser) reads back, time zones on the days clocks change, and
recurrence expansion checked against python-dateutil."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import vobject
from dateutil.rrule import rrulestr

from ringback.integrations.icalendar import (
    ICalendarError,
    escape_text,
    event_to_ics,
    feed_to_ics,
    fold,
    parse_busy,
)
from ringback.ports import BusyTime, CalendarEvent

LA = ZoneInfo("America/Los_Angeles")
STAMP = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
YEAR = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """Wall-clock time in Los Angeles, as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=LA).astimezone(UTC)


def calendar(*lines: str) -> str:
    """A VCALENDAR around VEVENT lines, CRLF-terminated as a server sends it."""
    return "\r\n".join(
        ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Test//EN", *lines, "END:VCALENDAR", ""]
    )


def vevent(*lines: str, uid: str = "e") -> list[str]:
    return ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]


def starts(
    text: str, window: tuple[datetime, datetime] = YEAR, zone: str = "America/Los_Angeles"
) -> list[datetime]:
    return [b.start for b in parse_busy(text, *window, default_zone=zone)]


EVENT = CalendarEvent(
    uid="appt-7f3a@ringback",
    start=datetime(2026, 11, 24, 10, 0, tzinfo=LA),
    end=datetime(2026, 11, 24, 10, 45, tzinfo=LA),
    summary="Zoë: Lip filler, 1 syringe; follow-up",
    description="Booked by text.\nReply C to cancel, \\ or call us.",
    location="Glow Med Spa, 12 Main St",
)


# --- writing ---------------------------------------------------------------------------------


def test_an_event_is_written_exactly_so() -> None:
    assert event_to_ics(EVENT, stamp=STAMP) == (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//Ringback//Booking//EN\r\n"
        "CALSCALE:GREGORIAN\r\n"
        "BEGIN:VEVENT\r\n"
        "UID:appt-7f3a@ringback\r\n"
        "DTSTAMP:20261120T120000Z\r\n"
        "DTSTART:20261124T180000Z\r\n"
        "DTEND:20261124T184500Z\r\n"
        "SUMMARY:Zoë: Lip filler\\, 1 syringe\\; follow-up\r\n"
        "DESCRIPTION:Booked by text.\\nReply C to cancel\\, \\\\ or call us.\r\n"
        "LOCATION:Glow Med Spa\\, 12 Main St\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


def test_empty_description_and_location_are_left_out() -> None:
    text = event_to_ics(
        CalendarEvent("u1", utc(2026, 11, 24, 18), utc(2026, 11, 24, 19), "Ana: Facial"),
        stamp=STAMP,
    )
    assert "DESCRIPTION" not in text
    assert "LOCATION" not in text


def test_escaping() -> None:
    assert escape_text("a\\b;c,d\ne") == "a\\\\b\\;c\\,d\\ne"
    assert escape_text("one\r\ntwo\rthree") == "one\\ntwo\\nthree"
    assert escape_text("bell\x07 tab\tnull\x00") == "bell tab\tnull"


def test_long_lines_are_folded_at_75_octets_without_splitting_characters() -> None:
    summary = "Zoë 💉 " * 40
    text = event_to_ics(
        CalendarEvent("u1", utc(2026, 11, 24, 18), utc(2026, 11, 24, 19), summary), stamp=STAMP
    )
    assert text.endswith("\r\n")
    physical = text.encode().split(b"\r\n")[:-1]
    assert b"\n" not in b"".join(physical)
    assert max(len(line) for line in physical) <= 75
    assert sum(len(line) == 75 for line in physical) > 1  # lines are filled, not just cut
    for line in physical:
        line.decode()  # every physical line is whole UTF-8
    unfolded = text.replace("\r\n ", "")
    assert f"SUMMARY:{escape_text(summary)}\r\n" in unfolded


def test_fold_leaves_short_lines_alone_and_counts_the_leading_space() -> None:
    assert fold("SUMMARY:short") == "SUMMARY:short"
    folded = fold("X" * 75 + "Y" * 74 + "Z")
    assert folded == "X" * 75 + "\r\n " + "Y" * 74 + "\r\n Z"


def test_naive_times_and_empty_events_are_refused() -> None:
    naive = datetime(2026, 11, 24, 10, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ValueError, match="timezone-aware"):
        event_to_ics(CalendarEvent("u", naive, naive + timedelta(hours=1), "x"), stamp=STAMP)
    with pytest.raises(ValueError, match="not after start"):
        event_to_ics(CalendarEvent("u", EVENT.start, EVENT.start, "x"), stamp=STAMP)
    with pytest.raises(ValueError, match="uid"):
        event_to_ics(CalendarEvent("", EVENT.start, EVENT.end, "x"), stamp=STAMP)


def test_vobject_reads_back_exactly_what_was_written() -> None:
    long_event = CalendarEvent(
        uid=EVENT.uid,
        start=EVENT.start,
        end=EVENT.end,
        summary=EVENT.summary * 5,
        description=EVENT.description * 5,
        location=EVENT.location,
    )
    parsed = vobject.readOne(event_to_ics(long_event, stamp=STAMP), validate=True)
    (read,) = parsed.vevent_list
    assert read.uid.value == long_event.uid
    assert read.dtstart.value == long_event.start
    assert read.dtend.value == long_event.end
    assert read.dtstamp.value == STAMP
    assert read.summary.value == long_event.summary
    assert read.description.value == long_event.description
    assert read.location.value == long_event.location


def test_round_trip_through_parse_busy() -> None:
    text = event_to_ics(EVENT, stamp=STAMP)
    assert parse_busy(text, *YEAR) == [
        BusyTime(EVENT.uid, EVENT.start.astimezone(UTC), EVENT.end.astimezone(UTC))
    ]


def test_a_feed_holds_every_event_under_its_name() -> None:
    events = [
        EVENT,
        CalendarEvent("u2@ringback", utc(2026, 11, 25, 18), utc(2026, 11, 25, 19), "Ana: Facial"),
    ]
    text = feed_to_ics("Glow, Anna's bookings", events, STAMP)
    parsed = vobject.readOne(text, validate=True)
    assert parsed.x_wr_calname.value == "Glow, Anna's bookings"
    assert "X-WR-CALNAME:Glow\\, Anna's bookings\r\n" in text
    assert [e.uid.value for e in parsed.vevent_list] == [EVENT.uid, "u2@ringback"]
    assert [b.uid for b in parse_busy(text, *YEAR)] == [EVENT.uid, "u2@ringback"]
    empty = vobject.readOne(feed_to_ics("Empty", [], STAMP))
    assert not hasattr(empty, "vevent")


# --- reading times ---------------------------------------------------------------------------


def test_utc_tzid_floating_and_quoted_tzid() -> None:
    text = calendar(
        *vevent("DTSTART:20261124T180000Z", "DTEND:20261124T190000Z", uid="z"),
        *vevent(
            'DTSTART;TZID="America/New_York":20261124T090000',
            "DTEND;TZID=America/New_York:20261124T100000",
            uid="ny",
        ),
        *vevent("DTSTART:20261124T090000", "DTEND:20261124T093000", uid="floating"),
    )
    assert parse_busy(text, *YEAR, default_zone="America/Los_Angeles") == [
        BusyTime("ny", utc(2026, 11, 24, 14), utc(2026, 11, 24, 15)),
        BusyTime("floating", utc(2026, 11, 24, 17), utc(2026, 11, 24, 17, 30)),
        BusyTime("z", utc(2026, 11, 24, 18), utc(2026, 11, 24, 19)),
    ]
    assert starts(text, zone="UTC")[-1] == utc(2026, 11, 24, 18)
    assert utc(2026, 11, 24, 9) in starts(text, zone="UTC")  # floating read as UTC


def test_the_days_clocks_change_in_los_angeles() -> None:
    text = calendar(
        # 1 November 2026: 01:00-02:00 happens twice; 01:30 is the first (PDT) one.
        *vevent(
            "DTSTART;TZID=America/Los_Angeles:20261101T013000",
            "DTEND;TZID=America/Los_Angeles:20261101T030000",
            uid="fall-back",
        ),
        *vevent(
            "DTSTART;TZID=America/Los_Angeles:20261101T090000",
            "DTEND;TZID=America/Los_Angeles:20261101T100000",
            uid="after-fall-back",
        ),
        *vevent("DTSTART;VALUE=DATE:20261101", uid="all-day-25h"),
        # 8 March 2026: 02:00-03:00 does not exist; 02:30 is read with the offset before.
        *vevent(
            "DTSTART;TZID=America/Los_Angeles:20260308T013000",
            "DTEND;TZID=America/Los_Angeles:20260308T040000",
            uid="spring-forward",
        ),
        *vevent("DTSTART;TZID=America/Los_Angeles:20260308T023000", "DURATION:PT1H", uid="gap"),
        *vevent("DTSTART;VALUE=DATE:20260308", "DTEND;VALUE=DATE:20260309", uid="all-day-23h"),
        # A nominal day is a day on the wall clock; 24 hours are 24 hours.
        *vevent("DTSTART;TZID=America/Los_Angeles:20260307T120000", "DURATION:P1D", uid="p1d"),
        *vevent("DTSTART;TZID=America/Los_Angeles:20260307T120000", "DURATION:PT24H", uid="pt24h"),
    )
    busy = {
        b.uid: (b.start, b.end) for b in parse_busy(text, *YEAR, default_zone="America/Los_Angeles")
    }
    assert busy["fall-back"] == (utc(2026, 11, 1, 8, 30), utc(2026, 11, 1, 11))
    assert busy["after-fall-back"] == (utc(2026, 11, 1, 17), utc(2026, 11, 1, 18))
    assert busy["all-day-25h"] == (utc(2026, 11, 1, 7), utc(2026, 11, 2, 8))
    assert busy["spring-forward"] == (utc(2026, 3, 8, 9, 30), utc(2026, 3, 8, 11))
    assert busy["gap"] == (utc(2026, 3, 8, 10, 30), utc(2026, 3, 8, 11, 30))
    assert busy["all-day-23h"] == (utc(2026, 3, 8, 8), utc(2026, 3, 9, 7))
    assert busy["p1d"] == (utc(2026, 3, 7, 20), utc(2026, 3, 8, 19))
    assert busy["pt24h"] == (utc(2026, 3, 7, 20), utc(2026, 3, 8, 20))


def test_tzids_that_are_not_iana_names() -> None:
    text = calendar(
        "BEGIN:VTIMEZONE",
        "TZID:Custom Eastern",
        "X-LIC-LOCATION:America/New_York",
        "END:VTIMEZONE",
        *vevent(
            "DTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20261124T090000",
            "DURATION:PT1H",
            uid="mozilla",
        ),
        *vevent(
            "DTSTART;TZID=Eastern Standard Time:20261124T090000", "DURATION:PT1H", uid="windows"
        ),
        *vevent("DTSTART;TZID=Custom Eastern:20261124T090000", "DURATION:PT1H", uid="lic"),
        *vevent("DTSTART;TZID=Nowhere/Special:20261124T090000", "DURATION:PT1H", uid="unknown"),
    )
    busy = {b.uid: b.start for b in parse_busy(text, *YEAR, default_zone="America/Los_Angeles")}
    assert busy == {
        "mozilla": utc(2026, 11, 24, 14),
        "windows": utc(2026, 11, 24, 14),
        "lic": utc(2026, 11, 24, 14),
        "unknown": utc(2026, 11, 24, 17),  # the calendar's own zone
    }


def test_folded_lines_lf_endings_transparent_cancelled_and_alarms() -> None:
    text = "\n".join(
        [
            "BEGIN:VCALENDAR",
            "BEGIN:VEVENT",
            "UID:folded-",
            " uid",
            "DTSTART;TZID=America/Los_",
            "\tAngeles:20261124T090000",
            "DTEND:20261124T180000Z",
            "SUMMARY:a summary with a colon: and ; and , in it",
            "BEGIN:VALARM",
            "TRIGGER:-PT15M",
            "DURATION:PT5M",
            "REPEAT:2",
            "ACTION:DISPLAY",
            "END:VALARM",
            "END:VEVENT",
            *vevent(
                "DTSTART:20261124T100000Z",
                "DTEND:20261124T110000Z",
                "TRANSP:TRANSPARENT",
                uid="free",
            ),
            *vevent(
                "DTSTART:20261124T100000Z", "DTEND:20261124T110000Z", "STATUS:CANCELLED", uid="off"
            ),
            *vevent(
                "DTSTART:20261124T100000Z",
                "DTEND:20261124T110000Z",
                "TRANSP:OPAQUE",
                "STATUS:CONFIRMED",
                uid="on",
            ),
            "this line is not a content line",
            "END:VCALENDAR",
        ]
    )
    assert parse_busy(text, *YEAR) == [
        BusyTime("on", utc(2026, 11, 24, 10), utc(2026, 11, 24, 11)),
        BusyTime("folded-uid", utc(2026, 11, 24, 17), utc(2026, 11, 24, 18)),
    ]


def test_all_day_events() -> None:
    text = calendar(
        *vevent("DTSTART;VALUE=DATE:20261126", uid="one"),  # no end: one day
        *vevent("DTSTART;VALUE=DATE:20261201", "DTEND;VALUE=DATE:20261204", uid="three"),
        *vevent("DTSTART;VALUE=DATE:20261210", "DURATION:P2D", uid="two"),
        *vevent("DTSTART:20261215", uid="no-value-param"),  # as some servers' expand writes it
    )
    busy = {
        b.uid: (b.start, b.end) for b in parse_busy(text, *YEAR, default_zone="America/Los_Angeles")
    }
    assert busy == {
        "one": (utc(2026, 11, 26, 8), utc(2026, 11, 27, 8)),
        "three": (utc(2026, 12, 1, 8), utc(2026, 12, 4, 8)),
        "two": (utc(2026, 12, 10, 8), utc(2026, 12, 12, 8)),
        "no-value-param": (utc(2026, 12, 15, 8), utc(2026, 12, 16, 8)),
    }


def test_the_window_is_half_open_and_stretches_are_not_clipped() -> None:
    text = calendar(
        *vevent("DTSTART:20261124T080000Z", "DTEND:20261124T090000Z", uid="ends-at-start"),
        *vevent("DTSTART:20261124T083000Z", "DTEND:20261124T093000Z", uid="runs-into"),
        *vevent("DTSTART:20261124T170000Z", "DTEND:20261124T180000Z", uid="starts-at-end"),
        *vevent("DTSTART:20261124T100000Z", uid="no-length"),
    )
    window = (utc(2026, 11, 24, 9), utc(2026, 11, 24, 17))
    assert parse_busy(text, *window) == [
        BusyTime("runs-into", utc(2026, 11, 24, 8, 30), utc(2026, 11, 24, 9, 30))
    ]


def test_unreadable_values_name_the_property() -> None:
    with pytest.raises(ICalendarError, match="DTSTART: expected a DATE-TIME"):
        parse_busy(calendar(*vevent("DTSTART:tomorrow at nine")), *YEAR)
    with pytest.raises(ICalendarError, match="DTEND: '20261131T090000' is not a real"):
        parse_busy(calendar(*vevent("DTSTART:20261130T090000", "DTEND:20261131T090000")), *YEAR)
    with pytest.raises(ICalendarError, match="DURATION"):
        parse_busy(calendar(*vevent("DTSTART:20261130T090000Z", "DURATION:1 hour")), *YEAR)
    with pytest.raises(ICalendarError, match="FREQ='HOURLY' is not supported"):
        parse_busy(calendar(*vevent("DTSTART:20261130T090000Z", "RRULE:FREQ=HOURLY")), *YEAR)
    with pytest.raises(ValueError, match="default_zone"):
        parse_busy(calendar(), *YEAR, default_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="window start"):
        parse_busy(calendar(), datetime(2026, 1, 1), YEAR[1])  # noqa: DTZ001


# --- recurrence --------------------------------------------------------------------------------


def test_weekly_with_exdates_and_an_overridden_instance() -> None:
    text = calendar(
        *vevent(
            "DTSTART;TZID=America/Los_Angeles:20261102T090000",
            "DTEND;TZID=America/Los_Angeles:20261102T100000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=8",
            "EXDATE;TZID=America/Los_Angeles:20261104T090000,20261111T090000",
            "EXDATE:20261116T170000Z",
            uid="series",
        ),
        # The 18th moved to the afternoon; the 23rd was cancelled on its own.
        *vevent(
            "RECURRENCE-ID;TZID=America/Los_Angeles:20261118T090000",
            "DTSTART;TZID=America/Los_Angeles:20261118T150000",
            "DTEND;TZID=America/Los_Angeles:20261118T160000",
            uid="series",
        ),
        *vevent(
            "RECURRENCE-ID;TZID=America/Los_Angeles:20261123T090000",
            "DTSTART;TZID=America/Los_Angeles:20261123T090000",
            "DTEND;TZID=America/Los_Angeles:20261123T100000",
            "STATUS:CANCELLED",
            uid="series",
        ),
    )
    assert starts(text) == [
        local(2026, 11, 2, 9),
        local(2026, 11, 9, 9),
        local(2026, 11, 18, 15),
        local(2026, 11, 25, 9),  # COUNT=8 counts the excepted ones too
    ]


def test_daily_weekly_monthly_yearly_rules() -> None:
    def expand(dtstart: str, rule: str, *extra: str) -> list[datetime]:
        return starts(calendar(*vevent(dtstart, "DURATION:PT1H", rule, *extra)))

    ny_start = "DTSTART;TZID=America/Los_Angeles:20260105T090000"  # a Monday
    assert expand(ny_start, "RRULE:FREQ=DAILY;COUNT=3") == [
        local(2026, 1, 5, 9),
        local(2026, 1, 6, 9),
        local(2026, 1, 7, 9),
    ]
    assert expand(ny_start, "RRULE:FREQ=DAILY;INTERVAL=2;UNTIL=20260111T170000Z") == [
        local(2026, 1, 5, 9),
        local(2026, 1, 7, 9),
        local(2026, 1, 9, 9),
        local(2026, 1, 11, 9),
    ]
    assert expand(ny_start, "RRULE:FREQ=DAILY;BYDAY=SA,SU;COUNT=3") == [
        local(2026, 1, 5, 9),  # DTSTART is always the first instance
        local(2026, 1, 10, 9),
        local(2026, 1, 11, 9),
    ]
    assert expand(ny_start, "RRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,FR;COUNT=4") == [
        local(2026, 1, 5, 9),
        local(2026, 1, 9, 9),
        local(2026, 1, 19, 9),
        local(2026, 1, 23, 9),
    ]
    assert expand(ny_start, "RRULE:FREQ=MONTHLY;BYDAY=-1FR;COUNT=3")[1:] == [
        local(2026, 1, 30, 9),
        local(2026, 2, 27, 9),
    ]
    assert expand("DTSTART:20260131T170000Z", "RRULE:FREQ=MONTHLY;COUNT=4") == [
        utc(2026, 1, 31, 17),
        utc(2026, 3, 31, 17),  # no 31 February, 31 April
        utc(2026, 5, 31, 17),
        utc(2026, 7, 31, 17),
    ]
    assert expand(
        "DTSTART:20260101T170000Z", "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;COUNT=3"
    ) == [utc(2026, 1, 1, 17), utc(2026, 1, 30, 17), utc(2026, 2, 27, 17)]
    assert expand("DTSTART;VALUE=DATE:20200229", "RRULE:FREQ=YEARLY") == []  # no 29 Feb 2026
    assert expand("DTSTART;VALUE=DATE:20190704", "RRULE:FREQ=YEARLY") == [local(2026, 7, 4, 0)]
    assert expand(
        "DTSTART:20260105T170000Z", "RRULE:FREQ=WEEKLY;COUNT=3", "RDATE:20260301T170000Z"
    ) == [
        utc(2026, 1, 5, 17),
        utc(2026, 1, 12, 17),
        utc(2026, 1, 19, 17),
        utc(2026, 3, 1, 17),
    ]


def test_an_all_day_series_with_a_date_until() -> None:
    text = calendar(
        *vevent(
            "DTSTART;VALUE=DATE:20261102",
            "DTEND;VALUE=DATE:20261103",
            "RRULE:FREQ=WEEKLY;UNTIL=20261116",
            "EXDATE;VALUE=DATE:20261109",
            uid="vacation-mondays",
        )
    )
    busy = parse_busy(text, *YEAR, default_zone="America/Los_Angeles")
    assert [(b.start, b.end) for b in busy] == [
        (utc(2026, 11, 2, 8), utc(2026, 11, 3, 8)),
        (utc(2026, 11, 16, 8), utc(2026, 11, 17, 8)),
    ]


def test_a_series_from_long_ago_only_yields_the_window() -> None:
    text = calendar(*vevent("DTSTART:20100104T170000Z", "DURATION:PT30M", "RRULE:FREQ=DAILY"))
    window = (utc(2026, 11, 24, 0), utc(2026, 11, 26, 0))
    assert starts(text, window) == [utc(2026, 11, 24, 17), utc(2026, 11, 25, 17)]


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=DAILY;INTERVAL=3;COUNT=40",
        "FREQ=DAILY;BYDAY=MO,WE,FR;UNTIL=20261001T000000Z",
        "FREQ=WEEKLY;BYDAY=TU,TH;INTERVAL=2",
        "FREQ=WEEKLY;BYDAY=SU,MO;WKST=SU;INTERVAL=2;COUNT=30",
        "FREQ=WEEKLY;BYDAY=SU,MO;WKST=MO;INTERVAL=2;COUNT=30",
        "FREQ=MONTHLY;BYMONTHDAY=1,15,-1",
        "FREQ=MONTHLY;BYDAY=2TU,-1FR;COUNT=20",
        "FREQ=MONTHLY;INTERVAL=2;BYDAY=MO;BYMONTHDAY=1,2,3,4,5,6,7",
        "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1",
        "FREQ=YEARLY;BYMONTH=3,11;BYDAY=1SU",
        "FREQ=YEARLY;BYDAY=20MO",
        "FREQ=DAILY;BYMONTH=2,8;COUNT=50",
    ],
)
def test_expansion_agrees_with_dateutil(rule: str) -> None:
    dtstart = datetime(2026, 1, 6, 9, 30, tzinfo=LA)  # a Tuesday
    text = calendar(
        *vevent(
            "DTSTART;TZID=America/Los_Angeles:20260106T093000", "DURATION:PT1H", f"RRULE:{rule}"
        )
    )
    # dateutil expands an aware start on the wall clock too.
    expected = [
        moment.astimezone(UTC)
        for moment in rrulestr(rule, dtstart=dtstart).between(*YEAR, inc=True)
    ]
    if dtstart.astimezone(UTC) not in expected:
        expected.insert(0, dtstart.astimezone(UTC))  # RFC 5545: DTSTART is the first instance
        expected = expected[: -1 if "COUNT" in rule else None]
    assert starts(text) == expected


def test_dates_come_back_as_the_local_day() -> None:
    (busy,) = parse_busy(
        calendar(*vevent("DTSTART;VALUE=DATE:20261124")), *YEAR, default_zone="Asia/Tokyo"
    )
    assert busy.start == datetime.combine(
        date(2026, 11, 24), datetime.min.time(), ZoneInfo("Asia/Tokyo")
    )
