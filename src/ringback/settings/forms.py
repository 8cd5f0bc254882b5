"""The settings forms as data: what an owner typed, turned into a location as the
locations file writes it, and the validator's named errors turned back into a message
next to each field.

Nothing here validates on its own account: the location is checked by the same models
as the file (:mod:`ringback.config`). Field names are the keys' paths (``ring_seconds``,
``hours.mon``, ``services.2.minutes``), so an error's path finds its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ringback.config import WEEKDAYS, Location, Reminder
from ringback.messaging.segments import Encoding, message_segments
from ringback.settings.store import slug

Form = Mapping[str, str]

DAY_NAMES = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}

# The texts a location can word itself, in the order the templates page shows them.
TEMPLATE_FIELDS: tuple[tuple[str, str, str], ...] = (
    ("textback", "Text-back (the first text to a missed caller)", "text"),
    ("appointment_textback", "Text-back to a caller with an appointment soon", "text"),
    ("opt_out_suffix", "Opt-out wording added to the first text", "suffix"),
    ("help", "Answer to HELP", "text"),
    ("start", "Answer to START (opted back in)", "text"),
    ("stop", "Answer to STOP (opted out)", "text"),
    ("voice_greeting", "Spoken greeting while the clinic is open", "voice"),
    ("after_hours_greeting", "Spoken greeting after hours", "voice"),
)
SAMPLE_APPOINTMENT = "Wed Nov 25 at 12:00pm"


class FormProblem(Exception):
    """Input the form itself can tell is wrong, before the settings' validation."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class Parsed:
    """A location's new data, and where each list entry came from on the form."""

    data: dict[str, Any]
    rows: dict[str, list[int]] = field(default_factory=dict)


def _text(form: Form, name: str) -> str:
    return str(form.get(name, "")).strip()


def _optional(form: Form, name: str) -> str | None:
    return _text(form, name) or None


def _lines(form: Form, name: str) -> list[str]:
    """A list typed one per line (commas also separate)."""
    return [part.strip() for part in re.split(r"[\n,;]+", str(form.get(name, ""))) if part.strip()]


def _checked(form: Form, name: str) -> bool:
    return name in form and str(form[name]).lower() not in ("", "0", "false", "off")


def row_numbers(form: Form, prefix: str) -> list[int]:
    found = {
        int(match.group(1))
        for key in form
        if (match := re.match(rf"^{prefix}\.(\d+)\.", key)) is not None
    }
    return sorted(found)


# --- the location page --------------------------------------------------------------


def general(current: dict[str, Any], form: Form) -> Parsed:
    """Name, numbers, hours, texting and booking: the location page."""
    data = dict(current)
    problems: dict[str, str] = {}
    data["name"] = _text(form, "name")
    data["phone_number"] = _text(form, "phone_number")
    data["front_desk"] = _lines(form, "front_desk")
    data["ring_seconds"] = _text(form, "ring_seconds")
    data["timezone"] = _text(form, "timezone")
    data["hours"] = {day: _text(form, f"hours.{day}") or "closed" for day in WEEKDAYS}
    data["closures"] = _lines(form, "closures")
    data["texting_hours"] = _text(form, "texting_hours")
    data["after_hours_skip_ring"] = _checked(form, "after_hours_skip_ring")
    data["hold_textback_outside_texting_hours"] = _checked(
        form, "hold_textback_outside_texting_hours"
    )
    data["address"] = _optional(form, "address")
    data["booking_url"] = _optional(form, "booking_url")
    data["staff_alert_numbers"] = _lines(form, "staff_alert_numbers")
    data["staff_alert_emails"] = _lines(form, "staff_alert_emails")
    data["urgent_phone"] = _optional(form, "urgent_phone")
    data["blocklist"] = _lines(form, "blocklist")
    mode = _text(form, "booking_mode")
    providers = current.get("providers") or []
    if mode == "own" and not providers:
        problems["booking_mode"] = (
            "booking its own slots needs at least one provider: add them on the Providers page"
        )
    elif mode == "link":
        if providers:
            problems["booking_mode"] = (
                f"this location books its own slots with {len(providers)} provider(s); "
                "remove them on the Providers page to send only an outside link"
            )
        if not data["booking_url"]:
            problems["booking_url"] = "an outside booking link needs its URL (https://...)"
    elif mode not in ("own", "link"):
        problems["booking_mode"] = "choose how patients book: our own slots or an outside link"
    if problems:
        raise FormProblem(problems)
    return Parsed(data)


def booking_mode(location: Location) -> str:
    return "own" if location.schedules else "link"


# --- services -----------------------------------------------------------------------


def services(current: dict[str, Any], form: Form) -> Parsed:
    """The menu: one row per service; a blank or removed row is dropped."""
    data = dict(current)
    rows: list[dict[str, Any]] = []
    origin: list[int] = []
    for n in row_numbers(form, "services"):
        name = _text(form, f"services.{n}.name")
        if _checked(form, f"services.{n}.remove") or not any(
            _text(form, f"services.{n}.{key}") for key in ("name", "aliases", "price", "prep_note")
        ):
            continue
        entry: dict[str, Any] = {
            "name": name,
            "aliases": _lines(form, f"services.{n}.aliases"),
            "minutes": _text(form, f"services.{n}.minutes") or 30,
            "buffer_minutes": _text(form, f"services.{n}.buffer_minutes") or 0,
            "price": _text(form, f"services.{n}.price").lstrip("$").replace(",", "") or 0,
            "consult": _checked(form, f"services.{n}.consult"),
        }
        note = _text(form, f"services.{n}.prep_note")
        if note:
            entry["prep_note"] = note
        interval = _text(form, f"services.{n}.rebook_after_days")
        if interval:
            entry["rebook_after_days"] = interval
        rows.append(entry)
        origin.append(n)
    data["services"] = rows
    # Follow-ups, on the menu's page since the treatment intervals live there.
    data["waitlist"] = _checked(form, "waitlist")
    data["rebooking"] = _checked(form, "rebooking")
    data["review_requests"] = _checked(form, "review_requests")
    data["review_link"] = _optional(form, "review_link")
    return Parsed(data, {"services": origin})


# --- providers ----------------------------------------------------------------------


def providers(current: dict[str, Any], form: Form) -> Parsed:
    """Who patients book with, and their hours (all days blank: the location's hours)."""
    data = dict(current)
    existing = {p.get("id"): p for p in current.get("providers") or []}
    rows: list[dict[str, Any]] = []
    origin: list[int] = []
    problems: dict[str, str] = {}
    for n in row_numbers(form, "providers"):
        name = _text(form, f"providers.{n}.name")
        hours = {day: _text(form, f"providers.{n}.hours.{day}") for day in WEEKDAYS}
        blank = not name and not _text(form, f"providers.{n}.services") and not any(hours.values())
        if _checked(form, f"providers.{n}.remove") or blank:
            continue
        ident = _text(form, f"providers.{n}.id") or slug(name)
        if not ident:
            problems[f"providers.{n}.name"] = "a provider needs a name (letters or digits)"
            continue
        entry: dict[str, Any] = {
            "id": ident,
            "name": name,
            "services": _lines(form, f"providers.{n}.services"),
        }
        if any(hours.values()):
            entry["hours"] = {day: text or "closed" for day, text in hours.items()}
        if existing.get(ident, {}).get("calendar"):
            entry["calendar"] = existing[ident]["calendar"]  # set in the file; kept as is
        rows.append(entry)
        origin.append(n)
    if problems:
        raise FormProblem(problems)
    data["providers"] = rows
    return Parsed(data, {"providers": origin})


# --- templates ----------------------------------------------------------------------


def templates(current: dict[str, Any], form: Form) -> Parsed:
    data = dict(current)
    messages = dict(current.get("messages") or {})
    for name, _label, _kind in TEMPLATE_FIELDS:
        messages[name] = str(form.get(f"messages.{name}", "")).strip()
    messages["textback_variants"] = [
        line.strip() for line in str(form.get("messages.textback_variants", "")).splitlines()
    ]
    messages["textback_variants"] = [v for v in messages["textback_variants"] if v]
    data["messages"] = messages
    return Parsed(data)


# --- reminders ----------------------------------------------------------------------


def reminders(current: dict[str, Any], form: Form) -> Parsed:
    """Appointment reminders (one row each; a blank or removed row is dropped), the no-show
    text, the daily cap of automated texts and whether texts may name the treatment."""
    data = dict(current)
    rows: list[dict[str, Any]] = []
    origin: list[int] = []
    problems: dict[str, str] = {}
    for n in row_numbers(form, "reminders"):
        hours = _text(form, f"reminders.{n}.hours_before")
        texts = {key: _text(form, f"reminders.{n}.{key}") for key in ("text", "text_es")}
        if _checked(form, f"reminders.{n}.remove") or not (hours or any(texts.values())):
            continue
        if not hours:
            problems[f"reminders.{n}.hours_before"] = (
                "give how many hours before the visit this reminder goes, like 48"
            )
            continue
        entry: dict[str, Any] = {"hours_before": hours}
        entry.update({key: text for key, text in texts.items() if text})
        rows.append(entry)
        origin.append(n)
    if problems:
        raise FormProblem(problems)
    data["reminders"] = rows
    data["no_show_text"] = _checked(form, "no_show_text")
    data["health_details_in_texts"] = _checked(form, "health_details_in_texts")
    data["automated_texts_per_day"] = _text(form, "automated_texts_per_day") or None
    return Parsed(data, {"reminders": origin})


SAMPLE_WHEN = {"en": "Wed Nov 25 at 12:00pm", "es": "mié 25 nov a las 12:00pm"}


def reminder_previews(
    location_name: str, phone: str, items: Sequence[Reminder], *, health_details: bool
) -> list[Preview]:
    """Each reminder in English and Spanish as the patient gets it (the default wording
    where none is set), with its encoding and segment count."""
    found: list[Preview] = []
    for n, reminder in enumerate(items):
        hours = f"{reminder.hours_before:g}"
        for language, label in (("en", "English"), ("es", "Spanish")):
            template = reminder.template(language, health_details=health_details)
            values = {
                "location": location_name,
                "phone": phone,
                "when": SAMPLE_WHEN[language],
                "treatment": "Botox",
            }
            body, error = _fill(template, values)
            encoding, count = message_segments(body) if body else ("GSM-7", 0)
            found.append(
                Preview(
                    f"reminders.{n}.{'text' if language == 'en' else 'text_es'}",
                    f"Reminder {hours} h before, {label}",
                    "text",
                    body,
                    error,
                    encoding,
                    count,
                    len(body),
                )
            )
    return found


# --- the booking system -------------------------------------------------------------

BOOKING_SYSTEMS: tuple[tuple[str, str], ...] = (
    ("ringback", "Ringback's own appointments"),
    ("caldav", "Ringback's appointments, checked against CalDAV calendars"),
    ("google_calendar", "Google Calendar"),
    ("square", "Square Appointments"),
)


def booking_system(current: dict[str, Any], form: Form) -> Parsed:
    """Where the location's bookings go. Only the chosen system's block is kept (the file
    refuses a block for another system); its per-provider mapping is kept as it was."""
    data = dict(current)
    system = _text(form, "booking_system")
    if system not in dict(BOOKING_SYSTEMS):
        raise FormProblem(
            {"booking_system": "choose one of " + ", ".join(name for name, _ in BOOKING_SYSTEMS)}
        )
    data["booking_system"] = system
    google = dict(current.get("google_calendar") or {})
    square = dict(current.get("square") or {})
    data.pop("google_calendar", None)
    data.pop("square", None)
    if system == "google_calendar":
        calendar = _optional(form, "google_calendar.default_calendar")
        if calendar:
            google["default_calendar"] = calendar
        else:
            google.pop("default_calendar", None)
        data["google_calendar"] = google
    elif system == "square":
        square["location_id"] = _text(form, "square.location_id")
        square["environment"] = _text(form, "square.environment") or "production"
        data["square"] = square
    return Parsed(data)


@dataclass(frozen=True)
class Preview:
    name: str
    label: str
    kind: str  # text | suffix | voice
    body: str
    error: str | None
    encoding: Encoding | None
    segments: int
    characters: int


def _fill(template: str, values: dict[str, str]) -> tuple[str, str | None]:
    try:
        return template.format_map(values), None
    except (KeyError, ValueError, IndexError) as exc:
        unknown = str(exc).strip("'\"")
        return template, (
            f"unknown placeholder {{{unknown}}}; use {{location}}, {{phone}} or {{appointment}}"
            if isinstance(exc, KeyError)
            else "a { or } without its pair; write placeholders like {location}"
        )


def previews(location_name: str, phone: str, form: Form) -> list[Preview]:
    """Each template as the patient would get it, with its encoding and segment count.
    The first texts end with the opt-out wording unless they already mention STOP."""
    values = {"location": location_name, "phone": phone, "appointment": SAMPLE_APPOINTMENT}
    suffix = str(form.get("messages.opt_out_suffix", "")).strip()
    found: list[Preview] = []
    variants = [
        line.strip()
        for line in str(form.get("messages.textback_variants", "")).splitlines()
        if line.strip()
    ]
    entries: list[tuple[str, str, str, str]] = [
        (name, label, kind, str(form.get(f"messages.{name}", "")).strip())
        for name, label, kind in TEMPLATE_FIELDS
    ]
    entries[1:1] = [
        (f"textback_variants.{i}", f"Text-back, variant {i + 1}", "text", text)
        for i, text in enumerate(variants)
    ]
    for name, label, kind, text in entries:
        body, error = _fill(text, values)
        first_text = name.startswith(("textback", "appointment_textback"))
        if first_text and suffix and "stop" not in body.lower():
            body = f"{body} {suffix}"
        if kind == "voice":
            found.append(Preview(name, label, kind, body, error, None, 0, len(body)))
            continue
        encoding, count = message_segments(body) if body else ("GSM-7", 0)
        found.append(Preview(name, label, kind, body, error, encoding, count, len(body)))
    return found


@dataclass(frozen=True)
class ReplySample:
    name: str
    language: str
    body: str
    encoding: Encoding
    segments: int


def reply_samples(
    location_name: str, phone: str, wording: Mapping[Any, Mapping[str, str]]
) -> list[ReplySample]:
    """The bot's own replies in each language, filled in for this location."""
    values = {
        "location": location_name,
        "phone": phone,
        "treatment": "Botox",
        "price": "",
        "name": "",
        "booking_link": "https://glow.example/b/Xy12",
    }
    samples = []
    for language, texts in wording.items():
        for name, template in texts.items():
            body = " ".join(template.format_map(_Blank(values)).split())
            encoding, count = message_segments(body)
            samples.append(ReplySample(name, language, body, encoding, count))
    return samples


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


# --- errors back onto the form ------------------------------------------------------


def field_errors(
    issues: Sequence[tuple[tuple[int | str, ...], str]],
    location_index: int,
    parsed: Parsed,
    fields: set[str],
) -> dict[str, str]:
    """Each validation problem keyed by the form field it belongs to ("" for the form)."""
    errors: dict[str, str] = {}
    for loc, message in issues:
        path = [str(part) for part in loc]
        if path[:2] == ["locations", str(location_index)]:
            path = path[2:]
        elif path and path[0] == "locations":
            path = []  # another location's problem (a number used twice): the whole form
        if len(path) >= 2 and path[0] in parsed.rows and path[1].isdigit():
            origin = parsed.rows[path[0]]
            index = int(path[1])
            path[1] = str(origin[index]) if index < len(origin) else path[1]
        day = re.match(r"^(mon|tue|wed|thu|fri|sat|sun): (.*)$", message, re.S)
        if path and path[-1] == "hours" and day:
            path.append(day.group(1))
            message = day.group(2)
        key = ""
        for end in range(len(path), 0, -1):
            candidate = ".".join(path[:end])
            if candidate in fields:
                key = candidate
                break
        if not key and not path:
            named = re.match(r"^(phone_number|\w+)\b", message)
            if named and named.group(1) in fields:
                key = named.group(1)
        errors[key] = f"{errors[key]}; {message}" if key in errors else message
    return errors
