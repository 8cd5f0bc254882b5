"""How a slot reads in a text or on the booking page, in the location's zone."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

_EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ES_DAYS = ("lun", "mar", "mié", "jue", "vie", "sáb", "dom")
_ES_MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sep", "oct", "nov", "dic")


def when(start: datetime, zone: ZoneInfo, language: str = "en") -> str:
    """``Tue Dec 1 at 3:00pm`` / ``mar 1 dic a las 15:00`` in the location's zone."""
    local = start.astimezone(zone)
    if language == "es":
        day = f"{_ES_DAYS[local.weekday()]} {local.day} {_ES_MONTHS[local.month - 1]}"
        return f"{day} a las {local:%H:%M}"
    hour = local.hour % 12 or 12
    suffix = "am" if local.hour < 12 else "pm"
    day = f"{_EN_DAYS[local.weekday()]} {_EN_MONTHS[local.month - 1]} {local.day}"
    return f"{day} at {hour}:{local.minute:02d}{suffix}"


def slot_label(start: datetime, zone: ZoneInfo, provider: str | None, language: str = "en") -> str:
    text = when(start, zone, language)
    if provider:
        text += f" {'con' if language == 'es' else 'with'} {provider}"
    return text
