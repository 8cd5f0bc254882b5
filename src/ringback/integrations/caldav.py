"""A CalDAV calendar collection (RFC 4791) as Ringback's :class:`~ringback.ports.Calendar`.

Google, iCloud, Nextcloud, Fastmail, Radicale and the rest all speak the same few requests:

* ``put_event``: ``PUT {collection}/{uid}.ics`` with the event as iCalendar; create or
  replace, so writing a booking again (a retry, a reschedule) never adds a second event.
* ``delete_event``: ``DELETE`` it; an event that is already gone is fine.
* ``busy``: ``REPORT`` ``calendar-query`` (Depth 1) for VEVENTs in the window, asking the
  server to expand recurring events (``<C:expand>``, which Radicale, Nextcloud and iCloud
  honour); a server that ignores it sends the series instead and
  :func:`~ringback.integrations.icalendar.parse_busy` expands it. A server that refuses
  the expand element is asked again without it.
* ``check``: ``PROPFIND`` (Depth 0) to confirm the URL is a calendar that holds events, for
  ``ringback check-config`` and the staff settings page. The first write or read of each
  instance runs it too: some servers take an event into any collection (Radicale into the
  user's home) or answer a query on an address book with nothing, which would lose a
  booking or hide busy time without a word.

Failures raise :class:`~ringback.ports.CalendarUnavailable`: ``retry=True`` when trying
later may work (no connection, timeout, HTTP 429 or 5xx), ``retry=False`` when it cannot
(login refused, not a calendar, the server rejected the event). Its ``detail`` names what
happened and never holds the password or the event.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from ringback.integrations.icalendar import ICalendarError, event_to_ics, parse_busy, utc_stamp
from ringback.ports import BusyTime, CalendarEvent, CalendarUnavailable

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
USER_AGENT = "Ringback-CalDAV/1"
ICS_TYPE = "text/calendar; charset=utf-8"
XML_TYPE = "application/xml; charset=utf-8"
# UIDs made of these characters name their own resource; others are hashed, since servers
# treat ``/``, ``%`` and friends in a resource name differently.
_PLAIN_UID = re.compile(r"[A-Za-z0-9][A-Za-z0-9@._-]{0,199}")
# Documents with a DTD are refused before parsing: no entity expansion, no external entities.
_DTD = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def _tag(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


@dataclass(frozen=True, slots=True)
class CalendarInfo:
    """What :meth:`CalDavCalendar.check` found: the collection's name and what it holds."""

    url: str
    display_name: str | None
    # The component types the calendar accepts (VEVENT, VTODO ...); empty if not said.
    components: tuple[str, ...]


class CalDavCalendar:
    """One CalDAV calendar collection, reached with HTTP basic auth when a username is given.

    ``url`` is the collection (credentials in it are used and then dropped from it).
    ``default_zone`` is the calendar's zone, for floating times and all-day events other
    apps wrote. ``client`` lets the caller share a connection pool; this class then does
    not close it. ``clock`` stamps the events written (DTSTAMP).
    """

    def __init__(
        self,
        url: str,
        username: str | None,
        password: str | None,
        *,
        timeout: float = 10.0,
        default_zone: str = "UTC",
        client: httpx.Client | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError("calendar url: expected an http(s) URL of a CalDAV calendar") from exc
        if username is None and parsed.username:
            username, password = parsed.username, parsed.password
        parsed = parsed.copy_with(userinfo=b"")
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(
                f"calendar url: expected an http(s) URL of a CalDAV calendar, got {str(parsed)!r}"
            )
        if not parsed.path.endswith("/"):
            parsed = parsed.copy_with(path=parsed.path + "/")
        parsed = parsed.copy_with(fragment=None)
        try:
            ZoneInfo(default_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"default_zone: expected an IANA time zone name, got {default_zone!r}"
            ) from exc
        self._base = parsed
        self.url = str(parsed)
        self.default_zone = default_zone
        self._auth = httpx.BasicAuth(username, password or "") if username is not None else None
        self._timeout = httpx.Timeout(timeout)
        self._own_client = client is None
        self._client = client if client is not None else httpx.Client()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._verified = False

    def __repr__(self) -> str:
        return f"CalDavCalendar({self.url!r})"

    # --- the Calendar port ----------------------------------------------------------------

    def put_event(self, event: CalendarEvent) -> None:
        """Create or replace ``event`` (``PUT`` its resource); raise CalendarUnavailable."""
        body = event_to_ics(event, stamp=self._clock()).encode()
        self._ensure_calendar()
        response = self._request(
            "PUT", self.event_url(event.uid), content=body, headers={"Content-Type": ICS_TYPE}
        )
        if response.status_code not in (200, 201, 204):
            raise _failure(response, refused="calendar refused the event")

    def delete_event(self, uid: str) -> None:
        """Remove the event; 404 or 410 (already gone) is not an error."""
        response = self._request("DELETE", self.event_url(uid))
        if response.status_code not in (200, 202, 204, 404, 410):
            raise _failure(response, refused="calendar refused to delete the event")

    def busy(self, start: datetime, end: datetime) -> list[BusyTime]:
        """Busy stretches overlapping [start, end), recurring events expanded, sorted."""
        low, high = utc_stamp(start, "busy start"), utc_stamp(end, "busy end")
        if end <= start:
            return []
        self._ensure_calendar()
        response = self._report(_calendar_query(low, high, expand=True))
        if response.status_code in (400, 501) or (
            response.status_code == 403 and b"expand" in response.content
        ):
            # This server will not expand recurrences; ask for the series and expand here.
            response = self._report(_calendar_query(low, high, expand=False))
        if response.status_code != 207:
            raise _failure(response, refused="calendar refused the busy-time query")
        busy: list[BusyTime] = []
        for text in _calendar_data(_multistatus(response)):
            try:
                busy.extend(parse_busy(text, start, end, default_zone=self.default_zone))
            except ICalendarError as exc:
                raise CalendarUnavailable(
                    f"calendar holds an event Ringback cannot read: {exc}", retry=False
                ) from exc
        busy.sort(key=lambda b: (b.start, b.end, b.uid))
        return busy

    # --- diagnostics ----------------------------------------------------------------------

    def check(self) -> CalendarInfo:
        """Confirm the URL is a calendar collection that holds events (``PROPFIND``, Depth 0).

        Raises :class:`CalendarUnavailable` saying why not (login refused, not a calendar,
        a calendar of tasks only, unreachable).
        """
        response = self._request(
            "PROPFIND",
            self.url,
            content=_PROPFIND.encode(),
            headers={"Depth": "0", "Content-Type": XML_TYPE},
        )
        if response.status_code != 207:
            raise _failure(response, refused="calendar refused the check")
        root = _multistatus(response)
        props = next(_found_props(root), None)
        if props is None:
            raise CalendarUnavailable("not a calendar: the URL has no properties", retry=False)
        resource_type = props.find(_tag(DAV, "resourcetype"))
        if resource_type is None or resource_type.find(_tag(CALDAV, "calendar")) is None:
            raise CalendarUnavailable(
                "not a calendar: the URL is not a CalDAV calendar collection", retry=False
            )
        name = props.findtext(_tag(DAV, "displayname")) or None
        components = tuple(
            (comp.get("name") or "").upper()
            for comp in props.iter(_tag(CALDAV, "comp"))
            if comp.get("name")
        )
        if components and "VEVENT" not in components:
            raise CalendarUnavailable(
                f"calendar holds no events, only {', '.join(components)}", retry=False
            )
        self._verified = True
        return CalendarInfo(url=self.url, display_name=name, components=components)

    def _ensure_calendar(self) -> None:
        # Some servers accept events into any collection, and answer a busy-time query on
        # an address book with nothing at all; so the first write or read checks the URL
        # once, rather than lose bookings or miss busy time without a word.
        if not self._verified:
            self.check()

    # --- plumbing -------------------------------------------------------------------------

    def event_url(self, uid: str) -> str:
        """The resource ``uid`` is stored at in this collection."""
        if _PLAIN_UID.fullmatch(uid):
            name = f"{uid}.ics"
        else:
            name = f"ringback-{hashlib.sha256(uid.encode()).hexdigest()[:40]}.ics"
        return str(self._base.copy_with(path=self._base.path + name))

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def __enter__(self) -> CalDavCalendar:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _report(self, body: str) -> httpx.Response:
        return self._request(
            "REPORT",
            self.url,
            content=body.encode(),
            headers={"Depth": "1", "Content-Type": XML_TYPE},
        )

    def _request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        try:
            return self._client.request(
                method,
                url,
                content=content,
                headers=all_headers,
                auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
                follow_redirects=True,
            )
        except httpx.TimeoutException as exc:
            raise CalendarUnavailable("calendar unreachable: timed out") from exc
        except httpx.ConnectError as exc:
            raise CalendarUnavailable("calendar unreachable: could not connect") from exc
        except httpx.TooManyRedirects as exc:
            raise CalendarUnavailable(
                "not a calendar: the URL redirects too many times", retry=False
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise CalendarUnavailable(
                "not a calendar: redirected to a URL that is not http(s)", retry=False
            ) from exc
        except httpx.TransportError as exc:
            raise CalendarUnavailable(
                f"calendar unreachable: {type(exc).__name__} (connection dropped)"
            ) from exc


# --- requests and answers -------------------------------------------------------------------

_PROPFIND = (
    '<?xml version="1.0" encoding="utf-8"?>'
    f'<D:propfind xmlns:D="{DAV}" xmlns:C="{CALDAV}"><D:prop>'
    "<D:resourcetype/><D:displayname/><C:supported-calendar-component-set/>"
    "</D:prop></D:propfind>"
)


def _calendar_query(start: str, end: str, *, expand: bool) -> str:
    expand_element = f'<C:expand start="{start}" end="{end}"/>' if expand else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<C:calendar-query xmlns:D="{DAV}" xmlns:C="{CALDAV}">'
        f"<D:prop><D:getetag/><C:calendar-data>{expand_element}</C:calendar-data></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{start}" end="{end}"/>'
        "</C:comp-filter></C:comp-filter></C:filter>"
        "</C:calendar-query>"
    )


def _failure(response: httpx.Response, *, refused: str) -> CalendarUnavailable:
    status = response.status_code
    if status in (401, 403):
        moved = ""
        if response.history and response.url.netloc != response.history[0].url.netloc:
            # Credentials are not sent on to another host (the HTTP client's rule, and ours).
            where = response.url.copy_with(userinfo=b"", query=None, fragment=None)
            moved = f" after a redirect to {where}; set the calendar URL to that"
        return CalendarUnavailable(
            f"calendar refused the login (HTTP {status}){moved}", retry=False
        )
    if status in (404, 405):
        return CalendarUnavailable(f"not a calendar (HTTP {status})", retry=False)
    condition = _precondition(response)
    if status == 409 and condition is None:
        # RFC 4918: a PUT whose parent collection does not exist is a 409.
        return CalendarUnavailable("not a calendar (HTTP 409: no such collection)", retry=False)
    if status in (408, 425, 429) or status >= 500:
        return CalendarUnavailable(f"calendar unavailable: HTTP {status}")
    if 200 <= status < 300:
        return CalendarUnavailable(
            f"not a calendar: HTTP {status} instead of a CalDAV answer", retry=False
        )
    suffix = f" ({condition})" if condition else ""
    return CalendarUnavailable(f"{refused}: HTTP {status}{suffix}", retry=False)


def _precondition(response: httpx.Response) -> str | None:
    """The name of the failed WebDAV/CalDAV precondition (``no-uid-conflict`` ...), if given."""
    if "xml" not in response.headers.get("Content-Type", ""):
        return None
    try:
        root = _parse_xml(response.content)
    except ValueError:
        return None
    if root.tag != _tag(DAV, "error") or len(root) == 0:
        return None
    return root[0].tag.rpartition("}")[2] or None


def _parse_xml(body: bytes) -> ET.Element:
    if _DTD.search(body):
        raise ValueError("XML with a DTD is refused")
    try:
        # Safe: a document with a DTD was refused above, so nothing can be expanded or fetched.
        return ET.fromstring(body)  # noqa: S314
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from exc


def _multistatus(response: httpx.Response) -> ET.Element:
    try:
        root = _parse_xml(response.content)
    except ValueError as exc:
        raise CalendarUnavailable(f"calendar sent an answer that is not WebDAV XML: {exc}") from exc
    if root.tag != _tag(DAV, "multistatus"):
        raise CalendarUnavailable(
            "not a calendar: the answer is not a WebDAV multistatus", retry=False
        )
    return root


def _found_props(root: ET.Element) -> Iterator[ET.Element]:
    """The ``D:prop`` of each ``D:propstat`` whose status is 200."""
    for response in root.iter(_tag(DAV, "response")):
        for propstat in response.iter(_tag(DAV, "propstat")):
            status = propstat.findtext(_tag(DAV, "status")) or ""
            prop = propstat.find(_tag(DAV, "prop"))
            if prop is not None and " 200 " in f"{status} ":
                yield prop


def _calendar_data(root: ET.Element) -> list[str]:
    return [
        data.text
        for prop in _found_props(root)
        for data in prop.iter(_tag(CALDAV, "calendar-data"))
        if data.text and data.text.strip()
    ]
