"""How a moment reads for people: in texts, on pages, in staff alerts. One home, so a
time reads the same wherever a patient or a member of staff meets it.

Always in the location's zone (the caller passes it). Two registers:

* ``text`` (texts to patients, the booking page): ``Tue Dec 1 at 3:00pm``, in Spanish
  ``mar 1 dic a las 15:00``;
* ``page`` (staff pages and alerts): ``Tue Dec 1, 3:00 PM``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

Register = Literal["text", "page"]

_EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ES_DAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
_ES_MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")


def day(moment: datetime, language: str = "en") -> str:
    """``Tue Dec 1`` / ``mar 1 dic`` (the moment is already in the zone to show)."""
    if language == "es":
        return f"{_ES_DAYS[moment.weekday()]} {moment.day} {_ES_MONTHS[moment.month - 1]}"
    return f"{_EN_DAYS[moment.weekday()]} {_EN_MONTHS[moment.month - 1]} {moment.day}"


def clock(moment: datetime, register: Register = "page", language: str = "en") -> str:
    """``3:00 PM`` on pages, ``3:00pm`` in texts, ``15:00`` in Spanish."""
    if language == "es":
        return f"{moment:%H:%M}"
    hour = moment.hour % 12 or 12
    if register == "text":
        return f"{hour}:{moment.minute:02d}{'am' if moment.hour < 12 else 'pm'}"
    return f"{hour}:{moment.minute:02d} {'AM' if moment.hour < 12 else 'PM'}"


def when(start: datetime, zone: ZoneInfo, language: str = "en", register: Register = "text") -> str:
    """A day and a time: ``Tue Dec 1 at 3:00pm`` / ``mar 1 dic a las 15:00`` in texts,
    ``Tue Dec 1, 3:00 PM`` on pages."""
    local = start.astimezone(zone)
    if register == "page":
        return f"{day(local, language)}, {clock(local, 'page', language)}"
    joiner = " a las " if language == "es" else " at "
    return f"{day(local, language)}{joiner}{clock(local, 'text', language)}"


def slot_label(start: datetime, zone: ZoneInfo, provider: str | None, language: str = "en") -> str:
    """An offered slot in a text: ``Thu Nov 26 at 3:00pm with Anna``."""
    text = when(start, zone, language)
    if provider:
        text += f" {'con' if language == 'es' else 'with'} {provider}"
    return text
