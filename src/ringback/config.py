"""Settings from the environment and the locations file, validated with clear errors.

Two sources configure Ringback:

* ``Settings``: process-wide values from ``RINGBACK_*`` / ``TWILIO_*`` environment variables.
* ``LocationsFile``: the YAML file named by ``RINGBACK_CONFIG``, one entry per clinic location.

Every problem is raised as :class:`ConfigError`, whose message names the file, the key
and what was expected, so the CLI can print it instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ringback.phones import InvalidPhoneNumber, display, normalize_e164

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class ConfigError(Exception):
    """The configuration cannot be used; the message says where and why.

    ``issues`` holds each problem as (path of keys, message) when the locations were
    validated, so a settings form can show each next to its field.
    """

    def __init__(
        self, message: str, issues: tuple[tuple[tuple[int | str, ...], str], ...] = ()
    ) -> None:
        super().__init__(message)
        self.issues = issues


def _e164(value: str) -> str:
    try:
        return normalize_e164(value)
    except InvalidPhoneNumber as exc:
        raise ValueError(
            f"expected a phone number in E.164 form like +13105550100 ({exc})"
        ) from exc


E164 = Annotated[str, AfterValidator(_e164)]

# A plain address (no display name): what alert email is sent to and from. Deliberately
# narrow, so a typo or a pasted "Name <addr>" is caught at start-up, not by the SMTP server.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[A-Za-z0-9.!#$%&'*+/=?^_`{{|}}~-]+@{_LABEL}(?:\.{_LABEL})*$")


def _email(value: str) -> str:
    text = value.strip()
    if len(text) > 254 or not _EMAIL.match(text):
        raise ValueError(f"expected an email address like frontdesk@example.com, got {value!r}")
    return text


EmailAddress = Annotated[str, AfterValidator(_email)]


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(f"expected lowercase letters, digits and dashes, got {value!r}")
    return value


Slug = Annotated[str, AfterValidator(_slug)]

SmtpSecurity = Literal["none", "starttls", "tls"]
# scheme -> (how the connection is secured, default port)
_SMTP_SCHEMES: dict[str, tuple[SmtpSecurity, int]] = {
    "smtp": ("none", 25),
    "smtp+starttls": ("starttls", 587),
    "smtps": ("tls", 465),
}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where alert email goes, parsed from ``RINGBACK_SMTP_URL``. The password is never shown."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        scheme = {v[0]: k for k, v in _SMTP_SCHEMES.items()}[self.security]
        return f"{scheme}://{self.host}:{self.port}"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit for an error message."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):[^@/?#]*@", r"\1:***@", url.strip())


def parse_smtp_url(url: str) -> SmtpServer:
    """Parse ``smtp://``, ``smtp+starttls://`` or ``smtps://[user[:password]@]host[:port]``.

    ``smtp`` is plain (a relay on the same host or network), ``smtp+starttls`` upgrades
    with STARTTLS (port 587 by default), ``smtps`` is TLS from the start (465). A user
    name or password holding ``@``, ``:`` or ``/`` is percent-encoded (``%40``).
    """
    shown = redact_url(url)
    expected = "expected smtp://, smtp+starttls:// or smtps:// then [user:password@]host[:port]"
    parts = urlsplit(url.strip())
    scheme = _SMTP_SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"{expected}, got {shown!r}")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"expected a port from 1 to 65535, got {shown!r}") from exc
    if not parts.hostname:
        raise ValueError(f"{expected}; the host is missing in {shown!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{expected} and nothing after it (for STARTTLS use smtp+starttls://), got {shown!r}"
        )
    if parts.password is not None and not parts.username:
        raise ValueError(f"expected a user name before the password in {shown!r}")
    return SmtpServer(
        host=parts.hostname,
        port=port or scheme[1],
        security=scheme[0],
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A daily window in local wall-clock time; ``end`` may be 24:00."""

    start: time
    end_minutes: int  # minutes after midnight; 1440 means midnight at the end of the day

    @property
    def start_minutes(self) -> int:
        return self.start.hour * 60 + self.start.minute

    def contains(self, moment: time) -> bool:
        minute = moment.hour * 60 + moment.minute
        return self.start_minutes <= minute < self.end_minutes

    def __str__(self) -> str:
        end_h, end_m = divmod(self.end_minutes, 60)
        return f"{self.start:%H:%M}-{end_h:02d}:{end_m:02d}"


def parse_ranges(text: str) -> tuple[TimeRange, ...]:
    """Parse ``"09:00-18:00"``, ``"09:00-12:00,13:00-18:00"`` or ``"closed"``."""
    text = text.strip().lower()
    if text == "closed":
        return ()
    ranges = []
    for part in text.split(","):
        match = _RANGE.match(part.strip())
        if not match:
            raise ValueError(
                f"expected 'HH:MM-HH:MM' (several joined by commas) or 'closed', got {text!r}"
            )
        sh, sm, eh, em = (int(g) for g in match.groups())
        if eh == 24 and em != 0:
            raise ValueError(f"expected an end no later than 24:00, got {part.strip()!r}")
        start_minutes, end_minutes = sh * 60 + sm, eh * 60 + em
        if end_minutes <= start_minutes:
            raise ValueError(f"expected the end after the start, got {part.strip()!r}")
        ranges.append(TimeRange(start=time(sh, sm), end_minutes=end_minutes))
    ranges.sort(key=lambda r: r.start_minutes)
    return tuple(ranges)


class Service(BaseModel):
    """A treatment on the location's menu."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    aliases: tuple[str, ...] = ()
    minutes: int = Field(default=30, ge=5, le=600)
    buffer_minutes: int = Field(default=0, ge=0, le=240)
    price: Decimal = Field(default=Decimal(0), ge=0, max_digits=10, decimal_places=2)
    consult: bool = False
    prep_note: str | None = None
    # Rebooking: a patient whose last kept visit for it is this many days old (and who has
    # nothing booked) gets one text with real times, when the location turns rebooking on.
    rebook_after_days: int | None = Field(default=None, ge=7, le=730)

    @property
    def price_cents(self) -> int:
        return int(self.price * 100)


class Messages(BaseModel):
    """Wording a location can override. ``{location}`` and ``{phone}`` are filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    textback: str = (
        "Hi, this is {location} - sorry we missed your call! What treatment were you calling about?"
    )
    textback_variants: tuple[str, ...] = ()
    appointment_textback: str = (
        "Hi, this is {location} - sorry we missed your call! "
        "Are you calling about your appointment on {appointment}?"
    )
    opt_out_suffix: str = "Reply STOP to opt out."
    voice_greeting: str = (
        "Thanks for calling {location}. Sorry we couldn't pick up. "
        "We're sending you a text right now so we can help you book."
    )
    after_hours_greeting: str = (
        "Thanks for calling {location}. We're closed right now. "
        "We're sending you a text so we can help you book."
    )
    help: str = (
        "{location}: reply here and we'll help you book, or call us at {phone}. "
        "Reply STOP to opt out."
    )
    start: str = "{location}: you're opted back in to texts from us. Reply STOP to opt out."
    stop: str = "You're unsubscribed from {location} texts. Reply START to resubscribe."

    @field_validator(
        "textback",
        "appointment_textback",
        "voice_greeting",
        "after_hours_greeting",
        "help",
        "start",
        "stop",
    )
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        for name in re.findall(r"{(\w*)}", value):
            if name not in {"location", "phone", "appointment"}:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; "
                    "use {location}, {phone} or {appointment}"
                )
        return value


def _hours_field(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(value) - set(WEEKDAYS))
    if unknown:
        raise ValueError(f"unknown day {unknown[0]!r}; expected keys {', '.join(WEEKDAYS)}")
    for day, text in value.items():
        try:
            parse_ranges(str(text))
        except ValueError as exc:
            raise ValueError(f"{day}: {exc}") from exc
    return {day: str(value.get(day, "closed")) for day in WEEKDAYS}


class CalendarLink(BaseModel):
    """A CalDAV calendar collection. The password comes from an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    username: str | None = None
    password_env: str | None = Field(
        default=None, description="name of the environment variable holding the password"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL of a CalDAV calendar, got {value!r}")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Z_][A-Z0-9_]*$", value):
            raise ValueError(
                f"expected an environment variable name like CALDAV_ANNA, got {value!r}"
            )
        return value


class Provider(BaseModel):
    """Someone patients book with (an injector, an aesthetician)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: str = Field(min_length=1, max_length=80)
    # Names of the services this provider performs; empty means every bookable service.
    services: tuple[str, ...] = ()
    # Working hours by weekday; missing means the location's opening hours.
    hours: dict[str, str] | None = None
    calendar: CalendarLink | None = None

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return None if value is None else _hours_field(value)

    def performs(self, service: str) -> bool:
        return not self.services or any(s.casefold() == service.casefold() for s in self.services)


class Room(BaseModel):
    """A treatment room; when a location lists rooms, every booking needs a free one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: str = Field(min_length=1, max_length=80)
    services: tuple[str, ...] = ()  # empty: any service

    def fits(self, service: str) -> bool:
        return not self.services or any(s.casefold() == service.casefold() for s in self.services)


class Booking(BaseModel):
    """How Ringback offers and books times at a location."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lead_minutes: int = Field(default=120, ge=0, le=14 * 24 * 60)
    step_minutes: int = Field(default=15, ge=5, le=240)
    horizon_days: int = Field(default=30, ge=1, le=180)
    hold_minutes: int = Field(default=10, ge=1, le=120)
    offers: int = Field(default=3, ge=1, le=3)
    link_days: int = Field(default=7, ge=1, le=60)  # how long a texted booking link works
    calendar: CalendarLink | None = None  # a location-wide calendar (written and read)


# Reminder wording. ``{location}`` and ``{when}`` (the day and time, in the patient's
# language) are filled in; ``{treatment}`` only where the location allows health details
# in texts (``health_details_in_texts``), since a lock screen shows it to anyone nearby.
REMINDER_PLACEHOLDERS = frozenset({"location", "when", "phone", "treatment"})
DEFAULT_REMINDER_TEXT = (
    "{location}: a reminder of your appointment on {when}. "
    "Reply C to confirm, R to reschedule or X to cancel."
)
DEFAULT_REMINDER_TEXT_ES = (
    "{location}: le recordamos su cita el {when}. "
    "Responda C para confirmar, R para cambiarla o X para cancelar."
)
DEFAULT_REMINDER_TEXT_HEALTH = (
    "{location}: a reminder of your {treatment} appointment on {when}. "
    "Reply C to confirm, R to reschedule or X to cancel."
)
DEFAULT_REMINDER_TEXT_HEALTH_ES = (
    "{location}: le recordamos su cita de {treatment} el {when}. "
    "Responda C para confirmar, R para cambiarla o X para cancelar."
)


class Reminder(BaseModel):
    """One appointment reminder: how long before the visit, and its wording (English and
    Spanish; the defaults when not given)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hours_before: float = Field(gt=0, le=14 * 24)
    text: str | None = Field(default=None, min_length=1, max_length=320)
    text_es: str | None = Field(default=None, min_length=1, max_length=320)

    @field_validator("text", "text_es")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        for name in re.findall(r"{(\w*)}", value or ""):
            if name not in REMINDER_PLACEHOLDERS:
                raise ValueError(
                    f"unknown placeholder {{{name}}}; use {{location}}, {{when}}, {{phone}} "
                    "or {treatment}"
                )
        return value

    @property
    def offset_minutes(self) -> int:
        return round(self.hours_before * 60)

    def template(self, language: str, *, health_details: bool) -> str:
        if language == "es":
            default = (
                DEFAULT_REMINDER_TEXT_HEALTH_ES if health_details else DEFAULT_REMINDER_TEXT_ES
            )
            return self.text_es or default
        return self.text or (
            DEFAULT_REMINDER_TEXT_HEALTH if health_details else DEFAULT_REMINDER_TEXT
        )


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError(f"expected an environment variable name like SQUARE_TOKEN, got {value!r}")
    return value


EnvName = Annotated[str, AfterValidator(_env_name)]

# Where a location's bookings live (docs/booking-systems.md). ``ringback``: Ringback's own
# appointments (CalDAV calendars, where configured, mirror them); ``caldav``: the same with
# at least one CalDAV calendar required; ``google_calendar`` / ``square``: the clinic's own
# booking system is read for offers and written under the booking lock.
BookingSystemName = Literal["ringback", "caldav", "google_calendar", "square"]


class GoogleCalendarSettings(BaseModel):
    """A location booking into Google Calendar: which calendar each provider's bookings go
    to, and how Ringback signs in (an OAuth client, or a service account's key file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default_calendar: str | None = Field(default=None, min_length=1, max_length=300)
    calendars: dict[str, str] = Field(default_factory=dict)  # provider id -> calendar id
    # The OAuth client (Google Cloud Console, "Web application"); else GOOGLE_OAUTH_CLIENT_ID
    # and GOOGLE_OAUTH_CLIENT_SECRET from the environment.
    oauth_client_id: str | None = Field(default=None, min_length=1)
    oauth_client_secret_env: EnvName | None = None
    # A Workspace service account instead of OAuth: its JSON key file, and the user it
    # acts as (domain-wide delegation), if any.
    service_account_key_file: str | None = None
    subject: str | None = None

    @property
    def auth(self) -> Literal["oauth", "service_account"]:
        return "service_account" if self.service_account_key_file else "oauth"

    def calendar_for(self, provider_id: str) -> str | None:
        return self.calendars.get(provider_id) or self.default_calendar


class SquareSettings(BaseModel):
    """A location booking into Square Appointments: the Square location, and Square's ids
    for the location's providers (team members) and services (service variations)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    location_id: str = Field(min_length=1, max_length=64)
    access_token_env: EnvName = "SQUARE_ACCESS_TOKEN"  # noqa: S105 (a variable's name)
    webhook_signature_key_env: EnvName = "SQUARE_WEBHOOK_SIGNATURE_KEY"
    environment: Literal["production", "sandbox"] = "production"
    team_members: dict[str, str] = Field(default_factory=dict)  # provider id -> team member id
    services: dict[str, str] = Field(default_factory=dict)  # service name -> variation id

    def variation_for(self, service: str) -> str | None:
        wanted = service.casefold()
        return next((v for k, v in self.services.items() if k.casefold() == wanted), None)


def _check_booking_system(location: Location) -> None:
    """The location's booking system has what it needs; raise ValueError naming the key."""
    system = location.booking_system
    for key, block in (("google_calendar", location.google_calendar), ("square", location.square)):
        if block is not None and system != key:
            raise ValueError(f"{key}: given, but booking_system is {system!r} (set it to {key})")
    if system == "caldav" and not (
        location.booking.calendar or any(p.calendar for p in location.providers)
    ):
        raise ValueError(
            "booking_system caldav: no CalDAV calendar (give providers[].calendar or "
            "booking.calendar)"
        )
    if system not in ("google_calendar", "square"):
        return
    if not location.providers:
        raise ValueError(f"booking_system {system}: needs providers (who patients book with)")
    provider_ids = {p.id for p in location.providers}
    if system == "google_calendar":
        google = location.google_calendar
        if google is None:
            raise ValueError("booking_system google_calendar: the google_calendar key is missing")
        for provider_id in google.calendars:
            if provider_id not in provider_ids:
                raise ValueError(f"google_calendar.calendars: {provider_id!r} is not a provider id")
        for provider in location.providers:
            if google.calendar_for(provider.id) is None:
                raise ValueError(
                    f"google_calendar.calendars: provider {provider.id!r} has no calendar "
                    "(add it, or set google_calendar.default_calendar)"
                )
        return
    square = location.square
    if square is None:
        raise ValueError("booking_system square: the square key is missing")
    for provider_id in square.team_members:
        if provider_id not in provider_ids:
            raise ValueError(f"square.team_members: {provider_id!r} is not a provider id")
    for provider in location.providers:
        if provider.id not in square.team_members:
            raise ValueError(
                f"square.team_members: provider {provider.id!r} has no team member id "
                "(ringback square map lists them)"
            )
    for name in square.services:
        if location.service_named(name) is None:
            raise ValueError(f"square.services: {name!r} is not in services")
    for service in location.services:
        booked = not service.consult and any(p.performs(service.name) for p in location.providers)
        if booked and square.variation_for(service.name) is None:
            raise ValueError(
                f"square.services: service {service.name!r} has no service variation id "
                "(ringback square map lists them)"
            )


class Location(BaseModel):
    """One clinic location: its Twilio number, hours, menu and texting rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    name: str = Field(min_length=1, max_length=80)
    phone_number: E164
    # Which SMS and voice provider serves phone_number (see README, SignalWire).
    provider: Literal["twilio", "signalwire"] = "twilio"
    front_desk: tuple[E164, ...] = ()
    ring_seconds: int = Field(default=18, ge=5, le=120)
    timezone: str = "America/Los_Angeles"
    hours: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(WEEKDAYS, "09:00-18:00"))
    closures: tuple[str, ...] = ()
    after_hours_skip_ring: bool = False
    booking_url: str | None = None
    address: str | None = None
    staff_alert_numbers: tuple[E164, ...] = ()
    # The on-call line the urgent safety text gives; without it, the location's number
    # only while the clinic is open (after hours the text promises a call back instead).
    urgent_phone: E164 | None = None
    staff_alert_emails: tuple[EmailAddress, ...] = ()
    # The URL is the credential (anyone holding it can post), so it stays out of reprs.
    slack_webhook_url: str | None = Field(default=None, repr=False)
    blocklist: tuple[E164, ...] = ()
    messages: Messages = Field(default_factory=Messages)
    services: tuple[Service, ...] = ()
    cooldown_hours: float = Field(default=24, ge=0, le=24 * 30)
    appointment_window_hours: float = Field(default=48, ge=0, le=24 * 14)
    skip_landlines: bool = False
    texting_hours: str = "08:00-21:00"
    hold_textback_outside_texting_hours: bool = False
    nudge_after_minutes: float = Field(default=120, gt=0, le=7 * 24 * 60)
    close_after_minutes: float = Field(default=1440, gt=0, le=30 * 24 * 60)
    # Who confirms STOP / START by text: Ringback (one short text per keyword), or the
    # provider (Twilio's Advanced Opt-Out, configured in its console).
    opt_out_confirmations: Literal["ringback", "provider"] = "ringback"
    # "X" to a booking asks "Cancel your ...? Reply X again ..." before cancelling.
    confirm_cancel: bool = True
    # A patient text within this many days of a thread closing continues that thread.
    reopen_days: float = Field(default=14, ge=0, le=90)
    providers: tuple[Provider, ...] = ()
    rooms: tuple[Room, ...] = ()
    booking: Booking = Field(default_factory=Booking)
    # Appointment reminders (none, one or several), each due its hours before the visit;
    # one due outside texting hours goes at the last texting-hours moment before it.
    reminders: tuple[Reminder, ...] = (Reminder(hours_before=48), Reminder(hours_before=2))
    # Texts may name the treatment (a health detail): off by default.
    health_details_in_texts: bool = False
    # At most this many automated texts (reminders, nudges, no-show texts) per patient per
    # local day; replies to the patient and urgent wording are never held back. None: no cap.
    automated_texts_per_day: int | None = Field(default=1, ge=1, le=10)
    # A no-show gets one warm "we missed you, want another time?" text with fresh times.
    no_show_text: bool = True
    # The waitlist: the bot offers it when no slot fits, and a freed slot is texted to the
    # waitlisted patients who match; an entry lapses after ``waitlist_days``.
    waitlist: bool = True
    waitlist_days: int = Field(default=30, ge=1, le=365)
    # Rebooking texts when a service's ``rebook_after_days`` have passed (opt-in).
    rebooking: bool = False
    # After a kept visit, one text with ``review_link``, once per patient per 180 days.
    review_requests: bool = False
    review_link: str | None = Field(default=None, max_length=300)
    booking_system: BookingSystemName = "ringback"
    google_calendar: GoogleCalendarSettings | None = None
    square: SquareSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"expected an IANA time zone like America/Los_Angeles, got {value!r}"
            ) from exc
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        return _hours_field(value)

    @field_validator("closures")
    @classmethod
    def _closures(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                datetime.strptime(str(item), "%Y-%m-%d")  # noqa: DTZ007 - a calendar date only
            except ValueError as exc:
                raise ValueError(f"expected dates as YYYY-MM-DD, got {item!r}") from exc
        return tuple(str(v) for v in value)

    @field_validator("texting_hours")
    @classmethod
    def _texting_hours(cls, value: str) -> str:
        if not parse_ranges(value):
            raise ValueError("expected a window like '08:00-21:00', not 'closed'")
        return value

    @field_validator("booking_url", "slack_webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _reminders(self) -> Location:
        offsets = [r.offset_minutes for r in self.reminders]
        if len(set(offsets)) != len(offsets):
            raise ValueError("reminders: two reminders are due the same time before the visit")
        if not self.health_details_in_texts:
            for reminder in self.reminders:
                for text in (reminder.text, reminder.text_es):
                    if text and "{treatment}" in text:
                        raise ValueError(
                            "reminders: {treatment} names a health detail; set "
                            "health_details_in_texts: true to allow it"
                        )
        return self

    @model_validator(mode="after")
    def _review_link(self) -> Location:
        link = self.review_link
        if link is not None and not link.startswith("https://"):
            raise ValueError(f"review_link: expected an https:// address, got {link!r}")
        if self.review_requests and link is None:
            raise ValueError("review_requests: set review_link to the page patients review on")
        return self

    @model_validator(mode="after")
    def _unique_services(self) -> Location:
        seen: set[str] = set()
        for service in self.services:
            key = service.name.casefold()
            if key in seen:
                raise ValueError(f"service {service.name!r} is listed twice")
            seen.add(key)
        for kind, items in (("provider", self.providers), ("room", self.rooms)):
            ids: set[str] = set()
            for item in items:
                if item.id in ids:
                    raise ValueError(f"{kind} id {item.id!r} is used twice")
                ids.add(item.id)
                for name in item.services:
                    if self.service_named(name) is None:
                        raise ValueError(
                            f"{kind} {item.id!r} lists service {name!r}, which is not in services"
                        )
        _check_booking_system(self)
        return self

    # --- derived views -------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def forwarded_only(self) -> bool:
        """No front desk to ring: the clinic's carrier forwards unanswered calls to us."""
        return not self.front_desk

    def opening_ranges(self, weekday: int) -> tuple[TimeRange, ...]:
        return parse_ranges(self.hours[WEEKDAYS[weekday]])

    @property
    def schedules(self) -> bool:
        """Ringback offers times and books itself (at least one provider is configured)."""
        return bool(self.providers)

    def find_provider(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)

    def find_room(self, room_id: str) -> Room | None:
        return next((r for r in self.rooms if r.id == room_id), None)

    def is_open(self, moment: datetime) -> bool:
        """Whether the clinic is open at ``moment`` (any aware datetime)."""
        local = moment.astimezone(self.zone)
        if local.strftime("%Y-%m-%d") in self.closures:
            return False
        return any(r.contains(local.time()) for r in self.opening_ranges(local.weekday()))

    def texting_window(self) -> TimeRange:
        return parse_ranges(self.texting_hours)[0]

    def next_texting_time(self, moment: datetime) -> datetime:
        """``moment`` itself when inside texting hours, else the next start of them."""
        window = self.texting_window()
        local = moment.astimezone(self.zone)
        if window.contains(local.time()):
            return moment
        day = local.date()
        if local.hour * 60 + local.minute >= window.end_minutes:
            day = day + timedelta(days=1)
        start = datetime.combine(day, window.start, tzinfo=self.zone)
        return start.astimezone(moment.tzinfo)

    def last_texting_time(self, moment: datetime) -> datetime:
        """``moment`` itself when inside texting hours, else the last texting-hours moment
        before it (the end of the window on that day, or the day before)."""
        window = self.texting_window()
        local = moment.astimezone(self.zone)
        if window.contains(local.time()):
            return moment
        day = local.date()
        if local.hour * 60 + local.minute < window.start_minutes:
            day = day - timedelta(days=1)
        # A minute before the window closes: the window's end itself is outside it.
        end = datetime.combine(day, time(0), tzinfo=self.zone) + timedelta(
            minutes=window.end_minutes - 1
        )
        return end.astimezone(moment.tzinfo)

    def own_numbers(self) -> frozenset[str]:
        on_call = (self.urgent_phone,) if self.urgent_phone else ()
        return frozenset((self.phone_number, *self.front_desk, *self.staff_alert_numbers, *on_call))

    def service_named(self, name: str) -> Service | None:
        for service in self.services:
            if service.name.casefold() == name.casefold():
                return service
        return None

    def render(self, template: str, **values: str) -> str:
        return template.format_map(
            {
                "location": self.name,
                "phone": display(self.phone_number),
                "appointment": "",
                **values,
            }
        )


class LocationsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    locations: tuple[Location, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> LocationsFile:
        ids: set[str] = set()
        numbers: dict[str, str] = {}
        for loc in self.locations:
            if loc.id in ids:
                raise ValueError(f"location id {loc.id!r} is used twice")
            ids.add(loc.id)
            if loc.phone_number in numbers:
                raise ValueError(
                    f"phone_number {loc.phone_number} is used by both "
                    f"{numbers[loc.phone_number]!r} and {loc.id!r}"
                )
            numbers[loc.phone_number] = loc.id
        return self


class Locations:
    """The loaded locations, found by id or by the number callers dial."""

    def __init__(self, locations: tuple[Location, ...]) -> None:
        self.replace(locations)

    def replace(self, locations: tuple[Location, ...]) -> None:
        """Swap in new settings (a change saved in the settings pages), in one assignment
        so a reader on another thread sees either the old set or the new one."""
        by_id = {loc.id: loc for loc in locations}
        by_number = {loc.phone_number: loc for loc in locations}
        self._index = (by_id, by_number)

    @property
    def _by_id(self) -> dict[str, Location]:
        return self._index[0]

    @property
    def _by_number(self) -> dict[str, Location]:
        return self._index[1]

    def __iter__(self) -> Any:
        return iter(tuple(self._by_id.values()))

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, location_id: str) -> Location | None:
        return self._by_id.get(location_id)

    def by_number(self, number: str) -> Location | None:
        return self._by_number.get(number)


def _format_loc(loc: tuple[int | str, ...], data: Any) -> str:
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = ""
            if isinstance(node, list) and 0 <= item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id") or node[item].get("name")
                label = f"({ident})" if ident else ""
            parts.append(f"[{item}]{label}")
            node = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def load_locations(path: Path) -> Locations:
    """Read and validate the locations file, raising :class:`ConfigError` with a clear message."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: file not found (set RINGBACK_CONFIG to your locations file)"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML at {where}: {problem}") from exc
    return parse_locations(data, str(path))


def parse_locations(data: Any, source: str) -> Locations:
    """Validate locations given as data (the file's YAML, or the settings stored in the
    database), raising :class:`ConfigError` with the same named errors as ``check-config``:
    ``<source>: locations[0](glow-downtown).ring_seconds: ...``."""
    path = source
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'locations' list at the top level")
    try:
        parsed = LocationsFile.model_validate(data)
    except ValidationError as exc:
        lines = []
        issues: list[tuple[tuple[int | str, ...], str]] = []
        errors = exc.errors()
        has_item_errors = any(len(e["loc"]) > 1 for e in errors)
        for error in errors:
            if has_item_errors and error["type"] == "too_short":
                continue  # the list is only short because its items failed; they are named
            where = _format_loc(tuple(error["loc"]), data)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check the spelling; see README for the keys)"
            elif error["type"] == "missing":
                message = "required key is missing"
            got = error.get("input")
            suffix = (
                f" (got {got!r})"
                if error["type"] not in {"missing", "value_error"}
                and not isinstance(got, dict | list)
                else ""
            )
            lines.append(f"{path}: {where}: {message}{suffix}")
            issues.append((tuple(error["loc"]), f"{message}{suffix}"))
        raise ConfigError("\n".join(lines), tuple(issues)) from exc
    return Locations(parsed.locations)


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(value: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDRs (``RINGBACK_TRUSTED_PROXIES``); empty: none."""
    networks: list[Network] = []
    for part in value.split(","):
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or CIDR like 10.0.0.0/8") from None
    return tuple(networks)


class Settings(BaseSettings):
    """Process-wide settings, from the environment (names in README)."""

    # Inputs stay out of ValidationError's text: RINGBACK_SMTP_URL may hold a password.
    model_config = SettingsConfigDict(
        extra="ignore", populate_by_name=True, hide_input_in_errors=True
    )

    database_url: str = Field(default="", alias="RINGBACK_DATABASE_URL")
    queue_url: str = Field(default="", alias="RINGBACK_QUEUE_URL")
    config: Path = Field(default=Path("ringback.yaml"), alias="RINGBACK_CONFIG")
    public_url: str = Field(default="http://127.0.0.1:8000", alias="RINGBACK_PUBLIC_URL")
    data_dir: Path = Field(default=Path("var"), alias="RINGBACK_DATA_DIR")
    queue_name: str = Field(
        default="ringback", pattern=r"^[A-Za-z0-9_.-]{1,64}$", alias="RINGBACK_QUEUE_NAME"
    )
    workers: int = Field(default=4, ge=1, le=64, alias="RINGBACK_WORKERS")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", alias="RINGBACK_LOG_LEVEL"
    )
    send_timeout_seconds: float = Field(default=10.0, gt=0, le=120, alias="RINGBACK_SEND_TIMEOUT")
    # The webhook spool (README, Deployment): an event the database cannot take within
    # RINGBACK_STORE_BUDGET seconds is spooled to RINGBACK_SPOOL_DIR (default
    # <data dir>/spool), at most RINGBACK_SPOOL_MAX_MB per process (0: no spool).
    store_budget_seconds: float = Field(default=2.0, gt=0, le=10, alias="RINGBACK_STORE_BUDGET")
    spool_dir: Path | None = Field(default=None, alias="RINGBACK_SPOOL_DIR")
    spool_max_mb: float = Field(default=64, ge=0, le=100_000, alias="RINGBACK_SPOOL_MAX_MB")
    twilio_account_sid: str = Field(default="", alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field(default="", alias="TWILIO_AUTH_TOKEN", repr=False)
    twilio_api_base_url: str = Field(default="https://api.twilio.com", alias="TWILIO_API_BASE_URL")
    twilio_lookup_base_url: str = Field(
        default="https://lookups.twilio.com", alias="TWILIO_LOOKUP_BASE_URL"
    )
    # SignalWire, for locations with ``provider: signalwire`` (README, SignalWire).
    signalwire_project_id: str = Field(default="", alias="SIGNALWIRE_PROJECT_ID")
    signalwire_api_token: str = Field(default="", alias="SIGNALWIRE_API_TOKEN", repr=False)
    signalwire_space_url: str = Field(default="", alias="SIGNALWIRE_SPACE_URL")
    signalwire_signing_key: str = Field(default="", alias="SIGNALWIRE_SIGNING_KEY", repr=False)
    # Signs booking links and calendar feed URLs. Unset: a random key kept in the data dir.
    secret_key: str = Field(default="", alias="RINGBACK_SECRET_KEY", repr=False)
    smtp_url: str = Field(default="", alias="RINGBACK_SMTP_URL", repr=False)
    alert_from: EmailAddress = Field(default="ringback@localhost", alias="RINGBACK_ALERT_FROM")
    # Booking systems (docs/booking-systems.md). The base URLs are for tests and sandboxes.
    google_oauth_client_id: str = Field(default="", alias="GOOGLE_OAUTH_CLIENT_ID")
    google_oauth_client_secret: str = Field(
        default="", alias="GOOGLE_OAUTH_CLIENT_SECRET", repr=False
    )
    google_calendar_api_base_url: str = Field(
        default="https://www.googleapis.com/calendar/v3", alias="GOOGLE_CALENDAR_API_BASE_URL"
    )
    google_oauth_token_url: str = Field(
        default="https://oauth2.googleapis.com/token", alias="GOOGLE_OAUTH_TOKEN_URL"
    )
    square_api_base_url: str = Field(default="", alias="SQUARE_API_BASE_URL")
    # The web edge (README, Edges and headers; ringback.guards).
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1024, le=1024**3, alias="RINGBACK_MAX_BODY_BYTES"
    )
    max_upload_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, le=16 * 1024**3, alias="RINGBACK_MAX_UPLOAD_BYTES"
    )
    trusted_proxies: str = Field(default="", alias="RINGBACK_TRUSTED_PROXIES")
    # Outbound webhooks to loopback, private or link-local addresses (a receiver on the
    # clinic's own network, or tests): refused unless this is set.
    allow_private_webhooks: bool = Field(default=False, alias="RINGBACK_ALLOW_PRIVATE_WEBHOOKS")

    @field_validator("public_url", "twilio_api_base_url", "twilio_lookup_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"expected an http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("twilio_account_sid")
    @classmethod
    def _sid(cls, value: str) -> str:
        if value and not re.match(r"^AC[0-9a-fA-F]{32}$", value):
            raise ValueError("expected 'AC' followed by 32 hex digits")
        return value

    @field_validator("signalwire_project_id")
    @classmethod
    def _project_id(cls, value: str) -> str:
        if value and not _UUID.match(value.strip()):
            raise ValueError(
                "expected the Project ID, a UUID like 1a2b3c4d-0000-4000-8000-00000000abcd"
            )
        return value.strip()

    @field_validator("signalwire_space_url")
    @classmethod
    def _space_url(cls, value: str) -> str:
        # A Space is named by its host (example.signalwire.com); a full http(s) URL is
        # taken as given, which is how tests point it at a local fake.
        text = value.strip().rstrip("/")
        if text and not re.match(r"^(https?://)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$", text):
            raise ValueError(
                f"expected your Space's host like example.signalwire.com, got {value!r}"
            )
        return text

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        parse_networks(value)
        return value.strip()

    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]:
        """``RINGBACK_TRUSTED_PROXIES`` parsed: the peers whose X-Forwarded-* are believed."""
        return parse_networks(self.trusted_proxies)

    @property
    def signalwire_api_base_url(self) -> str:
        """The Space's compatibility (cXML/LaML) REST API root, without a trailing slash."""
        space = self.signalwire_space_url
        base = space if re.match(r"^https?://", space) else f"https://{space}"
        return f"{base}/api/laml"

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if value.strip():
            parse_smtp_url(value)
        return value.strip()

    @property
    def smtp_server(self) -> SmtpServer | None:
        """The parsed ``RINGBACK_SMTP_URL``, or None when email alerts are off."""
        return parse_smtp_url(self.smtp_url) if self.smtp_url else None

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'ringback.db'}"

    @property
    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.data_dir / "spool"

    @property
    def resolved_queue_url(self) -> str:
        return self.queue_url or f"sqlite:///{self.data_dir / 'queue.db'}"

    def link_secret(self) -> bytes:
        """``RINGBACK_SECRET_KEY``, else a random key created once in the data directory."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret.key"
        try:
            return path.read_bytes().strip()
        except FileNotFoundError:
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48).encode()
            try:
                with path.open("xb") as handle:  # another process may win the race
                    handle.write(key)
                path.chmod(0o600)
            except FileExistsError:
                return path.read_bytes().strip()
            return key


_SECRET_SETTINGS = frozenset(
    {
        "RINGBACK_SMTP_URL",
        "RINGBACK_SECRET_KEY",
        "smtp_url",
        "TWILIO_AUTH_TOKEN",
        "SIGNALWIRE_API_TOKEN",
        "SIGNALWIRE_SIGNING_KEY",
        "GOOGLE_OAUTH_CLIENT_SECRET",
    }
)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_PROVIDER_SETTINGS = {
    "signalwire": (
        ("SIGNALWIRE_PROJECT_ID", "signalwire_project_id"),
        ("SIGNALWIRE_API_TOKEN", "signalwire_api_token"),
        ("SIGNALWIRE_SPACE_URL", "signalwire_space_url"),
        ("SIGNALWIRE_SIGNING_KEY", "signalwire_signing_key"),
    ),
}


def check_provider_settings(settings: Settings, locations: Locations) -> None:
    """Raise :class:`ConfigError` naming each setting a location's provider needs but lacks."""
    lines = []
    for provider, needed in _PROVIDER_SETTINGS.items():
        users = [loc.id for loc in locations if loc.provider == provider]
        missing = [env for env, name in needed if not getattr(settings, name)]
        if users and missing:
            lines.append(
                f"environment: {', '.join(missing)} not set, but location(s) "
                f"{', '.join(users)} use provider {provider} (see README, SignalWire)"
            )
    if lines:
        raise ConfigError("\n".join(lines))


_TWILIO_SETTINGS = (
    ("TWILIO_ACCOUNT_SID", "twilio_account_sid"),
    ("TWILIO_AUTH_TOKEN", "twilio_auth_token"),
)


def deployment_warnings(settings: Settings, locations: Locations) -> list[str]:
    """What would stop a real install from working though the settings are valid.

    Each line names the setting and why it matters: Twilio credentials missing for
    locations that use Twilio (webhooks cannot be verified, no text can be sent), or a
    public URL that Twilio cannot reach (loopback) or would send signed webhooks to in
    the clear (not https). ``check-config`` prints them; ``--strict`` fails on them.
    """
    lines = []
    users = [loc.id for loc in locations if loc.provider == "twilio"]
    missing = [env for env, name in _TWILIO_SETTINGS if not getattr(settings, name)]
    if users and missing:
        lines.append(
            f"environment: {', '.join(missing)} not set, but location(s) {', '.join(users)} "
            "use provider twilio: webhooks are refused and no text can be sent"
        )
    parts = urlsplit(settings.public_url)
    host = (parts.hostname or "").lower()
    if _is_loopback_host(host):
        lines.append(
            f"environment: RINGBACK_PUBLIC_URL is {settings.public_url}, a loopback address: "
            "Twilio cannot reach it, and signed webhooks are checked against this URL "
            "(set it to the https address the phone provider calls)"
        )
    elif parts.scheme != "https":
        lines.append(
            f"environment: RINGBACK_PUBLIC_URL is {settings.public_url}, not https: webhooks "
            "and staff sign-ins would cross the internet unencrypted (put a TLS proxy in "
            "front, see README, Deployment)"
        )
    return lines


def _is_loopback_host(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, raising :class:`ConfigError` on a bad value."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "settings"
            message = error["msg"].removeprefix("Value error, ")
            # Secrets are never echoed (the SMTP URL's own message shows it without password),
            # and a value the message already quotes is not quoted twice.
            got = f" (got {error.get('input')!r})"
            if name in _SECRET_SETTINGS or got[6:-1] in message:
                got = ""
            lines.append(f"environment: {name}: {message}{got}")
        raise ConfigError("\n".join(lines)) from exc
