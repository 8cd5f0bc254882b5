"""How an appointment stands, in one word staff read everywhere (calendar, conversation,
patient page, JSON API): ``unconfirmed``, ``confirmed`` or ``cancelled`` (and ``held`` /
``expired`` for a booking-page hold); after the visit, ``kept`` or ``no_show`` when staff
marked it. Later features (the waitlist, rebooking) read the same words."""

from __future__ import annotations

from typing import Literal

from ringback.models import Appointment

Confirmation = Literal["unconfirmed", "confirmed", "cancelled", "held", "expired"]
LABELS = {
    "unconfirmed": "Unconfirmed",
    "confirmed": "Confirmed",
    "cancelled": "Cancelled",
    "held": "Held",
    "expired": "Expired",
    "kept": "Kept",
    "no_show": "No-show",
}


def confirmation(appointment: Appointment) -> Confirmation:
    """Unconfirmed until the patient confirms (by text, after the booking or a reminder)."""
    if appointment.status == "cancelled":
        return "cancelled"
    if appointment.status in ("held", "expired"):
        return appointment.status  # type: ignore[return-value]
    return "confirmed" if appointment.confirmed_at is not None else "unconfirmed"


def label(appointment: Appointment) -> str:
    """``Confirmed``, ``Unconfirmed · No-show`` ...: the status with the attendance, if marked."""
    text = LABELS[confirmation(appointment)]
    if appointment.attendance:
        text += f" · {LABELS.get(appointment.attendance, appointment.attendance)}"
    return text
