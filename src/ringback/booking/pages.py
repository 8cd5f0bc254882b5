"""Ringback's own booking page: the signed, expiring link texted to a patient.

``GET /book/{token}`` lists real free times for a treatment; choosing one holds it
(``POST .../hold``), the confirm step shows what was held and books it
(``POST .../confirm/{id}``), and the thread then confirms by text and closes as booked
(:func:`ringback.conversation.service.book_from_page`).

The link is the credential: nobody signs in. Forms carry a token derived from the link
(HMAC with the deployment's secret), so a form posted from anywhere else is refused.
Every field is checked here, at the edge, before anything is written; a bad link or a
bad field is a page that says what was wrong, never a 500.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session

from ringback.booking import links
from ringback.booking import service as booking
from ringback.booking.availability import BusyIndex, Slot, bookable_providers, is_bookable
from ringback.config import Location, Provider, Service
from ringback.conversation.service import book_from_page
from ringback.db import transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import Appointment, Conversation, Patient
from ringback.phones import display as display_phone
from ringback.readable import clock, when
from ringback.readable import day as readable_day
from ringback.web import deps_of, row_id_of

log = logging.getLogger(__name__)

router = APIRouter(prefix="/book", tags=["booking page"], include_in_schema=False)

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)
# Days with free times shown at once; "Later dates" pages on from the last one.
DAYS_SHOWN = 3
# The link must not travel in a Referer header, and the page must not be cached or indexed.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
}

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "lang": "en",
        "book_at": "Book at {location}",
        "treatment": "Treatment",
        "with": "With",
        "anyone": "Anyone available",
        "show_times": "Show times",
        "pick_time": "Pick a time",
        "no_times": "No free times on these days.",
        "later": "Later dates",
        "soonest": "Soonest times",
        "taken": "That time was just taken — pick another.",
        "not_online": "{service} can't be booked online — pick a treatment, or call {phone}.",
        "confirm_title": "Confirm your booking",
        "held": "We're holding this time for you for {minutes} minutes (until {until}).",
        "lapsed": "Your hold has lapsed: confirm to book it if it's still free.",
        "confirm": "Confirm booking",
        "pick_another": "Pick another time",
        "booked_title": "You're booked",
        "booked_text": "We've texted you the details. See you soon!",
        "already_title": "You're already booked",
        "change": "To change it, reply to our text or call {phone}.",
        "when": "When",
        "where": "Where",
        "provider": "With",
        "prep": "Before you come",
        "invalid_title": "This link isn't valid",
        "invalid_text": "Please use the link from our text, or call {phone}.",
        "expired_title": "This link has expired",
        "expired_text": "Booking links work for {days} days. Call or text {phone} "
        "and we'll find you a time.",
        "cancelled_title": "This booking was cancelled",
        "cancelled_text": "Pick a new time, or call {phone}.",
        "problem_title": "Something in that form was wrong",
        "reload": "Please go back to the times and try again, or call {phone}.",
        "closed_title": "Online booking isn't available",
        "closed_text": "Call or text {phone} and we'll find you a time.",
        "withdrawn_title": "This link no longer works",
        "withdrawn_text": "Nothing was booked. To book, call {phone}.",
    },
    "es": {
        "lang": "es",
        "book_at": "Reserve en {location}",
        "treatment": "Tratamiento",
        "with": "Con",
        "anyone": "Cualquier profesional",
        "show_times": "Ver horarios",
        "pick_time": "Elija un horario",
        "no_times": "No hay horarios libres estos días.",
        "later": "Más adelante",
        "soonest": "Primeros horarios",
        "taken": "Ese horario se acaba de ocupar: elija otro.",
        "not_online": "{service} no se reserva en línea: elija un tratamiento o llame al {phone}.",
        "confirm_title": "Confirme su cita",
        "held": "Le guardamos este horario {minutes} minutos (hasta las {until}).",
        "lapsed": "Su reserva temporal venció: confirme para reservarla si sigue libre.",
        "confirm": "Confirmar cita",
        "pick_another": "Elegir otro horario",
        "booked_title": "Su cita está reservada",
        "booked_text": "Le enviamos los detalles por mensaje. ¡Hasta pronto!",
        "already_title": "Ya tiene una cita",
        "change": "Para cambiarla, responda a nuestro mensaje o llame al {phone}.",
        "when": "Cuándo",
        "where": "Dónde",
        "provider": "Con",
        "prep": "Antes de venir",
        "invalid_title": "Este enlace no es válido",
        "invalid_text": "Use el enlace de nuestro mensaje, o llame al {phone}.",
        "expired_title": "Este enlace ha vencido",
        "expired_text": "Los enlaces de reserva duran {days} días. Llame o escriba al {phone} "
        "y le buscamos un horario.",
        "cancelled_title": "Esta cita fue cancelada",
        "cancelled_text": "Elija un horario nuevo, o llame al {phone}.",
        "problem_title": "Algo en el formulario no es correcto",
        "reload": "Vuelva a los horarios e inténtelo de nuevo, o llame al {phone}.",
        "closed_title": "La reserva en línea no está disponible",
        "closed_text": "Llame o escriba al {phone} y le buscamos un horario.",
        "withdrawn_title": "Este enlace ya no funciona",
        "withdrawn_text": "No se reservó nada. Para reservar, llame al {phone}.",
    },
}


class PageProblem(Exception):
    """An expected failure, answered with a page that names it (never a 500)."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        *,
        location: Location | None = None,
        language: str = "en",
        back: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.location = location
        self.language = language
        self.back = back


@dataclass(frozen=True)
class Link:
    """An opened booking link: whose thread, at which location, in which language."""

    token: str
    conversation: Conversation
    location: Location
    text: dict[str, str]

    @property
    def url(self) -> str:
        return f"/book/{self.token}"

    @property
    def phone(self) -> str:
        return display_phone(self.location.phone_number)

    def problem(self, status: int, title_key: str, message: str) -> PageProblem:
        return PageProblem(
            status,
            self.text[title_key],
            message,
            location=self.location,
            language=self.text["lang"],
            back=self.url,
        )

    def bad_field(self, message: str, status: int = 400) -> PageProblem:
        """A form field that was wrong: named, with the value, and nothing written."""
        log_event(log, "booking_page.bad_field", conversation_id=self.conversation.id)
        return self.problem(status, "problem_title", message)


# --- routes -------------------------------------------------------------------------------


@router.get("/{token}", response_class=HTMLResponse)
def booking_page(
    request: Request,
    token: str,
    service: str = "",
    day: str = "",
    provider: str = "",
    part: str = "",
) -> Response:
    """The free times for a treatment, by day; each time is a button that holds it."""
    deps = deps_of(request)
    try:
        with transaction(deps.sessions) as session:
            link = _open(session, deps, token)
            if link.location.booking_url and not link.location.schedules:
                # The clinic moved to an outside booking system after this link was sent.
                query = urlencode({"service": service}) if service else ""
                base = link.location.booking_url
                target = f"{base}{'&' if '?' in base else '?'}{query}" if query else base
                return RedirectResponse(target, status_code=303, headers=HEADERS)
            booked = booking.conversation_booking(session, link.conversation.id)
            if booked is not None:
                return _appointment_page(link, booked, "already")
            return _times_page(session, deps, link, service, day, provider, part=part)
    except PageProblem as problem:
        return _problem_page(problem)


@router.post("/{token}/hold", response_class=HTMLResponse)
def hold(
    request: Request,
    token: str,
    csrf_token: Annotated[str, Form()] = "",
    service: Annotated[str, Form()] = "",
    start: Annotated[str, Form()] = "",
    provider_id: Annotated[str, Form()] = "",
    room_id: Annotated[str, Form()] = "",
) -> Response:
    """Hold the chosen time for ``booking.hold_minutes`` while the patient confirms."""
    deps = deps_of(request)
    try:
        with transaction(deps.sessions) as session:
            link = _open(session, deps, token, lock=True)
            _check_form(deps, link, csrf_token)
            location = link.location
            chosen = _posted_service(link, service)
            slot = _posted_slot(deps, link, chosen, start, provider_id, room_id)
            booked = booking.conversation_booking(session, link.conversation.id)
            if booked is not None:
                return _appointment_page(link, booked, "already", status=409)
            patient = _patient(session, link)
            booking.release_holds(session, link.conversation.id)
            appointment = booking.reserve(
                session,
                deps,
                location,
                chosen,
                patient,
                slot,
                source="page",
                conversation_id=link.conversation.id,
                hold=True,
            )
            if appointment is None:
                day = slot.start.astimezone(location.zone).date().isoformat()
                return _times_page(
                    session,
                    deps,
                    link,
                    chosen.name,
                    day,
                    "",
                    notice=link.text["taken"],
                    status=409,
                )
            appointment_id = appointment.id
    except PageProblem as problem:
        return _problem_page(problem)
    return RedirectResponse(
        f"/book/{token}/confirm/{appointment_id}", status_code=303, headers=HEADERS
    )


@router.get("/{token}/confirm/{appointment_id}", response_class=HTMLResponse)
def confirm_page(request: Request, token: str, appointment_id: str) -> Response:
    """What is held (with a Confirm button), or what was booked."""
    deps = deps_of(request)
    try:
        with transaction(deps.sessions) as session:
            link = _open(session, deps, token)
            appointment = _appointment(session, link, appointment_id)
            if appointment.status == "booked":
                return _appointment_page(link, appointment, "booked")
            if appointment.status not in ("held", "expired"):
                raise link.problem(
                    404, "cancelled_title", link.text["cancelled_text"].format(phone=link.phone)
                )
            booked = booking.conversation_booking(session, link.conversation.id)
            if booked is not None:
                return _appointment_page(link, booked, "already")
            return _appointment_page(
                link,
                appointment,
                "held",
                csrf_token=_form_token(deps, link.token),
                now=deps.clock(),
            )
    except PageProblem as problem:
        return _problem_page(problem)


@router.post("/{token}/confirm/{appointment_id}", response_class=HTMLResponse)
def confirm(
    request: Request,
    token: str,
    appointment_id: str,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    """Book the held time; the thread texts the confirmation and closes as booked."""
    deps = deps_of(request)
    try:
        with transaction(deps.sessions) as session:
            link = _open(session, deps, token, lock=True)
            _check_form(deps, link, csrf_token)
            appointment = _appointment(session, link, appointment_id)
            done = f"/book/{token}/confirm/{appointment.id}"
            if appointment.status == "booked":  # a second click, or a refresh
                return RedirectResponse(done, status_code=303, headers=HEADERS)
            booked = booking.conversation_booking(session, link.conversation.id)
            if booked is not None:
                return _appointment_page(link, booked, "already", status=409)
            if appointment.status not in ("held", "expired"):
                raise link.problem(
                    409, "cancelled_title", link.text["cancelled_text"].format(phone=link.phone)
                )
            confirmed = booking.confirm_hold(session, deps, link.location, appointment)
            if confirmed is None:
                day = appointment.starts_at.astimezone(link.location.zone).date().isoformat()
                log_event(log, "booking_page.hold_lost", conversation_id=link.conversation.id)
                return _times_page(
                    session,
                    deps,
                    link,
                    appointment.service,
                    day,
                    "",
                    notice=link.text["taken"],
                    status=409,
                )
            booking.release_holds(session, link.conversation.id, keep=confirmed.id)
            patient = _patient(session, link)
            book_from_page(session, deps, link.location, link.conversation, patient, confirmed)
            log_event(
                log,
                "booking_page.booked",
                location=link.location.id,
                conversation_id=link.conversation.id,
                appointment_id=confirmed.id,
            )
    except PageProblem as problem:
        return _problem_page(problem)
    return RedirectResponse(done, status_code=303, headers=HEADERS)


# --- opening the link and checking the form -------------------------------------------------


def _open(session: Session, deps: Deps, token: str, *, lock: bool = False) -> Link:
    """The thread behind ``token``; 404 when altered or gone, 410 when expired."""
    try:
        if not token.isascii():  # compare_digest refuses non-ASCII text with a TypeError
            raise links.BadLink("not a booking link")
        conversation_id = links.read_booking_token(deps.link_secret, token, deps.clock())
    except links.BadLink as exc:
        if not exc.expired:
            log_event(log, "booking_page.bad_link", logging.WARNING)
            raise PageProblem(
                404, TEXT["en"]["invalid_title"], "Please use the link from our text."
            ) from exc
        # The signature was good (expiry is checked after it): the id can be trusted.
        expired = session.get(Conversation, int(token.split(".", 1)[0]))
        location = deps.locations.get(expired.location_id) if expired is not None else None
        text = TEXT.get(expired.language if expired else "en", TEXT["en"])
        message = (
            text["expired_text"].format(
                days=location.booking.link_days, phone=display_phone(location.phone_number)
            )
            if location is not None
            else "Please call the clinic and they'll find you a time."
        )
        raise PageProblem(
            410, text["expired_title"], message, location=location, language=text["lang"]
        ) from exc
    conversation = session.get(Conversation, conversation_id, with_for_update=lock)
    location = deps.locations.get(conversation.location_id) if conversation else None
    if conversation is None or location is None:
        raise PageProblem(
            404, TEXT["en"]["invalid_title"], "This booking link is no longer in use."
        )
    text = TEXT.get(conversation.language, TEXT["en"])
    patient = session.get(Patient, conversation.patient_id)
    if (
        patient is None
        or patient.deleted_at is not None
        or patient.opted_out_at is not None
        or conversation.close_reason in ("deleted", "opted_out")
    ):
        # Their data was deleted on request, or they asked us to stop: the link must not
        # book (or text a confirmation to) someone who is no longer ours to contact.
        log_event(log, "booking_page.link_withdrawn", conversation_id=conversation.id)
        raise PageProblem(
            410,
            text["withdrawn_title"],
            text["withdrawn_text"].format(phone=display_phone(location.phone_number)),
            location=location,
            language=text["lang"],
        )
    return Link(token, conversation, location, text)


def _form_token(deps: Deps, token: str) -> str:
    return hmac.new(deps.link_secret, f"book-form:{token}".encode(), hashlib.sha256).hexdigest()


def _check_form(deps: Deps, link: Link, sent: str) -> None:
    expected = _form_token(deps, link.token)
    if not sent.isascii() or not hmac.compare_digest(sent, expected):
        log_event(
            log, "booking_page.csrf_rejected", logging.WARNING, conversation_id=link.conversation.id
        )
        raise link.bad_field(
            "csrf_token: missing or not from this booking page; go back and try again", 403
        )


def _bookable(location: Location) -> list[Service]:
    return [s for s in location.services if not s.consult and bookable_providers(location, s)]


def _posted_service(link: Link, name: str) -> Service:
    service = link.location.service_named(name) if name else None
    if service is None or service not in _bookable(link.location):
        raise link.bad_field(
            f"service: no treatment named {name[:80]!r} can be booked at {link.location.name}"
        )
    return service


def _posted_slot(
    deps: Deps, link: Link, service: Service, start: str, provider_id: str, room_id: str
) -> Slot:
    location = link.location
    starts_at = _instant(start)
    if starts_at is None:
        raise link.bad_field(
            f"start: expected a time like 2026-11-26T23:00:00+00:00, got {start[:40]!r}"
        )
    provider = location.find_provider(provider_id)
    if provider is None:
        raise link.bad_field(f"provider_id: no provider {provider_id[:40]!r} at {location.name}")
    if not provider.performs(service.name):
        raise link.bad_field(f"provider_id: {provider.name} does not do {service.name}")
    fitting = [r for r in location.rooms if r.fits(service.name)]
    room = location.find_room(room_id) if room_id else None
    if (room_id and (room is None or not room.fits(service.name))) or (fitting and room is None):
        raise link.bad_field(
            f"room_id: {room_id[:40]!r} is not a room for {service.name} at {location.name}"
        )
    slot = Slot(
        starts_at, starts_at + timedelta(minutes=service.minutes), provider.id, room_id or None
    )
    # Is it a time this location offers at all (hours, grid, lead time, horizon)? Whether
    # it is still free is decided under the lock, by reserve().
    now = deps.clock()
    horizon = now + timedelta(days=location.booking.horizon_days + 1)
    if not now <= slot.start <= horizon or not is_bookable(
        location, service, slot, now, BusyIndex()
    ):
        raise link.bad_field(
            f"start: {start[:40]!r} is not a time we offer for {service.name} with {provider.name}"
        )
    return slot


def _instant(text: str) -> datetime | None:
    """An aware ISO 8601 time as UTC; None when malformed, naive, or beyond UTC's range."""
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None


def _appointment(session: Session, link: Link, appointment_id: str) -> Appointment:
    row_id = row_id_of(appointment_id)
    appointment = session.get(Appointment, row_id) if row_id is not None else None
    if (
        appointment is None
        or appointment.conversation_id != link.conversation.id
        or appointment.location_id != link.location.id
    ):
        raise link.bad_field(
            f"appointment: no booking {appointment_id[:20]!r} for this link", status=404
        )
    return appointment


def _patient(session: Session, link: Link) -> Patient:
    patient = session.get(Patient, link.conversation.patient_id)
    if patient is None:
        raise PageProblem(
            404, TEXT["en"]["invalid_title"], "This booking link is no longer in use."
        )
    return patient


# --- pages ------------------------------------------------------------------------------------


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = TEMPLATES.get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _problem_page(problem: PageProblem) -> HTMLResponse:
    location = problem.location
    return _render(
        "booking/problem.html",
        problem.status,
        t=TEXT.get(problem.language, TEXT["en"]),
        title=problem.title,
        message=problem.message,
        location=location,
        phone=display_phone(location.phone_number) if location else "",
        back=problem.back,
    )


def _times_page(
    session: Session,
    deps: Deps,
    link: Link,
    service_name: str,
    day_text: str,
    provider_id: str,
    *,
    notice: str | None = None,
    status: int = 200,
    part: str = "",
) -> HTMLResponse:
    location, t = link.location, link.text
    if part and part not in links.PARTS_OF_DAY:
        raise link.bad_field(f"part: expected {', '.join(links.PARTS_OF_DAY)}, got {part[:20]!r}")
    bookable = _bookable(location)
    if not bookable:
        raise link.problem(404, "closed_title", t["closed_text"].format(phone=link.phone))
    now = deps.clock()
    service = location.service_named(service_name) if service_name else None
    if service_name and (service is None or service not in bookable):
        notice = notice or t["not_online"].format(service=service_name[:80], phone=link.phone)
    if service is None or service not in bookable:
        treatment = location.service_named(link.conversation.treatment or "")
        service = treatment if treatment in bookable else bookable[0]
    assert service is not None
    providers = bookable_providers(location, service)
    provider: Provider | None = None
    if provider_id:
        provider = next((p for p in providers if p.id == provider_id), None)
        if provider is None:
            raise link.bad_field(
                f"provider: no provider {provider_id[:40]!r} for {service.name} at {location.name}"
            )
    today = now.astimezone(location.zone).date()
    last = today + timedelta(days=location.booking.horizon_days)
    first = _day(link, day_text, today, last)
    days: list[dict[str, Any]] = []
    current = first
    outside = booking.read_outside_days(deps, location, service, first, last)
    while len(days) < DAYS_SHOWN and current <= last:
        slots = booking.day_slots(
            session,
            location,
            service,
            current,
            now,
            provider_id=provider.id if provider else None,
            outside=outside,
        )
        if slots:
            rows = _slot_rows(slots, link)
            if part and current == first:
                # The patient asked for this part of this day: the page opens there.
                asked = next(
                    (
                        r
                        for s, r in zip(slots, rows, strict=True)
                        if links.part_of_day(s.start.astimezone(location.zone)) == part
                    ),
                    None,
                )
                if asked is not None:
                    asked["asked"] = "yes"
            days.append({"label": _day_label(current, location, t["lang"]), "slots": rows})
        current += timedelta(days=1)
    base_query = {"service": service.name, **({"provider": provider.id} if provider else {})}
    later = (
        f"{link.url}?{urlencode({**base_query, 'day': current.isoformat()})}"
        if current <= last
        else None
    )
    soonest = f"{link.url}?{urlencode(base_query)}" if first > today else None
    return _render(
        "booking/times.html",
        status,
        t=t,
        location=location,
        phone=link.phone,
        url=link.url,
        services=bookable,
        service=service,
        providers=providers,
        provider=provider,
        days=days,
        later=later,
        soonest=soonest,
        notice=notice,
        csrf_token=_form_token(deps, link.token),
    )


def _day(link: Link, text: str, today: date, last: date) -> date:
    if not text:
        return today
    try:
        day = date.fromisoformat(text) if len(text) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise link.bad_field(f"day: expected a date like 2026-11-26, got {text[:20]!r}")
    if not today <= day <= last:
        raise link.bad_field(
            f"day: {text} is not within the next {link.location.booking.horizon_days} days"
        )
    return day


def _slot_rows(slots: list[Slot], link: Link) -> list[dict[str, str]]:
    location = link.location
    rows = []
    for slot in slots:
        provider = location.find_provider(slot.provider_id)
        rows.append(
            {
                "start": slot.start.astimezone(UTC).isoformat(),
                "time": _time_label(slot.start, location, link.text["lang"]),
                "provider_id": slot.provider_id,
                "provider": provider.name if provider else "",
                "room_id": slot.room_id or "",
            }
        )
    return rows


def _appointment_page(
    link: Link,
    appointment: Appointment,
    stage: str,
    *,
    status: int = 200,
    csrf_token: str = "",
    now: datetime | None = None,
) -> HTMLResponse:
    """The held (confirm step), booked, or already-booked appointment."""
    location, t = link.location, link.text
    service = location.service_named(appointment.service)
    lapsed = False
    until = ""
    if stage == "held":
        expires = appointment.hold_expires_at
        lapsed = (
            appointment.status != "held" or expires is None or (now is not None and expires <= now)
        )
        if expires is not None:
            until = _time_label(expires, location, t["lang"])
    title = {"held": "confirm_title", "booked": "booked_title", "already": "already_title"}[stage]
    return _render(
        "booking/appointment.html",
        status,
        t=t,
        stage=stage,
        title=t[title],
        location=location,
        phone=link.phone,
        url=link.url,
        appointment=appointment,
        when=when(appointment.starts_at, location.zone, t["lang"]),
        provider=appointment.provider_name,
        prep=service.prep_note if service else None,
        held=t["held"].format(minutes=location.booking.hold_minutes, until=until),
        lapsed=lapsed,
        csrf_token=csrf_token,
        confirm_url=f"{link.url}/confirm/{appointment.id}",
        back=f"{link.url}?{urlencode({'service': appointment.service})}",
    )


def _time_label(moment: datetime, location: Location, language: str) -> str:
    return clock(moment.astimezone(location.zone), "text", language)


def _day_label(day: date, location: Location, language: str) -> str:
    return readable_day(datetime(day.year, day.month, day.day, 12, tzinfo=location.zone), language)
