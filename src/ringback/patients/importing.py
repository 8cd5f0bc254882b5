"""Patient records, importing: rows of a CSV export from the clinic's booking system.

Read through a :class:`ColumnMapping` (a preset for a common system, adjusted column by
column). A bad row is reported by its line in the file and skipped; good rows are upserted
(a patient by location and phone, an appointment by location and the system's id, or by
patient and start when the export has no id), so importing the same file again updates and
never duplicates. Imported patients count as returning, and their upcoming appointments are
what screening's "already booked" reads.

:func:`import_patients` and :func:`import_appointments` join the caller's transaction
(``--dry-run`` is a rollback); :func:`import_in_batches` owns its transactions, one per
:data:`BATCH_ROWS` good rows, each saved with a few bulk statements, so a large file never
holds the write lock for long, and a failure names the lines it did not save.
"""

from __future__ import annotations

import csv
import io
import re
import time as time_module
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import phonenumbers
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location
from ringback.db import transaction, upsert_insert
from ringback.funnel import rollup as funnel
from ringback.models import Appointment, Patient, SuppressedNumber
from ringback.patients import service as patients
from ringback.phones import InvalidPhoneNumber, normalize_e164

Kind = Literal["patients", "appointments"]
_T = TypeVar("_T")
KINDS: tuple[Kind, ...] = ("patients", "appointments")

# What each kind of import can read, and what each field means (shown by the CLI's help).
PATIENT_FIELDS: dict[str, str] = {
    "phone": "the patient's phone number (required)",
    "first_name": "first name",
    "last_name": "last name",
    "name": "full name, split at the first space (when first/last are not mapped)",
    "external_id": "the patient's id in the clinic's system",
    "status": "new or returning (default: returning)",
    "sms_consent": "yes when the patient agreed to texts (their appointments get reminders); "
    "no or empty changes nothing",
}
APPOINTMENT_FIELDS: dict[str, str] = {
    "phone": "the patient's phone number (required)",
    "first_name": "the patient's first name",
    "last_name": "the patient's last name",
    "name": "the patient's full name, split at the first space",
    "patient_external_id": "the patient's id in the clinic's system",
    "external_id": "the appointment's id in the clinic's system",
    "start": "date and time the visit starts, in the location's time zone",
    "date": "the visit's date (with a separate time column)",
    "time": "the visit's start time (with a separate date column)",
    "end": "when the visit ends: a time, or a date and time",
    "duration": "length of the visit: 45, 45 min, 1h30, 1:30",
    "service": "the treatment, matched to the location's services by name or alias (required)",
    "provider": "who does the treatment",
    "status": "booked or cancelled (default: booked)",
    "price": "what the visit is worth, e.g. 480 or $480.00",
    "sms_consent": "yes when the patient agreed to texts (needed for reminders of imported "
    "visits, unless they called or texted the spa); no or empty changes nothing",
}
FIELDS: dict[Kind, dict[str, str]] = {
    "patients": PATIENT_FIELDS,
    "appointments": APPOINTMENT_FIELDS,
}
IGNORE = "-"  # ``--map Column=-``: read nothing from that column

# Column names by field, for exports of common med-spa systems. These are best-effort
# guesses from public help pages, not verified against each vendor's current export:
# check them against a real file (the import prints which column each field came from)
# and correct them with overrides. The first candidate present in the file is used.
_Columns = dict[str, tuple[str, ...]]
PRESETS: dict[str, dict[Kind, _Columns]] = {
    "generic": {
        "patients": {
            "phone": ("phone",),
            "first_name": ("first_name",),
            "last_name": ("last_name",),
            "name": ("name",),
            "external_id": ("external_id", "id"),
            "status": ("status",),
            "sms_consent": ("sms_consent", "text_consent"),
        },
        "appointments": {
            "phone": ("phone",),
            "first_name": ("first_name",),
            "last_name": ("last_name",),
            "name": ("name",),
            "patient_external_id": ("patient_external_id", "patient_id"),
            "external_id": ("external_id", "appointment_id", "id"),
            "start": ("start", "starts_at"),
            "date": ("date",),
            "time": ("time",),
            "end": ("end", "ends_at"),
            "duration": ("duration", "minutes"),
            "service": ("service",),
            "provider": ("provider", "provider_name"),
            "status": ("status",),
            "price": ("price", "value"),
            "sms_consent": ("sms_consent", "text_consent"),
        },
    },
    "boulevard": {
        "patients": {
            "phone": ("Mobile Phone", "Phone Number", "Phone"),
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "name": ("Client Name", "Name"),
            "external_id": ("Client ID", "ID"),
        },
        "appointments": {
            "phone": ("Client Mobile Phone", "Client Phone", "Mobile Phone", "Phone"),
            "first_name": ("Client First Name", "First Name"),
            "last_name": ("Client Last Name", "Last Name"),
            "name": ("Client Name", "Client"),
            "patient_external_id": ("Client ID",),
            "external_id": ("Appointment ID", "ID"),
            "start": ("Start Time", "Start", "Start At"),
            "date": ("Date", "Appointment Date"),
            "end": ("End Time", "End", "End At"),
            "duration": ("Duration", "Duration (mins)"),
            "service": ("Service", "Services", "Service Name"),
            "provider": ("Staff", "Staff Member", "Provider"),
            "status": ("Status", "Appointment Status"),
            "price": ("Price", "Service Price", "Total"),
        },
    },
    "mindbody": {
        "patients": {
            "phone": ("Mobile Phone", "Cell Phone", "Phone", "Home Phone"),
            "first_name": ("First Name", "FirstName"),
            "last_name": ("Last Name", "LastName"),
            "name": ("Client Name", "Client"),
            "external_id": ("Client ID", "ID", "ClientID"),
        },
        "appointments": {
            "phone": ("Mobile Phone", "Cell Phone", "Phone", "Home Phone"),
            "first_name": ("First Name",),
            "last_name": ("Last Name",),
            "name": ("Client", "Client Name"),
            "patient_external_id": ("Client ID", "ClientID"),
            "external_id": ("Appointment ID", "AppointmentID", "Visit ID"),
            "start": ("Start Date/Time", "Start DateTime"),
            "date": ("Date", "Appointment Date"),
            "time": ("Start Time", "Time"),
            "end": ("End Time", "End Date/Time"),
            "duration": ("Duration", "Length"),
            "service": ("Appointment Type", "Service", "Session Type"),
            "provider": ("Staff", "Staff Member", "Provider"),
            "status": ("Status", "Appointment Status"),
            "price": ("Price", "Amount"),
        },
    },
    "vagaro": {
        "patients": {
            "phone": ("Cell Phone", "Mobile", "Mobile Phone", "Phone", "Home Phone"),
            "first_name": ("Customer First Name", "First Name"),
            "last_name": ("Customer Last Name", "Last Name"),
            "name": ("Customer Name", "Customer", "Name"),
            "external_id": ("Customer ID", "ID"),
        },
        "appointments": {
            "phone": ("Cell Phone", "Customer Cell Phone", "Mobile", "Phone"),
            "first_name": ("Customer First Name", "First Name"),
            "last_name": ("Customer Last Name", "Last Name"),
            "name": ("Customer Name", "Customer"),
            "patient_external_id": ("Customer ID",),
            "external_id": ("Appointment ID", "Appointment #", "Booking ID"),
            "start": ("Start Date Time", "Appointment Start"),
            "date": ("Appointment Date", "Date"),
            "time": ("Start Time", "Time"),
            "end": ("End Time",),
            "duration": ("Duration",),
            "service": ("Service", "Service Name", "Service Title"),
            "provider": ("Service Provider", "Provider", "Employee"),
            "status": ("Status", "Appointment Status"),
            "price": ("Price", "Service Price", "Amount"),
        },
    },
    "zenoti": {
        "patients": {
            "phone": ("Mobile Number", "Mobile Phone", "Mobile", "Phone"),
            "first_name": ("First Name", "Guest First Name"),
            "last_name": ("Last Name", "Guest Last Name"),
            "name": ("Guest Name", "Guest", "Name"),
            "external_id": ("Guest Code", "Guest ID", "Code"),
        },
        "appointments": {
            "phone": ("Mobile Number", "Guest Mobile", "Mobile Phone", "Phone"),
            "first_name": ("Guest First Name", "First Name"),
            "last_name": ("Guest Last Name", "Last Name"),
            "name": ("Guest Name", "Guest"),
            "patient_external_id": ("Guest Code", "Guest ID"),
            "external_id": ("Appointment Id", "Appointment ID", "Invoice No"),
            "start": ("Start Time", "Appointment Start", "Start"),
            "date": ("Appointment Date", "Date"),
            "end": ("End Time", "End"),
            "duration": ("Duration", "Duration (mins)"),
            "service": ("Service Name", "Service"),
            "provider": ("Therapist", "Employee", "Provider"),
            "status": ("Status", "Appointment Status"),
            "price": ("Price", "Service Price", "Amount"),
        },
    },
}


# --- reading the file --------------------------------------------------------------------


class CsvError(ValueError):
    """The file cannot be read as CSV at all; the message says where."""


class CsvRow(dict[str, str]):
    """One record of the file by column name, with the line it starts on. ``unreadable``
    says why a record could not be read as CSV (its values are then all empty)."""

    def __init__(
        self,
        values: Mapping[str, str],
        line: int,
        extra_cells: int = 0,
        unreadable: str | None = None,
    ) -> None:
        super().__init__(values)
        self.line = line
        self.extra_cells = extra_cells
        self.unreadable = unreadable


@dataclass(frozen=True)
class CsvTable:
    header: tuple[str, ...]
    rows: list[CsvRow]
    delimiter: str


def read_csv(text: str) -> CsvTable:
    """Parse an export: a header row, then one record per row.

    The delimiter is whichever of comma, semicolon, tab or bar the header holds most of
    (comma when none). Blank lines are skipped; a record's line is where it starts, so
    a quoted field spanning lines still points at its row.
    """
    stream = stream_csv(text)
    return CsvTable(header=stream.header, rows=list(stream.rows), delimiter=stream.delimiter)


@dataclass(frozen=True)
class CsvStream:
    """A file's header, and its records read one at a time (a large file is never held
    as rows all at once); reading on may raise :class:`CsvError` at a broken line."""

    header: tuple[str, ...]
    rows: Iterator[CsvRow]
    delimiter: str


# A quoted value may hold line breaks (a note), but not this many: a quote still open after
# them was never closed, and the lines after it are rows of their own.
MAX_QUOTED_LINES = 50


class _Unreadable(Exception):
    """A record that cannot be read as CSV; the message says why."""


def _still_quoted(line: str, delimiter: str, quoted: bool) -> bool:
    """Whether a quoted value is still open at the end of ``line`` (``quoted``: it was open
    at its start). As the csv module reads: a quote opens a value only at its start, and
    inside one a doubled quote is a quote. Jumps from quote to quote (most lines have none)."""
    index = 0
    while (found := line.find('"', index)) >= 0:
        if quoted:
            if line.startswith('"', found + 1):  # a doubled quote, inside the value
                index = found + 2
                continue
            quoted = False
        elif found == 0 or line[found - 1] == delimiter:
            quoted = True
        index = found + 1
    return quoted


def _records(
    text: str, delimiter: str, width: list[int]
) -> Iterator[tuple[int, list[str] | _Unreadable]]:
    """Each record's first line and its cells, or why it is unreadable. A NUL byte or a
    quote that never closes spoils only the record it is in: reading goes on at the next
    line, so the rows after it are read as rows (never merged into one value). A record
    over several lines must have ``width[0]`` cells (the header's, once it is read)."""
    lines = io.StringIO(text, newline="")  # line ends as they are, as csv wants them
    pending: deque[tuple[int, str]] = deque()
    number = 0

    def next_line() -> tuple[int, str] | None:
        nonlocal number
        if pending:
            return pending.popleft()
        line = lines.readline()
        if not line:
            return None
        number += 1
        return number, line

    while (first := next_line()) is not None:
        start, line = first
        taken = [first]
        quoted = _still_quoted(line, delimiter, False)
        while quoted and len(taken) <= MAX_QUOTED_LINES:
            more = next_line()
            if more is None:
                break
            taken.append(more)
            quoted = _still_quoted(more[1], delimiter, True)
        record = "".join(part for _, part in taken)
        problem: str | None = None
        cells: list[str] = []
        if "\0" in record:
            problem = "contains a NUL byte (\\0): is this a text CSV file?"
        elif quoted:
            problem = 'a quote opens a value and never closes (a stray " ?)'
        else:
            try:
                # Strict across lines: a value closed by some later stray quote is not one.
                reader = csv.reader(
                    io.StringIO(record, newline=""), delimiter=delimiter, strict=len(taken) > 1
                )
                cells = next(reader, [])
                if len(taken) > 1 and width and len(cells) != width[0]:
                    raise csv.Error(f"{len(cells)} cells, not {width[0]}")
            except csv.Error as exc:
                problem = (
                    'a quote opens a value and never closes (a stray " ?)'
                    if len(taken) > 1
                    else f"not valid CSV ({exc})"
                )
        if problem is not None:
            # Only the first line is spoilt: read the ones it swallowed as rows again.
            pending.extendleft(reversed(taken[1:]))
            yield start, _Unreadable(problem)
        elif any(cell.strip() for cell in cells):
            yield start, cells


def stream_csv(text: str) -> CsvStream:
    """Like :func:`read_csv`, records read as they are taken. A record that cannot be read
    (a NUL byte, a quote never closed) is a row whose ``unreadable`` says why."""
    text = text.removeprefix("\ufeff")
    # Universal newlines, read lazily: the first line that is not blank.
    first_line = next((line for line in io.StringIO(text, newline=None) if line.strip()), "")
    if not first_line:
        raise CsvError("the file is empty: expected a header row naming the columns")
    delimiter = max(",;\t|", key=lambda d: (first_line.count(d), d == ","))
    width: list[int] = []
    cells_of = _records(text, delimiter, width)
    first = next(cells_of, None)
    if first is None:  # pragma: no cover - first_line guarantees a header
        raise CsvError("the file is empty: expected a header row naming the columns")
    if isinstance(first[1], _Unreadable):
        raise CsvError(f"line {first[0]}: the header row {first[1]}")
    header = tuple(cell.strip() for cell in first[1])
    width.append(len(header))

    def rows() -> Iterator[CsvRow]:
        for start, cells in cells_of:
            values: dict[str, str] = {}
            if isinstance(cells, _Unreadable):
                blank = {name: "" for name in header if name}
                yield CsvRow(blank, line=start, unreadable=str(cells))
                continue
            for index, name in enumerate(header):
                if name and name not in values:  # a repeated column name: the first one
                    values[name] = cells[index] if index < len(cells) else ""
            extra = sum(1 for cell in cells[len(header) :] if cell.strip())
            yield CsvRow(values, line=start, extra_cells=extra)

    return CsvStream(header=header, rows=rows(), delimiter=delimiter)


# --- column mapping ----------------------------------------------------------------------


class MappingError(ValueError):
    """The mapping does not fit the file: a field or column that does not exist, or no
    column for a required field. The message names the field and the column."""


class MissingColumn(MappingError):
    """An override names a column the file does not have."""


def _column_key(name: str) -> str:
    return " ".join(name.casefold().split())


@dataclass(frozen=True)
class ColumnMapping:
    """Which CSV column holds which field, for one kind of import.

    ``columns`` lists candidate column names per field (matched case-insensitively; the
    first present in the file wins). Fields named in an override must find their column.
    """

    kind: Kind
    columns: Mapping[str, tuple[str, ...]]
    explicit: frozenset[str] = frozenset()
    ignored: frozenset[str] = frozenset()  # column keys read for nothing

    @classmethod
    def preset(cls, kind: Kind, name: str = "generic") -> ColumnMapping:
        found = PRESETS.get(name.lower())
        if found is None:
            raise MappingError(f"no preset {name!r}; expected one of {', '.join(sorted(PRESETS))}")
        return cls(kind=kind, columns=dict(found[kind]))

    def overridden(self, overrides: Iterable[str]) -> ColumnMapping:
        """Apply ``COLUMN=FIELD`` overrides (``COLUMN=-`` reads nothing from COLUMN)."""
        columns = dict(self.columns)
        explicit = set(self.explicit)
        ignored = set(self.ignored)
        fields = FIELDS[self.kind]
        for item in overrides:
            column, sep, name = item.rpartition("=")
            column, name = column.strip(), name.strip()
            if not sep or not column or not name:
                raise MappingError(f"{item!r}: expected COLUMN=FIELD, e.g. 'Cell Phone=phone'")
            if name == IGNORE:
                ignored.add(_column_key(column))
                continue
            if name not in fields:
                raise MappingError(
                    f"{item!r}: unknown field {name!r}; fields for {self.kind}: {', '.join(fields)}"
                )
            columns[name] = (column,)
            explicit.add(name)
        return replace(
            self, columns=columns, explicit=frozenset(explicit), ignored=frozenset(ignored)
        )

    def resolve(self, header: Sequence[str]) -> dict[str, str]:
        """Field -> the exact header name it is read from, or :class:`MappingError`."""
        present = {_column_key(name): name for name in reversed(header) if name}
        listed = ", ".join(repr(name) for name in header if name)
        resolved: dict[str, str] = {}
        for name, candidates in self.columns.items():
            for candidate in candidates:
                key = _column_key(candidate)
                if key in present and key not in self.ignored:
                    resolved[name] = present[key]
                    break
            else:
                if name in self.explicit:
                    raise MissingColumn(
                        f"column {candidates[0]!r} (for {name}): not in the file; "
                        f"its columns are {listed}"
                    )
        for required in ("phone", "service") if self.kind == "appointments" else ("phone",):
            if required not in resolved:
                raise MappingError(
                    f"{required}: no column for it (tried {_tried(self.columns, required)}); "
                    f"the file's columns are {listed}"
                )
        if self.kind == "appointments" and "start" not in resolved:
            missing = [name for name in ("date", "time") if name not in resolved]
            if missing:
                raise MappingError(
                    "start: no column for the start (tried "
                    f"{_tried(self.columns, 'start')}), and no {' or '.join(missing)} column "
                    f"(tried {_tried(self.columns, missing[0])}); the file's columns are {listed}"
                )
        return resolved

    def describe(self, header: Sequence[str]) -> list[tuple[str, str]]:
        """(field, column) pairs in field order, for a report of what was read from where."""
        resolved = self.resolve(header)
        return [(name, resolved[name]) for name in FIELDS[self.kind] if name in resolved]


def _tried(columns: Mapping[str, tuple[str, ...]], name: str) -> str:
    candidates = columns.get(name, ())
    return ", ".join(repr(c) for c in candidates) if candidates else "no column names"


# --- import ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowProblem:
    """Why one row was skipped: ``line N: field: problem (value)``."""

    line: int
    field: str
    problem: str
    value: str | None = None

    def __str__(self) -> str:
        shown = f" ({self.value!r})" if self.value is not None else ""
        return f"line {self.line}: {self.field}: {self.problem}{shown}"


@dataclass
class ImportReport:
    """What an import did. ``rows`` = created + updated + unchanged + skipped."""

    kind: Kind
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    patients_created: int = 0  # appointments only: patients first seen in this file
    problems: list[RowProblem] = field(default_factory=list)

    def summary(self) -> str:
        text = (
            f"{self.rows} rows: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.skipped} skipped"
        )
        if self.kind == "appointments":
            text += f"; {self.patients_created} new patients"
        return text


class _BadField(Exception):
    def __init__(self, field_name: str, problem: str, value: str | None = None) -> None:
        super().__init__(problem)
        self.field = field_name
        self.problem = problem
        self.value = value


@dataclass(frozen=True)
class _PatientFields:
    phone: str
    first_name: str | None
    last_name: str | None
    external_id: str | None
    status: str  # new | returning | "" (the file does not say)
    consent: bool = False  # the file says they agreed to texts


@dataclass(frozen=True)
class _AppointmentFields:
    patient: _PatientFields
    external_id: str | None
    starts_at: datetime
    ends_at: datetime
    service: str
    provider: str | None
    status: str
    value_cents: int | None


_NEW_WORDS = frozenset({"new", "lead", "prospect"})
_RETURNING_WORDS = frozenset(
    {"returning", "existing", "active", "inactive", "client", "current", "regular", "member"}
)
_BOOKED_WORDS = frozenset(
    {
        "booked",
        "confirmed",
        "unconfirmed",
        "scheduled",
        "pending",
        "requested",
        "reserved",
        "checked in",
        "arrived",
        "in progress",
        "completed",
        "complete",
        "active",
        "open",
    }
)
_CANCELLED_WORDS = frozenset(
    {
        "cancelled",
        "canceled",
        "cancel",
        "late cancel",
        "late cancellation",
        "no show",
        "noshow",
        "deleted",
        "void",
    }
)
_CONSENT_WORDS = frozenset({"yes", "y", "true", "1", "opted in", "opt in", "consented", "x"})
_NO_CONSENT_WORDS = frozenset({"no", "n", "false", "0", "opted out", "opt out", "none"})
_MAX_MINUTES = 24 * 60
_DEFAULT_MINUTES = 30


def _word(value: str) -> str:
    return " ".join(value.casefold().replace("_", " ").replace("-", " ").split())


class _BadRow(Exception):
    def __init__(self, problems: list[_BadField]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems


class _Collector:
    """Runs a row's checks one by one and keeps every problem, so one pass fixes the file."""

    def __init__(self) -> None:
        self.problems: list[_BadField] = []

    def check(self, parse: Callable[[], _T]) -> _T | None:
        try:
            return parse()
        except _BadField as bad:
            if all(p.field != bad.field for p in self.problems):
                self.problems.append(bad)
            return None

    def done(self) -> None:
        if self.problems:
            raise _BadRow(self.problems)


class _Importer:
    def __init__(
        self,
        session: Session,
        location: Location,
        mapping: ColumnMapping,
        now: datetime,
        kind: Kind,
    ) -> None:
        if mapping.kind != kind:
            raise MappingError(f"mapping is for {mapping.kind}, not {kind}")
        self.session = session
        self.location = location
        self.mapping = mapping
        self.now = now
        self.report = ImportReport(kind=kind)
        self.resolved: dict[str, str] = {}
        self.region = _region(location)
        self.services: dict[str, str] = {}
        for service in location.services:
            for name in (service.name, *service.aliases):
                self.services.setdefault(_word(name), service.name)
        self.minutes = {service.name: service.minutes for service in location.services}

    # -- reading a row --

    def text(self, row: Mapping[str, str], name: str, limit: int | None = None) -> str | None:
        column = self.resolved.get(name)
        value = (row.get(column) or "").strip() if column else ""
        if not value:
            return None
        if limit is not None and len(value) > limit:
            raise _BadField(name, f"longer than {limit} characters", value)
        return value

    def phone(self, row: Mapping[str, str]) -> str:
        raw = self.text(row, "phone")
        if raw is None:
            raise _BadField("phone", "missing")
        try:
            return normalize_e164(raw, self.region)
        except InvalidPhoneNumber:
            raise _BadField("phone", "not a valid phone number", raw) from None

    def patient_status(self, row: Mapping[str, str]) -> str:
        """ "new" or "returning" as the file states it; "" when it does not say."""
        raw = self.text(row, "status") if self.report.kind == "patients" else None
        if raw is None:
            return ""
        word = _word(raw)
        if word in _NEW_WORDS:
            return "new"
        if word in _RETURNING_WORDS:
            return "returning"
        raise _BadField("status", "expected new or returning", raw)

    def patient_fields(
        self, row: Mapping[str, str], external_field: str, found: _Collector
    ) -> _PatientFields | None:
        phone = found.check(lambda: self.phone(row))
        first = found.check(lambda: self.text(row, "first_name", 80))
        last = found.check(lambda: self.text(row, "last_name", 80))
        full = found.check(lambda: self.text(row, "name"))
        if full and not first and not last:
            parts = full.split(None, 1)
            first = parts[0][:80]
            last = parts[1][:80] if len(parts) > 1 else None
        status = found.check(lambda: self.patient_status(row))
        external_id = found.check(lambda: self.text(row, external_field, 120))
        consent = found.check(lambda: self.consent(row))
        if phone is None or status is None or consent is None:
            return None
        return _PatientFields(
            phone=phone,
            first_name=first,
            last_name=last,
            external_id=external_id,
            status=status,
            consent=consent,
        )

    def consent(self, row: Mapping[str, str]) -> bool:
        """Whether the file says the patient agreed to texts (never an opt-out)."""
        raw = self.text(row, "sms_consent")
        if raw is None:
            return False
        word = _word(raw)
        if word in _CONSENT_WORDS:
            return True
        if word in _NO_CONSENT_WORDS:
            return False
        raise _BadField("sms_consent", "expected yes or no", raw)

    def start(self, row: Mapping[str, str]) -> datetime:
        zone = self.location.zone
        raw_start = self.text(row, "start")
        raw_date = self.text(row, "date")
        if raw_start is not None:
            clock = _parse_time(raw_start)
            if clock is None:
                return _parse_moment("start", raw_start, zone)
            # A time alone in the start column: some exports split the date off.
            if raw_date is None:
                raise _BadField("date", "missing (the start column holds only a time)")
            return datetime.combine(_parse_date(raw_date), clock, tzinfo=zone)
        if raw_date is None:
            raise _BadField("start" if "start" in self.resolved else "date", "missing")
        raw_time = self.text(row, "time")
        if raw_time is None:
            raise _BadField("time", "missing")
        clock = _parse_time(raw_time)
        if clock is None:
            raise _BadField("time", "expected a time like 14:30 or 2:30 PM", raw_time)
        return datetime.combine(_parse_date(raw_date), clock, tzinfo=zone)

    def service(self, row: Mapping[str, str]) -> str:
        raw = self.text(row, "service", 80)
        if raw is None:
            raise _BadField("service", "missing")
        return self.services.get(_word(raw), raw)

    def end(self, row: Mapping[str, str], starts_at: datetime, service: str | None) -> datetime:
        raw_end = self.text(row, "end")
        if raw_end is not None:
            return _parse_end(raw_end, starts_at, self.location.zone)
        raw_duration = self.text(row, "duration")
        if raw_duration is not None:
            return starts_at + timedelta(minutes=_parse_minutes(raw_duration))
        minutes = self.minutes.get(service or "", _DEFAULT_MINUTES)
        return starts_at + timedelta(minutes=minutes)

    def appointment_status(self, row: Mapping[str, str]) -> str:
        raw = self.text(row, "status")
        if raw is None:
            return "booked"
        word = _word(raw)
        if word in _CANCELLED_WORDS:
            return "cancelled"
        if word in _BOOKED_WORDS:
            return "booked"
        raise _BadField(
            "status",
            "expected booked or cancelled (or confirmed, checked in, completed, no show)",
            raw,
        )

    def price(self, row: Mapping[str, str]) -> int | None:
        raw = self.text(row, "price")
        return _parse_cents(raw) if raw is not None else None

    def parse_patient(self, row: Mapping[str, str]) -> _PatientFields:
        found = _Collector()
        fields = self.patient_fields(row, "external_id", found)
        found.done()
        if fields is None:
            raise _BadRow(found.problems)  # pragma: no cover - a None came with a problem
        return fields

    def parse_appointment(self, row: Mapping[str, str]) -> _AppointmentFields:
        found = _Collector()
        patient = self.patient_fields(row, "patient_external_id", found)
        starts_at = found.check(lambda: self.start(row))
        service = found.check(lambda: self.service(row))
        ends_at = found.check(lambda: self.end(row, starts_at, service)) if starts_at else None
        status = found.check(lambda: self.appointment_status(row))
        value_cents = found.check(lambda: self.price(row))
        external_id = found.check(lambda: self.text(row, "external_id", 120))
        provider = found.check(lambda: self.text(row, "provider", 80))
        found.done()
        if patient is None or starts_at is None or ends_at is None or service is None:
            raise _BadRow(found.problems)  # pragma: no cover - each None came with a problem
        return _AppointmentFields(
            patient=patient,
            external_id=external_id,
            starts_at=starts_at,
            ends_at=ends_at,
            service=service,
            provider=provider,
            status=status or "booked",
            value_cents=value_cents,
        )

    # -- the loop --

    def run(self, rows: Iterable[Mapping[str, str]]) -> ImportReport:
        for _line, parsed in self.parsed(rows):
            if isinstance(parsed, _PatientFields):
                _, created, changed = self.save_patient(parsed)
            else:
                created, changed = self.save_appointment(parsed)
            self.count(created, changed)
        return self.report

    def count(self, created: bool, changed: bool) -> None:
        if created:
            self.report.created += 1
        elif changed:
            self.report.updated += 1
        else:
            self.report.unchanged += 1

    def parsed(
        self, rows: Iterable[Mapping[str, str]]
    ) -> Iterator[tuple[int, _PatientFields | _AppointmentFields]]:
        """The good rows, parsed, with their lines; bad ones go to the report."""
        report = self.report
        for index, row in enumerate(rows):
            line = row.line if isinstance(row, CsvRow) else index + 2
            if not report.rows:
                self.resolved = self.mapping.resolve(list(row.keys()))
            report.rows += 1
            problems: list[RowProblem] = []
            if isinstance(row, CsvRow) and row.unreadable is not None:
                report.skipped += 1
                report.problems.append(RowProblem(line, "row", row.unreadable))
                continue
            if isinstance(row, CsvRow) and row.extra_cells:
                problems.append(
                    RowProblem(
                        line,
                        "row",
                        f"{row.extra_cells} more cell(s) than the header has columns "
                        "(a comma in an unquoted value?)",
                    )
                )
            try:
                if report.kind == "patients":
                    parsed: _PatientFields | _AppointmentFields = self.parse_patient(row)
                else:
                    parsed = self.parse_appointment(row)
            except _BadRow as bad:
                problems.extend(RowProblem(line, p.field, p.problem, p.value) for p in bad.problems)
            if problems:
                report.skipped += 1
                report.problems.extend(problems)
                continue
            yield line, parsed

    # -- saving a batch at once --

    def save_patients_bulk(self, items: Sequence[_PatientFields]) -> list[tuple[bool, bool]]:
        """Upsert a batch of patients in a few statements; (created, changed) per row, the
        same as :meth:`save_patient` row by row would say."""
        session, location_id = self.session, self.location.id
        phones = sorted({item.phone for item in items})
        known: dict[str, dict[str, Any]] = {}
        ids: dict[str, int] = {}
        for row in session.execute(
            select(
                Patient.id,
                Patient.phone,
                Patient.first_name,
                Patient.last_name,
                Patient.external_id,
                Patient.status,
            ).where(Patient.location_id == location_id, Patient.phone.in_(phones))
        ):
            ids[row.phone] = row.id
            known[row.phone] = {name: getattr(row, name) for name in _PATIENT_COLUMNS}
        state = {phone: dict(values) for phone, values in known.items()}
        results: list[tuple[bool, bool]] = []
        for item in items:
            current = state.get(item.phone)
            created = current is None
            if current is None:
                current = state[item.phone] = dict.fromkeys(_PATIENT_COLUMNS)
            # As in save_patient: a file that does not say new or returning only fills in
            # an unknown status.
            stated = item.status or (None if current["status"] else "returning")
            changed = False
            for name in _PATIENT_COLUMNS:
                value = stated if name == "status" else getattr(item, name)
                if value is not None and current[name] != value:
                    current[name] = value
                    changed = True
            results.append((created, changed))
        now = self.now
        new = [phone for phone in state if phone not in known]
        if new:
            suppressed = {
                row.number_hash: row.opted_out_at
                for row in session.execute(
                    select(SuppressedNumber.number_hash, SuppressedNumber.opted_out_at).where(
                        SuppressedNumber.location_id == location_id,
                        SuppressedNumber.number_hash.in_(
                            [patients.number_hash(location_id, phone) for phone in new]
                        ),
                    )
                )
            }
            rows = []
            for phone in new:
                opted_out_at = suppressed.get(patients.number_hash(location_id, phone))
                rows.append(
                    {
                        "location_id": location_id,
                        "phone": phone,
                        **state[phone],
                        "opted_out_at": opted_out_at,
                        "opt_out_source": patients.KEPT_OPT_OUT if opted_out_at else None,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            table: Any = Patient.__table__
            insert = upsert_insert(session.get_bind().dialect.name, table)
            # A call may have created one of them since the SELECT: fill it in instead.
            statement = insert.on_conflict_do_update(
                index_elements=["location_id", "phone"],
                set_={
                    **{
                        name: func.coalesce(insert.excluded[name], table.c[name])
                        for name in ("first_name", "last_name", "external_id")
                    },
                    "status": func.coalesce(table.c.status, insert.excluded.status),
                    "updated_at": insert.excluded.updated_at,
                },
            )
            session.execute(statement, rows)  # executemany: pipelined on PostgreSQL
        changed_rows = [
            {"id": ids[phone], **state[phone], "updated_at": now}
            for phone, before in known.items()
            if state[phone] != before
        ]
        if changed_rows:
            session.execute(update(Patient), changed_rows)
        return results

    def save_batch(self, items: Sequence[_PatientFields | _AppointmentFields]) -> None:
        if self.report.kind == "patients":
            people = [item for item in items if isinstance(item, _PatientFields)]
            for created, changed in self.save_patients_bulk(people):
                self.count(created, changed)
            return
        # Appointments: their patients in bulk first, then the appointments in bulk.
        visits = [item for item in items if isinstance(item, _AppointmentFields)]
        for created, _ in self.save_patients_bulk([visit.patient for visit in visits]):
            self.report.patients_created += created
        for created, changed in self.save_appointments_bulk(visits):
            self.count(created, changed)

    def save_appointments_bulk(
        self, visits: Sequence[_AppointmentFields]
    ) -> list[tuple[bool, bool]]:
        """Upsert a batch of appointments (their patients saved already) in a few
        statements; (created, changed) per row, as :meth:`save_appointment` would say."""
        session, location_id = self.session, self.location.id
        patient_ids: dict[str, int] = {
            row.phone: row.id
            for row in session.execute(
                select(Patient.phone, Patient.id).where(
                    Patient.location_id == location_id,
                    Patient.phone.in_(sorted({visit.patient.phone for visit in visits})),
                )
            )
        }
        external_ids = sorted({v.external_id for v in visits if v.external_id is not None})
        matched_patients = sorted(
            {patient_ids[v.patient.phone] for v in visits if v.external_id is None}
        )
        loaded = session.execute(
            select(*(getattr(Appointment, name) for name in _APPOINTMENT_READ))
            .where(
                Appointment.location_id == location_id,
                or_(
                    Appointment.external_id.in_(external_ids),
                    Appointment.patient_id.in_(matched_patients),
                ),
            )
            .order_by(Appointment.id)
        ).all()
        records: list[dict[str, Any]] = [
            {name: getattr(row, name) for name in _APPOINTMENT_READ} for row in loaded
        ]
        before = {record["id"]: dict(record) for record in records}
        by_external = {r["external_id"]: r for r in records if r["external_id"] is not None}

        def by_start(patient_id: int, starts_at: datetime) -> dict[str, Any] | None:
            return next(
                (
                    r
                    for r in records
                    if r["patient_id"] == patient_id and r["starts_at"] == starts_at
                ),
                None,
            )

        results: list[tuple[bool, bool]] = []
        for visit in visits:
            patient_id = patient_ids[visit.patient.phone]
            if visit.external_id is not None:
                record = by_external.get(visit.external_id)
            else:
                record = by_start(patient_id, visit.starts_at)
            values: dict[str, Any] = {
                "patient_id": patient_id,
                "service": visit.service,
                "starts_at": visit.starts_at,
                "ends_at": visit.ends_at,
                "status": visit.status,
                "provider_name": visit.provider,
                "value_cents": visit.value_cents,
            }
            if record is None:
                record = {
                    "id": None,
                    "external_id": visit.external_id,
                    "conversation_id": None,
                    "rescheduled_from_id": None,
                    **values,
                }
                records.append(record)
                if visit.external_id is not None:
                    by_external[visit.external_id] = record
                results.append((True, False))
                continue
            changed = False
            for name, value in values.items():
                if value is not None and record[name] != value:
                    record[name] = value  # an empty cell keeps what was known
                    changed = True
            results.append((False, changed))
        new = [
            {
                "location_id": location_id,
                "external_id": r["external_id"],
                "source": "import",
                "created_at": self.now,
                **{name: r[name] for name in _APPOINTMENT_VALUES},
            }
            for r in records
            if r["id"] is None
        ]
        if new:
            session.execute(insert(Appointment), new)  # executemany
        changed_rows = [r for r in records if r["id"] is not None and r != before[r["id"]]]
        plain = [
            {"id": r["id"], **{name: r[name] for name in _APPOINTMENT_VALUES}}
            for r in changed_rows
            if r["conversation_id"] is None and r["rescheduled_from_id"] is None
        ]
        if plain:
            session.execute(update(Appointment), plain)
        for r in changed_rows:
            if r["conversation_id"] is not None or r["rescheduled_from_id"] is not None:
                # One Ringback booked: its booking's outcome moves (through the ORM).
                appointment = session.get(Appointment, r["id"])
                assert appointment is not None
                for name in _APPOINTMENT_VALUES:
                    setattr(appointment, name, r[name])
                funnel.appointment_changed(appointment)
        return results

    # -- saving --

    def save_patient(self, fields: _PatientFields) -> tuple[Patient, bool, bool]:
        """Upsert by location and phone; (patient, created, changed)."""
        existing = patients.find(self.session, self.location.id, fields.phone)
        patient = existing or patients.get_or_create(
            self.session, self.location.id, fields.phone, self.now
        )
        changed = False
        # New or returning is one fact shared with the conversations: a file that does not
        # say (an appointments export, a list without the column) only fills it in when it
        # is unknown, never overwrites what the patient told the bot ("first time").
        stated = fields.status or (None if patient.status else "returning")
        for name in ("first_name", "last_name", "external_id", "status"):
            value = stated if name == "status" else getattr(fields, name)
            if value is not None and getattr(patient, name) != value:
                setattr(patient, name, value)
                changed = True
        if fields.consent and patient.text_consent_at is None:
            # Recorded, never an opt-out's reversal: an opted-out patient stays opted out.
            patient.text_consent_at = self.now
            changed = True
        if changed:
            patient.updated_at = self.now
        return patient, existing is None, changed

    def save_appointment(self, fields: _AppointmentFields) -> tuple[bool, bool]:
        """Upsert by the system's id, else by patient and start; (created, changed)."""
        patient, patient_created, _ = self.save_patient(fields.patient)
        self.report.patients_created += patient_created
        if fields.external_id is not None:
            match = Appointment.external_id == fields.external_id
        else:
            match = and_(
                Appointment.patient_id == patient.id, Appointment.starts_at == fields.starts_at
            )
        appointment = self.session.scalars(
            select(Appointment).where(Appointment.location_id == self.location.id, match).limit(1)
        ).first()
        values: dict[str, Any] = {
            "patient_id": patient.id,
            "service": fields.service,
            "starts_at": fields.starts_at,
            "ends_at": fields.ends_at,
            "status": fields.status,
            "provider_name": fields.provider,
            "value_cents": fields.value_cents,
        }
        if appointment is None:
            self.session.add(
                Appointment(
                    location_id=self.location.id,
                    external_id=fields.external_id,
                    source="import",
                    created_at=self.now,
                    **values,
                )
            )
            self.session.flush()
            return True, False
        changed = False
        for name, value in values.items():
            if value is None:
                continue  # an empty cell keeps what was known
            if getattr(appointment, name) != value:
                setattr(appointment, name, value)
                changed = True
        if changed and (
            appointment.conversation_id is not None or appointment.rescheduled_from_id is not None
        ):
            # One Ringback booked (matched by patient and time): its booking's outcome moves.
            funnel.appointment_changed(appointment)
        return False, changed


def import_patients(
    session: Session,
    location: Location,
    rows: Iterable[Mapping[str, str]],
    mapping: ColumnMapping,
    now: datetime,
) -> ImportReport:
    """Upsert patients (by location and phone) from an export; bad rows are reported.

    Imported patients are returning unless the file says new. Names and ids in the file
    replace what was known; an empty cell keeps it. An import never opts anyone in or out;
    ``sms_consent`` records that they agreed to texts (for reminders).
    """
    return _Importer(session, location, mapping, now, "patients").run(rows)


def import_appointments(
    session: Session,
    location: Location,
    rows: Iterable[Mapping[str, str]],
    mapping: ColumnMapping,
    now: datetime,
) -> ImportReport:
    """Upsert appointments (by the system's id, or patient and start) and their patients.

    Times without an offset are in the location's zone and stored in UTC. A service is
    matched to the location's menu by name or alias; an unknown one keeps the file's text.
    """
    return _Importer(session, location, mapping, now, "appointments").run(rows)


BATCH_ROWS = 500
SQLITE_YIELD_SECONDS = 0.1
_PATIENT_COLUMNS = ("first_name", "last_name", "external_id", "status")
_APPOINTMENT_VALUES = (
    "patient_id",
    "service",
    "starts_at",
    "ends_at",
    "status",
    "provider_name",
    "value_cents",
)
_APPOINTMENT_READ = (
    "id",
    "external_id",
    "conversation_id",
    "rescheduled_from_id",
    *_APPOINTMENT_VALUES,
)


class BatchFailed(Exception):
    """A batch could not be saved: the batches before it were; re-running the same file
    resumes (the rows already saved come back unchanged)."""

    def __init__(self, first_line: int, last_line: int, error: str, report: ImportReport):
        super().__init__(
            f"lines {first_line}-{last_line} were not saved ({error}); the rows before line "
            f"{first_line} were. Run the same file again to finish: saved rows stay as they are"
        )
        self.first_line = first_line
        self.last_line = last_line
        self.report = report


def import_in_batches(
    sessions: sessionmaker[Session],
    location: Location,
    kind: Kind,
    rows: Iterable[Mapping[str, str]],
    mapping: ColumnMapping,
    now: datetime,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Import ``rows`` committing every ``batch_rows`` good rows, so an import of any size
    never holds the database's write lock for long (text-backs keep their pace while it
    runs). ``progress`` is called with the report after each batch. A batch that fails
    raises :class:`BatchFailed` naming its lines; the ones before it stay saved, and as
    every row is an upsert, running the same file again finishes the job.
    """
    importer = _Importer(None, location, mapping, now, kind)  # type: ignore[arg-type]
    report = importer.report
    batch: list[_PatientFields | _AppointmentFields] = []
    lines: list[int] = []

    sqlite = sessions.kw["bind"].dialect.name == "sqlite"

    def flush() -> None:
        counts = (report.created, report.updated, report.unchanged, report.patients_created)
        started = time_module.monotonic()
        try:
            with transaction(sessions) as session:
                importer.session = session
                importer.save_batch(batch)
        except Exception as exc:
            # What the batch counted was rolled back with it.
            report.created, report.updated, report.unchanged, report.patients_created = counts
            raise BatchFailed(
                lines[0], lines[-1], f"{type(exc).__name__}: {str(exc)[:200]}", report
            ) from exc
        batch.clear()
        lines.clear()
        if sqlite:
            # SQLite's writers in other processes (the web server storing a webhook) wait
            # in a busy handler that looks again at most every 100 ms: leave the lock free
            # as long as it was held, up to that, or back-to-back batches starve them.
            held = time_module.monotonic() - started
            time_module.sleep(min(held, SQLITE_YIELD_SECONDS))
        if progress is not None:
            progress(report)

    for line, parsed in importer.parsed(rows):
        batch.append(parsed)
        lines.append(line)
        if len(batch) >= batch_rows:
            flush()
    if batch:
        flush()
    return report


# --- parsing dates, times and amounts ------------------------------------------------------

_DATE_FORMATS = (
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%m/%d/%y",
    "%Y/%m/%d",
    "%m-%d-%Y",
    "%b %d, %Y",
    "%B %d, %Y",
    "%b %d %Y",
    "%B %d %Y",
    "%d %b %Y",
    "%d %B %Y",
    "%a, %b %d, %Y",
    "%a %b %d, %Y",
    "%A, %B %d, %Y",
)
_TIME_FORMATS = ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M:%S %p", "%I %p")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{1,2}:\d{2}")
_MERIDIEM = re.compile(r"\s*([ap])\.?\s?m\.?$", re.IGNORECASE)
_TIME_AT_END = re.compile(
    r"^(?P<date>.+?)(?:\s*,\s*|\s+at\s+|\s+|T)"
    r"(?P<time>\d{1,2}(?::\d{2}){1,2}(?:\.\d+)?(?:\s*[ap]\.?\s?m\.?)?|\d{1,2}\s*[ap]\.?\s?m\.?)$",
    re.IGNORECASE,
)
_MOMENT_HINT = "expected a date and time like 2026-12-03 14:30 or 12/03/2026 2:30 PM"


def _parse_time(text: str) -> time | None:
    """'14:30', '2:30 PM', '2pm', '14:30:00' -> a time of day; None when not a time."""
    value = re.sub(r"\.\d+$", "", text.strip())
    value = _MERIDIEM.sub(lambda m: f" {m.group(1).upper()}M", value).strip()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(value, fmt).time()  # noqa: DTZ007 - a time of day only
        except ValueError:
            continue
    return None


def _parse_date(text: str) -> date:
    value = " ".join(text.replace(".", "").split())
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a calendar date only
        except ValueError:
            continue
    raise _BadField("date", "expected a date like 2026-12-03 or 12/03/2026 (month first)", text)


def _parse_moment(name: str, text: str, zone: Any) -> datetime:
    """A date and time; without an offset it is wall-clock time in ``zone``."""
    value = " ".join(text.split())
    if _ISO.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _BadField(name, _MOMENT_HINT, text) from None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)
    match = _TIME_AT_END.match(value)
    if match is None:
        raise _BadField(name, _MOMENT_HINT, text)
    clock = _parse_time(match.group("time"))
    if clock is None:
        raise _BadField(name, _MOMENT_HINT, text)
    try:
        day = _parse_date(match.group("date"))
    except _BadField:
        raise _BadField(name, _MOMENT_HINT, text) from None
    return datetime.combine(day, clock, tzinfo=zone)


def _parse_end(text: str, starts_at: datetime, zone: Any) -> datetime:
    clock = _parse_time(text)
    if clock is not None:
        local_day = starts_at.astimezone(zone).date()
        ends_at = datetime.combine(local_day, clock, tzinfo=zone)
    else:
        ends_at = _parse_moment("end", text, zone)
    if ends_at <= starts_at:
        raise _BadField("end", "is not after the start", text)
    return ends_at


_DURATION = re.compile(
    r"^(?:(?P<hours>\d+(?:\.\d+)?)\s*(?:h|hr|hrs|hour|hours)(?![a-z])\.?)?\s*"
    r"(?:(?P<minutes>\d+)\s*(?:m|min|mins|minute|minutes)?\.?)?$",
    re.IGNORECASE,
)


def _parse_minutes(text: str) -> int:
    """'45', '45 min', '1h30', '1.5 hours', '1:30' -> minutes."""
    value = text.strip()
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", value)
    minutes: float | None = None
    if clock:
        minutes = int(clock.group(1)) * 60 + int(clock.group(2))
    else:
        match = _DURATION.match(value)
        if match and (match.group("hours") or match.group("minutes")):
            minutes = float(match.group("hours") or 0) * 60 + int(match.group("minutes") or 0)
    if minutes is None or not 0 < minutes <= _MAX_MINUTES:
        raise _BadField(
            "duration", "expected minutes (45, 45 min) or hours (1h30, 1:30) up to 24 h", text
        )
    return round(minutes)


def _parse_cents(text: str) -> int:
    value = text.strip().replace("$", "").replace(",", "").strip()
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise _BadField("price", "expected an amount like 480 or $480.00", text) from None
    if not amount.is_finite() or amount < 0 or amount >= 10_000_000:
        raise _BadField("price", "expected an amount like 480 or $480.00", text)
    return int((amount * 100).quantize(Decimal(1)))


def _region(location: Location) -> str:
    """Numbers without a country code are read as local to the location's own number."""
    parsed = phonenumbers.parse(location.phone_number, None)
    return str(phonenumbers.region_code_for_number(parsed) or "US")
