"""The CalDAV adapter against a real Radicale server: writes, replaces and deletes bookings,
reads busy time other calendar apps wrote (zones, all-day, recurring, transparent), and
fails the way the booking service needs (retry or not, never leaking the password)."""

from __future__ import annotations

import socket
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import vobject
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from ringback.integrations.caldav import CalDavCalendar
from ringback.integrations.icalendar import parse_busy
from ringback.ports import BusyTime, CalendarEvent, CalendarUnavailable
from tests.booking.radicale_server import (
    OTHER_PASSWORD,
    OTHER_USERNAME,
    RadicaleCalendar,
    RadicaleServer,
)
from tests.conftest import ServerThread, free_port

LA = "America/Los_Angeles"
STAMP = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
# Monday 23 November 2026, 00:00 in Los Angeles, to Wednesday 2 December 00:00.
WEEK = (datetime(2026, 11, 23, 8, 0, tzinfo=UTC), datetime(2026, 12, 2, 8, 0, tzinfo=UTC))

VTIMEZONE_LA = """BEGIN:VTIMEZONE
TZID:America/Los_Angeles
BEGIN:DAYLIGHT
TZOFFSETFROM:-0800
TZOFFSETTO:-0700
TZNAME:PDT
DTSTART:19700308T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU
END:DAYLIGHT
BEGIN:STANDARD
TZOFFSETFROM:-0700
TZOFFSETTO:-0800
TZNAME:PST
DTSTART:19701101T020000
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
END:VTIMEZONE"""


def at(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def booking(uid: str = "appt-1@ringback", start: datetime | None = None) -> CalendarEvent:
    start = start or at(24, 18)
    return CalendarEvent(
        uid=uid,
        start=start,
        end=start + timedelta(hours=1),
        summary="Maria: Botox (20 units)",
        description="Booked by text with Ringback; see the staff inbox.",
        location="Glow Med Spa, 12 Main St, Suite 3",
    )


def adapter(cal: RadicaleCalendar, client: httpx.Client | None = None) -> CalDavCalendar:
    """The adapter as the booking service opens it, for a calendar kept in Los Angeles."""
    return CalDavCalendar(
        cal.url,
        cal.username,
        cal.password,
        default_zone=LA,
        clock=lambda: STAMP,
        timeout=5.0,
        client=client,
    )


def put_raw(cal: RadicaleCalendar, name: str, *vevents: str) -> None:
    """Write an event the way another calendar app would: its own text, its own zone."""
    body = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//Other App//EN",
            VTIMEZONE_LA.replace("\n", "\r\n"),
            *(v.strip().replace("\n", "\r\n") for v in vevents),
            "END:VCALENDAR",
            "",
        ]
    )
    with cal.client() as client:
        response = client.put(
            cal.url + name, content=body.encode(), headers={"Content-Type": "text/calendar"}
        )
    assert response.status_code in (201, 204), response.text


def raw_busy(cal: RadicaleCalendar, start: datetime, end: datetime) -> list[BusyTime]:
    """Busy time from the stored text (every item, unexpanded), expanded by parse_busy."""
    query = (
        '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
        "<D:prop><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>'
    )
    with cal.client() as client:
        response = client.request("REPORT", cal.url, headers={"Depth": "1"}, content=query)
    assert response.status_code == 207
    root = ET.fromstring(response.content)  # noqa: S314 - our own test server
    found: list[BusyTime] = []
    for data in root.iter("{urn:ietf:params:xml:ns:caldav}calendar-data"):
        assert "RRULE" in (data.text or "") or "lunch" not in (data.text or "")
        found += parse_busy(data.text or "", start, end, default_zone=LA)
    return sorted(found, key=lambda b: (b.start, b.end, b.uid))


# --- writing ---------------------------------------------------------------------------------


def test_a_booking_put_is_read_back_as_busy(radicale: RadicaleCalendar) -> None:
    calendar = adapter(radicale)
    calendar.put_event(booking())
    assert calendar.busy(*WEEK) == [BusyTime("appt-1@ringback", at(24, 18), at(24, 19))]


def test_putting_the_same_uid_again_replaces_the_event(radicale: RadicaleCalendar) -> None:
    calendar = adapter(radicale)
    calendar.put_event(booking())
    calendar.put_event(booking(start=at(25, 21)))  # rescheduled
    calendar.put_event(booking(start=at(25, 21)))  # and the retry queue wrote it twice
    assert calendar.busy(*WEEK) == [BusyTime("appt-1@ringback", at(25, 21), at(25, 22))]


def test_delete_removes_the_event_and_a_missing_one_is_fine(radicale: RadicaleCalendar) -> None:
    calendar = adapter(radicale)
    calendar.put_event(booking("appt-1@ringback"))
    calendar.put_event(booking("appt-2@ringback", start=at(26, 18)))
    calendar.delete_event("appt-1@ringback")
    calendar.delete_event("appt-1@ringback")  # already gone
    calendar.delete_event("never-written@ringback")
    assert [b.uid for b in calendar.busy(*WEEK)] == ["appt-2@ringback"]


def test_the_stored_event_holds_only_what_we_put(radicale: RadicaleCalendar) -> None:
    calendar = adapter(radicale)
    event = booking()
    calendar.put_event(event)
    with radicale.client() as client:
        response = client.get(calendar.event_url(event.uid))
    assert response.status_code == 200
    stored = vobject.readOne(response.text)
    assert {line.name for line in stored.lines()} == {"VERSION", "PRODID", "CALSCALE"}
    (vevent,) = stored.vevent_list
    assert {line.name for line in vevent.lines()} == {
        "UID",
        "DTSTAMP",
        "DTSTART",
        "DTEND",
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
    }
    assert vevent.uid.value == event.uid
    assert vevent.dtstart.value == event.start
    assert vevent.dtend.value == event.end
    assert vevent.dtstamp.value == STAMP
    assert vevent.summary.value == event.summary
    assert vevent.description.value == event.description
    assert vevent.location.value == event.location
    assert list(vevent.components()) == []  # no alarms, nothing else


def test_uids_that_are_not_plain_names_get_a_safe_resource_name(
    radicale: RadicaleCalendar,
) -> None:
    calendar = adapter(radicale)
    uid = "appt/42 für Zoë?x=1"
    assert calendar.event_url(uid).startswith(radicale.url + "ringback-")
    calendar.put_event(booking(uid))
    assert [b.uid for b in calendar.busy(*WEEK)] == [uid]
    calendar.delete_event(uid)
    assert calendar.busy(*WEEK) == []


def test_check_confirms_a_calendar_of_events(radicale: RadicaleCalendar) -> None:
    info = adapter(radicale).check()
    assert info.url == radicale.url
    assert info.display_name == "Ringback test"
    assert info.components == ("VEVENT",)


def test_credentials_in_the_url_are_used_and_dropped(radicale: RadicaleCalendar) -> None:
    host = radicale.url.removeprefix("http://")
    password = radicale.password.replace(" ", "%20")
    calendar = CalDavCalendar(f"http://{radicale.username}:{password}@{host}", None, None)
    assert calendar.url == radicale.url
    assert radicale.password not in repr(calendar)
    calendar.put_event(booking())
    assert len(calendar.busy(*WEEK)) == 1


def test_a_collection_url_without_the_trailing_slash_works(radicale: RadicaleCalendar) -> None:
    calendar = CalDavCalendar(radicale.url.rstrip("/"), radicale.username, radicale.password)
    calendar.put_event(booking())
    assert len(calendar.busy(*WEEK)) == 1


# --- reading what other apps wrote --------------------------------------------------------------


def test_busy_reads_zones_all_day_recurring_and_skips_free_time(
    radicale: RadicaleCalendar,
) -> None:
    calendar = adapter(radicale)
    calendar.put_event(booking("ours@ringback"))
    put_raw(
        radicale,
        "consult.ics",
        """BEGIN:VEVENT
UID:consult
DTSTAMP:20261101T000000Z
DTSTART;TZID=America/Los_Angeles:20261124T090000
DTEND;TZID=America/Los_Angeles:20261124T100000
SUMMARY:Consult
END:VEVENT""",
    )
    put_raw(
        radicale,
        "thanksgiving.ics",
        """BEGIN:VEVENT
UID:thanksgiving
DTSTAMP:20261101T000000Z
DTSTART;VALUE=DATE:20261126
DTEND;VALUE=DATE:20261127
SUMMARY:Closed
END:VEVENT""",
    )
    put_raw(
        radicale,
        "lunch.ics",
        """BEGIN:VEVENT
UID:lunch
DTSTAMP:20261101T000000Z
DTSTART;TZID=America/Los_Angeles:20261103T120000
DTEND;TZID=America/Los_Angeles:20261103T123000
RRULE:FREQ=WEEKLY;BYDAY=TU,TH
EXDATE;TZID=America/Los_Angeles:20261124T120000
SUMMARY:Lunch
END:VEVENT""",
    )
    put_raw(
        radicale,
        "free.ics",
        """BEGIN:VEVENT
UID:free
DTSTAMP:20261101T000000Z
DTSTART:20261125T100000Z
DTEND:20261125T110000Z
TRANSP:TRANSPARENT
SUMMARY:Reminder only
END:VEVENT""",
    )
    put_raw(
        radicale,
        "cancelled.ics",
        """BEGIN:VEVENT
UID:cancelled
DTSTAMP:20261101T000000Z
DTSTART:20261125T110000Z
DTEND:20261125T120000Z
STATUS:CANCELLED
SUMMARY:Called off
END:VEVENT""",
    )
    put_raw(
        radicale,
        "floating.ics",
        """BEGIN:VEVENT
UID:floating
DTSTAMP:20261101T000000Z
DTSTART:20261125T090000
DURATION:PT30M
SUMMARY:Team huddle
END:VEVENT""",
    )
    put_raw(
        radicale,
        "later.ics",
        """BEGIN:VEVENT
UID:later
DTSTAMP:20261101T000000Z
DTSTART:20261210T180000Z
DTEND:20261210T190000Z
SUMMARY:Outside the window
END:VEVENT""",
    )
    expected = [
        BusyTime("consult", at(24, 17), at(24, 18)),  # 09:00 PST
        BusyTime("ours@ringback", at(24, 18), at(24, 19)),
        BusyTime("floating", at(25, 17), at(25, 17, 30)),  # 09:00 in the calendar's zone
        BusyTime("thanksgiving", at(26, 8), at(27, 8)),  # the whole day in Los Angeles
        BusyTime("lunch", at(26, 20), at(26, 20, 30)),  # Tuesday the 24th is excepted
        BusyTime("lunch", at(1, 20, month=12), at(1, 20, 30, month=12)),
    ]
    assert calendar.busy(*WEEK) == expected
    # Radicale expanded the series; parse_busy expanding the stored text agrees.
    assert raw_busy(radicale, *WEEK) == expected


def test_a_weekly_series_keeps_its_local_time_across_the_clock_change(
    radicale: RadicaleCalendar,
) -> None:
    put_raw(
        radicale,
        "standup.ics",
        """BEGIN:VEVENT
UID:standup
DTSTAMP:20261001T000000Z
DTSTART;TZID=America/Los_Angeles:20261019T090000
DTEND;TZID=America/Los_Angeles:20261019T091500
RRULE:FREQ=WEEKLY;COUNT=5
END:VEVENT""",
    )
    window = (at(18, 0, month=10), at(30, 0))
    starts = [b.start for b in adapter(radicale).busy(*window)]
    # 09:00 PDT is 16:00 UTC; after 1 November, 09:00 PST is 17:00 UTC.
    assert starts == [
        at(19, 16, month=10),
        at(26, 16, month=10),
        at(2, 17),
        at(9, 17),
        at(16, 17),
    ]
    assert [b.start for b in raw_busy(radicale, *window)] == starts


class RefusesExpand(httpx.HTTPTransport):
    """Between us and Radicale: answers 501 to a query that asks for <C:expand>, like a
    server without expansion, and forwards everything else."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "REPORT" and b"expand" in request.read():
            self.refused += 1
            return httpx.Response(501)
        return super().handle_request(request)


def test_a_server_that_will_not_expand_gets_the_series_expanded_here(
    radicale: RadicaleCalendar,
) -> None:
    put_raw(
        radicale,
        "lunch.ics",
        """BEGIN:VEVENT
UID:lunch
DTSTAMP:20261101T000000Z
DTSTART;TZID=America/Los_Angeles:20261103T120000
DTEND;TZID=America/Los_Angeles:20261103T123000
RRULE:FREQ=WEEKLY;BYDAY=TU,TH
EXDATE;TZID=America/Los_Angeles:20261124T120000
END:VEVENT""",
    )
    transport = RefusesExpand()
    with httpx.Client(transport=transport) as client:
        busy = adapter(radicale, client=client).busy(*WEEK)
    assert transport.refused == 1
    assert [b.start for b in busy] == [at(26, 20), at(1, 20, month=12)]


class Moved(httpx.HTTPTransport):
    """In front of Radicale: ``/old/...`` has moved (308) to the same path under ``/anna/``."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/old/"):
            new = request.url.copy_with(path="/anna/" + request.url.path.removeprefix("/old/"))
            return httpx.Response(308, headers={"Location": str(new)})
        return super().handle_request(request)


def test_redirects_are_followed_with_the_method_and_login_kept(
    radicale: RadicaleCalendar,
) -> None:
    old_url = radicale.url.replace("/anna/", "/old/")
    with httpx.Client(transport=Moved()) as client:
        calendar = CalDavCalendar(old_url, radicale.username, radicale.password, client=client)
        calendar.put_event(booking())
        assert len(calendar.busy(*WEEK)) == 1
        calendar.delete_event(booking().uid)
        assert calendar.busy(*WEEK) == []


def test_a_redirect_to_another_host_gets_no_password_and_says_where(
    radicale: RadicaleCalendar,
) -> None:
    async def moved(request: Request) -> RedirectResponse:
        return RedirectResponse(radicale.url + request.path_params["rest"], status_code=308)

    app = Starlette(routes=[Route("/old/{rest:path}", moved, methods=["PROPFIND"])])
    port = free_port()
    with ServerThread(app, port):
        calendar = CalDavCalendar(
            f"http://127.0.0.1:{port}/old/", radicale.username, radicale.password
        )
        with pytest.raises(CalendarUnavailable) as caught:
            calendar.put_event(booking())
    assert caught.value.retry is False
    assert caught.value.detail == (
        f"calendar refused the login (HTTP 401) after a redirect to {radicale.url}; "
        "set the calendar URL to that"
    )


# --- failures ----------------------------------------------------------------------------------


def test_a_wrong_password_is_not_retried_and_not_shown(radicale: RadicaleCalendar) -> None:
    calendar = CalDavCalendar(radicale.url, radicale.username, "wrong-secret-123")
    for attempt in (lambda: calendar.put_event(booking()), lambda: calendar.busy(*WEEK)):
        with pytest.raises(CalendarUnavailable) as caught:
            attempt()
        assert caught.value.retry is False
        assert caught.value.detail == "calendar refused the login (HTTP 401)"
        assert "wrong-secret-123" not in str(caught.value)


def test_someone_elses_calendar_is_refused(radicale: RadicaleCalendar) -> None:
    calendar = CalDavCalendar(radicale.url, OTHER_USERNAME, OTHER_PASSWORD)
    with pytest.raises(CalendarUnavailable) as caught:
        calendar.put_event(booking())
    assert caught.value.retry is False
    assert "refused the login" in caught.value.detail


@pytest.mark.parametrize("where", ["address book", "user home", "missing collection"])
def test_a_url_that_is_not_a_calendar_is_not_retried(
    radicale_server: RadicaleServer, radicale: RadicaleCalendar, where: str
) -> None:
    url = {
        "address book": radicale_server.new_address_book(),
        "user home": f"{radicale_server.base_url}/{radicale.username}/",
        "missing collection": f"{radicale_server.base_url}/{radicale.username}/nope/",
    }[where]
    attempts: dict[str, Callable[[CalDavCalendar], object]] = {
        "check": lambda calendar: calendar.check(),
        "put_event": lambda calendar: calendar.put_event(booking()),
        "busy": lambda calendar: calendar.busy(*WEEK),
    }
    for attempt, call in attempts.items():
        calendar = CalDavCalendar(url, radicale.username, radicale.password)
        with pytest.raises(CalendarUnavailable) as caught:
            call(calendar)
        assert caught.value.retry is False, attempt
        assert caught.value.detail.startswith("not a calendar"), caught.value.detail


def test_a_calendar_of_tasks_is_not_a_calendar_of_events(radicale_server: RadicaleServer) -> None:
    tasks = radicale_server.new_calendar(component="VTODO")
    with pytest.raises(CalendarUnavailable) as caught:
        adapter(tasks).put_event(booking())
    assert (caught.value.retry, caught.value.detail) == (
        False,
        "calendar holds no events, only VTODO",
    )


def test_an_event_another_app_copied_under_our_uid_is_reported(
    radicale: RadicaleCalendar,
) -> None:
    put_raw(
        radicale,
        "copied.ics",
        """BEGIN:VEVENT
UID:appt-1@ringback
DTSTAMP:20261101T000000Z
DTSTART:20261124T180000Z
DURATION:PT1H
END:VEVENT""",
    )
    with pytest.raises(CalendarUnavailable) as caught:
        adapter(radicale).put_event(booking("appt-1@ringback"))
    assert (caught.value.retry, caught.value.detail) == (
        False,
        "calendar refused the event: HTTP 409 (no-uid-conflict)",
    )


def test_a_stopped_server_is_retried_later(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RadicaleServer(tmp_path_factory.mktemp("radicale-stopped"))
    try:
        server.start()
        cal = server.new_calendar()
        calendar = adapter(cal)
        calendar.put_event(booking())
    finally:
        server.stop()
    for attempt in (
        lambda: calendar.put_event(booking()),
        lambda: calendar.delete_event("appt-1@ringback"),
        lambda: calendar.busy(*WEEK),
    ):
        with pytest.raises(CalendarUnavailable) as caught:
            attempt()
        assert caught.value.retry is True
        assert caught.value.detail == "calendar unreachable: could not connect"


def test_nothing_listening_is_retried_later() -> None:
    calendar = CalDavCalendar(f"http://127.0.0.1:{free_port()}/anna/cal/", "anna", "pw")
    with pytest.raises(CalendarUnavailable) as caught:
        calendar.put_event(booking())
    assert caught.value.retry is True
    assert caught.value.detail == "calendar unreachable: could not connect"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        held: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.05)
            while not stop.is_set():
                try:
                    held.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield int(listener.getsockname()[1])
        stop.set()
        thread.join()
        for conn in held:
            conn.close()


def test_a_server_that_does_not_answer_times_out_and_is_retried(silent_port: int) -> None:
    calendar = CalDavCalendar(
        f"http://127.0.0.1:{silent_port}/anna/cal/", "anna", "pw", timeout=0.3
    )
    with pytest.raises(CalendarUnavailable) as caught:
        calendar.busy(*WEEK)
    assert caught.value.retry is True
    assert caught.value.detail == "calendar unreachable: timed out"


@pytest.mark.parametrize(
    ("status", "retry", "detail"),
    [
        (429, True, "calendar unavailable: HTTP 429"),
        (500, True, "calendar unavailable: HTTP 500"),
        (503, True, "calendar unavailable: HTTP 503"),
        (403, False, "calendar refused the login (HTTP 403)"),
        (405, False, "not a calendar (HTTP 405)"),
        (413, False, "calendar refused the event: HTTP 413"),
    ],
)
def test_answers_map_to_retry_or_not(status: int, retry: bool, detail: str) -> None:
    """Status handling alone (Radicale will not answer 429 or 503 on demand)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "PROPFIND":  # the calendar check passes
            return httpx.Response(
                207,
                content=b'<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">'
                b"<d:response><d:href>/cal/</d:href><d:propstat><d:prop><d:resourcetype>"
                b"<d:collection/><c:calendar/></d:resourcetype></d:prop>"
                b"<d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>",
            )
        return httpx.Response(status, text="<html>busy, password=hunter2</html>")

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        calendar = CalDavCalendar("https://cal.example/cal/", "anna", "hunter2", client=client)
        with pytest.raises(CalendarUnavailable) as caught:
            calendar.put_event(booking())
    assert (caught.value.retry, caught.value.detail) == (retry, detail)
