"""The clinic's own booking system (Google Calendar, Square Appointments) in the booking flow.

A location with ``booking_system: google_calendar`` or ``square`` is read for offers and
written under the booking lock (docs/booking-systems.md):

* **Offers** read the system live: Google's free/busy per provider calendar (Ringback
  computes the slots), Square's computed availability (Ringback offers only the starts
  Square gives). A system that cannot be read falls back to the busy time the sweep read
  last (:func:`refresh_busy`), like a CalDAV calendar.
* **Booking** writes to the system inside the transaction that holds the slot's lock row,
  so exactly one booking per slot holds across both: a :class:`BookingConflict` rolls the
  local booking back (the patient hears "that time was just taken" with new times); a
  :class:`BookingSystemUnavailable` keeps the booking and leaves its sync row (calendar
  key :data:`SYSTEM_KEY`) pending, so the calendar-sync job and the sweep retry it and
  Staff → Calendar shows it, exactly as for a CalDAV write.
* **Cancelling** marks that row pending again; the job cancels the booking there.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ringback.booking import credentials
from ringback.config import Location, Service, Settings
from ringback.db import after_commit, transaction
from ringback.deps import Deps
from ringback.logs import log_event
from ringback.models import (
    Appointment,
    BookingSystemCredential,
    CalendarRead,
    CalendarSync,
    ExternalBusy,
    Patient,
)
from ringback.ports import (
    BookingConflict,
    BookingSystem,
    BookingSystemCapabilities,
    BookingSystemUnavailable,
    ExternalBooking,
    ExternalBookingRef,
)

log = logging.getLogger(__name__)

# The calendar_syncs key of an appointment's booking in the clinic's booking system.
SYSTEM_KEY = "booking-system"
# ExternalBusy rows read from a booking system: "system:<provider id>".
BUSY_PREFIX = "system:"
READ_EVERY = timedelta(minutes=5)
OUTSIDE_SYSTEMS = ("google_calendar", "square")
SYSTEM_NAMES = {"google_calendar": "Google Calendar", "square": "Square"}

# What each system can do, for check-config and the docs (the adapters say the same;
# a test holds them to it).
CAPABILITIES: dict[str, BookingSystemCapabilities] = {
    "google_calendar": BookingSystemCapabilities(
        knows_services=False,
        knows_staff=False,
        offers_availability=False,
        push_notifications=True,
        incremental_sync=True,
    ),
    "square": BookingSystemCapabilities(
        knows_services=True,
        knows_staff=True,
        offers_availability=True,
        push_notifications=True,
        incremental_sync=False,
    ),
}


def uses_system(location: Location) -> bool:
    return location.booking_system in OUTSIDE_SYSTEMS


def describe(location: Location) -> str:
    """One line for ``check-config``: the location's booking system and what it can do."""
    system = location.booking_system
    if system == "ringback":
        return "booking system ringback: Ringback's own appointments (slots from providers' hours)"
    if system == "caldav":
        return (
            "booking system caldav: busy-only calendars; Ringback computes slots, writes "
            "events, re-reads busy time every 5 minutes (no push, no incremental sync)"
        )
    caps = CAPABILITIES[system]
    can = [
        "computes slots itself"
        if caps.offers_availability
        else "busy-only (Ringback computes slots)",
        "knows services and staff" if caps.knows_services else "no services or staff",
        "push changes" if caps.push_notifications else "no push",
        "incremental sync" if caps.incremental_sync else "no incremental sync (re-reads)",
    ]
    return f"booking system {system}: " + ", ".join(can)


# --- opening the system --------------------------------------------------------------------


class OpenBookingSystems:
    """Opens a location's booking system from its config and its sealed credential.

    Credentials are read into memory when this is built and again by every sweep
    (:meth:`reload`), never while a booking holds its transaction (on SQLite a second
    session there would wait for the first). A ``ringback calendars connect google`` on a
    running install so takes effect within a sweep. Access tokens are cached per location
    (Google's live an hour); each operation gets its own connection, closed after it.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        secret: bytes,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.secret = secret
        self.clock = clock
        self._lock = threading.Lock()
        self._stored: dict[tuple[str, str], str] = {}  # (location, system) -> sealed
        self._tokens: dict[str, Any] = {}
        self.reload()

    def reload(self) -> None:
        """Read the sealed credentials again (outside any transaction)."""
        from sqlalchemy.exc import SQLAlchemyError

        try:
            with self.sessions() as session:
                rows = {
                    (row.location_id, row.system): row.sealed
                    for row in session.scalars(select(BookingSystemCredential))
                }
        except SQLAlchemyError:
            return  # not migrated yet: the first sweep after `db upgrade` reads them
        with self._lock:
            for key, sealed in rows.items():
                if self._stored.get(key) != sealed:
                    self._tokens.pop(key[0], None)  # reconnected: sign in anew
            self._stored = rows

    def credential(self, location_id: str, system: str) -> dict[str, Any] | None:
        with self._lock:
            sealed = self._stored.get((location_id, system))
        if sealed is None:
            return None
        try:
            return credentials.unseal(self.secret, sealed)
        except credentials.CredentialsUnreadable as exc:
            raise BookingSystemUnavailable(f"{system}: {exc}", retry=False) from exc

    def __call__(self, location: Location) -> BookingSystem | None:
        settings, timeout = self.settings, self.settings.send_timeout_seconds
        if location.booking_system == "google_calendar" and location.google_calendar:
            from ringback.integrations.google_calendar import GoogleCalendarBookingSystem

            google = location.google_calendar
            with self._lock:
                tokens = self._tokens.get(location.id)
                if tokens is None:
                    tokens = self._tokens[location.id] = self._google_tokens(location)
            calendars = sorted({c for p in location.providers if (c := google.calendar_for(p.id))})
            return GoogleCalendarBookingSystem(
                tokens,
                default_calendar=google.default_calendar or calendars[0],
                sync_calendars=calendars,
                api_base=settings.google_calendar_api_base_url,
                timeout=timeout,
                clock=self.clock,
            )
        if location.booking_system == "square" and location.square:
            from ringback.integrations.square import SquareBookingSystem

            square = location.square
            return SquareBookingSystem(
                lambda: self._square_token(location),
                square.location_id,
                base_url=square_base_url(settings, square.environment),
                timeout=timeout,
                clock=self.clock,
            )
        return None

    def _google_tokens(self, location: Location) -> Any:
        from ringback.integrations.google_calendar import GoogleOAuth, ServiceAccountCredentials

        settings = self.settings
        google = location.google_calendar
        assert google is not None
        if google.service_account_key_file:
            key = read_service_account_key(Path(google.service_account_key_file))
            return ServiceAccountCredentials(
                key["client_email"],
                rsa_signer(key["private_key"]),
                subject=google.subject,
                key_id=key.get("private_key_id"),
                token_url=settings.google_oauth_token_url,
                timeout=settings.send_timeout_seconds,
                clock=self.clock,
            ).provider()
        client_id, client_secret = google_client(settings, location)
        oauth = GoogleOAuth(
            client_id,
            client_secret,
            "",
            token_url=settings.google_oauth_token_url,
            timeout=settings.send_timeout_seconds,
            clock=self.clock,
        )
        refreshing: dict[str, Any] = {}

        def provider(*, force_refresh: bool = False) -> str:
            if "provider" not in refreshing:
                stored = self.credential(location.id, "google_calendar")
                if not stored or not stored.get("refresh_token"):
                    raise BookingSystemUnavailable(
                        "google: not connected (run ringback calendars connect google)",
                        retry=False,
                    )
                refreshing["provider"] = oauth.provider(str(stored["refresh_token"]))
            return str(refreshing["provider"](force_refresh=force_refresh))

        return provider

    def _square_token(self, location: Location) -> str:
        import os

        square = location.square
        assert square is not None
        stored = self.credential(location.id, "square")
        token = (stored or {}).get("access_token") or os.environ.get(square.access_token_env, "")
        if not token:
            raise BookingSystemUnavailable(
                f"square: no access token ({square.access_token_env} is not set)", retry=False
            )
        return str(token)

    def google_oauth(self, location: Location, redirect_uri: str) -> Any:
        """The OAuth client's code flow for ``location`` (the staff settings page)."""
        return google_oauth(self.settings, location, redirect_uri)

    def store(self, location_id: str, system: str, data: dict[str, Any]) -> None:
        """Seal and store a credential, and use it from now on."""
        with transaction(self.sessions) as session:
            credentials.save(session, self.secret, location_id, system, data, self.clock())
        self.reload()

    def connected(self, location_id: str, system: str) -> bool:
        with self._lock:
            return (location_id, system) in self._stored


def square_base_url(settings: Settings, environment: str) -> str:
    """Square's API address: ``SQUARE_API_BASE_URL`` (tests, a proxy), else production's or
    the sandbox's."""
    from ringback.integrations.square import SQUARE_API_BASE, SQUARE_SANDBOX_BASE

    if settings.square_api_base_url:
        return settings.square_api_base_url
    return SQUARE_SANDBOX_BASE if environment == "sandbox" else SQUARE_API_BASE


def reload_credentials(deps: Deps) -> None:
    """The sweep's re-read of the sealed credentials (none while no location uses a system)."""
    if isinstance(deps.booking_systems, OpenBookingSystems) and any(
        uses_system(location) for location in deps.locations
    ):
        deps.booking_systems.reload()


def google_oauth(settings: Settings, location: Location, redirect_uri: str) -> Any:
    """The authorization-code flow for ``location``'s OAuth client (a ``GoogleOAuth``), or
    None without one: the settings page and ``ringback calendars connect google`` share it."""
    from ringback.integrations.google_calendar import GoogleOAuth

    client_id, client_secret = google_client(settings, location)
    if not client_id or not client_secret:
        return None
    return GoogleOAuth(
        client_id,
        client_secret,
        redirect_uri,
        token_url=settings.google_oauth_token_url,
        timeout=settings.send_timeout_seconds,
    )


def google_client(settings: Settings, location: Location) -> tuple[str, str]:
    """The OAuth client: the location's own (``oauth_client_id`` and the secret's env
    variable), else ``GOOGLE_OAUTH_CLIENT_ID`` / ``GOOGLE_OAUTH_CLIENT_SECRET``."""
    import os

    google = location.google_calendar
    client_id = (google.oauth_client_id if google else None) or settings.google_oauth_client_id
    secret_env = google.oauth_client_secret_env if google else None
    client_secret = (
        os.environ.get(secret_env, "") if secret_env else settings.google_oauth_client_secret
    )
    return client_id, client_secret


def read_service_account_key(path: Path) -> dict[str, str]:
    """A Google service account's JSON key file; raise ValueError naming what is wrong."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON key file ({type(exc).__name__})") from exc
    for field in ("client_email", "private_key"):
        if not isinstance(data, dict) or not data.get(field):
            raise ValueError(f"{path}: the key file has no {field}")
    return {k: str(v) for k, v in data.items() if isinstance(v, str)}


def rsa_signer(private_key_pem: str) -> Callable[[bytes], bytes]:
    """RS256 (RSASSA-PKCS1-v1_5 with SHA-256) with the service account's private key."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = serialization.load_pem_private_key(private_key_pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the service account's private key is not an RSA key")

    def sign(data: bytes) -> bytes:
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    return sign


# --- reading for offers --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutsideTimes:
    """What the booking system said for one offer: busy intervals keyed like
    :class:`~ringback.booking.availability.BusyIndex` keys, and (Square) the only starts
    it allows per provider. ``None`` from :func:`read_outside`: use the cached busy time."""

    intervals: tuple[tuple[str, datetime, datetime], ...] = ()
    starts: dict[str, frozenset[datetime]] | None = None


# Under the lock: the system itself checks the slot when it is written, so the cached busy
# time (which may still hold our own cancelled events) is left out.
UNDER_LOCK = OutsideTimes()


def provider_refs(location: Location) -> dict[str, str]:
    """provider id -> the system's id for them (a calendar id, a team member id)."""
    if location.booking_system == "google_calendar" and location.google_calendar:
        google = location.google_calendar
        return {p.id: c for p in location.providers if (c := google.calendar_for(p.id))}
    if location.booking_system == "square" and location.square:
        return dict(location.square.team_members)
    return {}


def service_ref(location: Location, service: str) -> str | None:
    if location.booking_system == "square" and location.square:
        return location.square.variation_for(service)
    return None


def read_outside(
    deps: Deps, location: Location, service: Service, start: datetime, end: datetime
) -> OutsideTimes | None:
    """Read the system live for an offer; None (fall back to cached busy time) if it fails."""
    if not uses_system(location) or deps.booking_systems is None:
        return None
    system = deps.booking_systems(location)
    if system is None:
        return None
    refs = provider_refs(location)
    try:
        if system.capabilities.offers_availability:
            variation = service_ref(location, service.name)
            if variation is None:
                return OutsideTimes(starts={})
            by_member = {ref: pid for pid, ref in refs.items()}
            starts: dict[str, set[datetime]] = {}
            for slot in system.availability(start, end, variation, sorted(by_member)):
                pid = by_member.get(slot.provider_ref or "")
                if pid is not None:
                    starts.setdefault(pid, set()).add(slot.start)
            return OutsideTimes(starts={k: frozenset(v) for k, v in starts.items()})
        by_calendar: dict[str, list[str]] = {}
        for pid, ref in refs.items():
            by_calendar.setdefault(ref, []).append(pid)
        busy = system.busy(start, end, sorted(by_calendar))
        return OutsideTimes(
            intervals=tuple(
                (f"provider:{pid}", b.start, b.end)
                for b in busy
                for pid in by_calendar.get(b.uid, ())
            )
        )
    except BookingSystemUnavailable as exc:
        log_event(
            log,
            "booking_system.read_failed",
            logging.WARNING,
            location=location.id,
            detail=exc.detail,
        )
        return None
    finally:
        system.close()


def refresh_busy(deps: Deps, location: Location) -> int | None:
    """Re-read the system's busy time for the horizon into ExternalBusy (``system:<id>``),
    the fallback offers use while the system cannot be read. Returns the intervals kept."""
    if deps.booking_systems is None:
        return None
    system = deps.booking_systems(location)
    if system is None:
        return None
    now = deps.clock()
    refs = provider_refs(location)
    error: BookingSystemUnavailable | None = None
    try:
        busy = system.busy(
            now - timedelta(hours=12),
            now + timedelta(days=min(location.booking.horizon_days + 1, 31)),
            sorted(set(refs.values())),
        )
    except BookingSystemUnavailable as exc:
        busy, error = [], exc
    finally:
        system.close()
    with transaction(deps.sessions) as session:
        state = session.get(CalendarRead, (location.id, SYSTEM_KEY))
        if state is None:
            state = CalendarRead(location_id=location.id, calendar_key=SYSTEM_KEY)
            session.add(state)
        state.attempted_at = now
        if error is not None:
            state.last_error = error.detail[:300]
            return None
        state.read_at, state.last_error = now, None
        session.execute(
            delete(ExternalBusy).where(
                ExternalBusy.location_id == location.id,
                ExternalBusy.calendar_key.like(f"{BUSY_PREFIX}%"),
            )
        )
        rows = [
            ExternalBusy(
                location_id=location.id,
                calendar_key=f"{BUSY_PREFIX}{pid}",
                uid=b.uid[:300],
                starts_at=b.start,
                ends_at=b.end,
            )
            for b in busy
            for pid, ref in refs.items()
            if ref == b.uid
        ]
        session.add_all(rows)
        return len(rows)


# --- writing ---------------------------------------------------------------------------------


def external_booking(
    location: Location, appointment: Appointment, patient: Patient | None, ringback_ref: str
) -> ExternalBooking:
    """What the system is asked to hold: first name and service, never health details."""
    who = (patient.first_name if patient and patient.first_name else None) or "Patient"
    return ExternalBooking(
        ringback_id=ringback_ref,
        start=appointment.starts_at,
        end=appointment.ends_at,
        summary=f"{who} - {appointment.service}",
        note=f"Booked via Ringback (#{appointment.id})",
        provider_ref=provider_refs(location).get(appointment.provider_id or ""),
        service_ref=service_ref(location, appointment.service),
        customer_phone=patient.phone if patient else None,
        customer_given_name=patient.first_name if patient else None,
        customer_family_name=patient.last_name if patient else None,
    )


def write_under_lock(
    session: Session, deps: Deps, location: Location, appointment: Appointment
) -> None:
    """Book ``appointment`` in the system now, inside the transaction holding its lock.

    Raises :class:`BookingConflict` (the caller rolls the booking back). When the system
    is down the booking stays, and its sync row is left pending for the retry job.
    """
    if not uses_system(location) or deps.booking_systems is None:
        return
    now = deps.clock()
    row = CalendarSync(
        appointment_id=appointment.id,
        location_id=location.id,
        calendar_key=SYSTEM_KEY,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        ringback_ref=f"{appointment.id}.{secrets.token_hex(6)}",
    )
    session.add(row)
    session.flush()
    system = deps.booking_systems(location)
    if system is None:
        return
    patient = session.get(Patient, appointment.patient_id)
    booking = external_booking(location, appointment, patient, row.ringback_ref or "")
    try:
        ref = system.create(booking)
    except BookingConflict:
        log_event(log, "booking_system.slot_taken", location=location.id)
        raise
    except BookingSystemUnavailable as exc:
        _retry_later(session, deps, row, exc, now)
        return
    finally:
        system.close()
    row.status, row.external_ref, row.synced_at = "done", ref.external_id, now
    row.attempts, row.next_attempt_at, row.last_error = 1, None, None
    log_event(log, "booking_system.booked", location=location.id, appointment_id=appointment.id)


def _retry_later(
    session: Session, deps: Deps, row: CalendarSync, exc: BookingSystemUnavailable, now: datetime
) -> None:
    from ringback.booking.calendar_sync import retry_delay

    row.attempts = 1
    row.last_error = exc.detail[:300]
    if not exc.retry:
        row.status, row.next_attempt_at = "failed", None
        log_event(log, "booking_system.failed", logging.ERROR, detail=exc.detail)
        return
    delay = retry_delay(1)
    if exc.retry_after:
        delay = max(delay, timedelta(seconds=exc.retry_after))
    row.next_attempt_at = at = now + delay
    sync_id = row.id
    log_event(log, "booking_system.retrying", logging.WARNING, detail=exc.detail, sync_id=sync_id)
    after_commit(session, lambda: deps.jobs.sync_calendar(sync_id, at))


def queue_cancel(session: Session, deps: Deps, appointment: Appointment) -> None:
    """The appointment was cancelled here: cancel it in the system too (by the sync job)."""
    row = system_row(session, appointment.id)
    if row is None:
        return
    row.status, row.attempts, row.next_attempt_at, row.last_error = (
        "pending",
        0,
        deps.clock(),
        None,
    )
    session.flush()
    sync_id = row.id
    after_commit(session, lambda: deps.jobs.sync_calendar(sync_id))


def system_row(session: Session, appointment_id: int) -> CalendarSync | None:
    return session.scalars(
        select(CalendarSync).where(
            CalendarSync.appointment_id == appointment_id, CalendarSync.calendar_key == SYSTEM_KEY
        )
    ).first()


@dataclass(frozen=True, slots=True)
class SystemWrite:
    """One sync job's work on the system, read inside its first transaction."""

    live: bool
    booking: ExternalBooking
    external_ref: str | None


def prepare(
    location: Location, appointment: Appointment, patient: Patient | None, row: CalendarSync
) -> SystemWrite:
    return SystemWrite(
        live=appointment.status == "booked",
        booking=external_booking(location, appointment, patient, row.ringback_ref or ""),
        external_ref=row.external_ref,
    )


class TakenMeanwhile(Exception):
    """Written late (the system was down at booking time), the slot had been taken there."""


def carry_out(deps: Deps, location: Location, work: SystemWrite) -> str | None:
    """Make the system match the appointment; return its ref for the booking.

    Raises :class:`BookingSystemUnavailable`, or :class:`TakenMeanwhile` for a late write
    whose slot is gone (staff call the patient; the booking stays in Ringback).
    """
    system = deps.booking_systems(location) if deps.booking_systems else None
    if system is None:
        raise BookingSystemUnavailable("booking system no longer configured", retry=False)
    try:
        if work.live:
            if work.external_ref:
                return work.external_ref
            try:
                return system.create(work.booking).external_id
            except BookingConflict as exc:
                raise TakenMeanwhile(exc.detail) from exc
        ref = work.external_ref
        if ref is None and location.booking_system == "google_calendar":
            # A create whose answer was lost: the event id follows from our id.
            from ringback.integrations.google_calendar import event_id_for

            calendar = work.booking.provider_ref
            if calendar:
                ref = f"{calendar}/{event_id_for(work.booking.ringback_id)}"
        if ref is not None:
            system.cancel(ExternalBookingRef(ref))
        return ref
    finally:
        system.close()
