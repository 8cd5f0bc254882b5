"""A made-up but realistic history of missed calls, for demos and benchmarks.

The shape follows what med spas see: more misses on weekday mornings and late afternoons,
few on Sundays; the front desk busy at peaks; after-hours calls in the evening; a quarter
of callers screened out (hidden numbers, repeat calls, landlines ...); around 45% of
texted callers replying, with template B doing a little better than A; bookings by the
bot, the booking page and staff; text-backs leaving in about a second with a slow tail.

Rows go in with bulk writes (``COPY`` on PostgreSQL, ``executemany`` on SQLite) in the
order foreign keys need, a location per transaction. The rollups are computed from the
same generated facts by the same code that computes them from the database
(:func:`ringback.funnel.rollup.add_call`), so a seeded database reports at once; when the
database already had calls, the touched days are marked for recomputation instead.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location, Service, TimeRange
from ringback.db import transaction
from ringback.funnel import queries, rollup
from ringback.funnel.queries import BookingChain, CallFacts
from ringback.models import Appointment, Call, Conversation, Message, Patient

BATCH_ROWS = 20_000

PATIENT_COLUMNS = ("id", "location_id", "phone", "status", "created_at", "updated_at")
CALL_COLUMNS = (
    "id", "provider", "call_sid", "location_id", "patient_id", "from_raw", "from_number",
    "started_at", "ended_at", "after_hours", "mode", "outcome", "miss_reason", "missed_at",
    "screening", "screened_at", "conversation_id",
)  # fmt: skip
CONVERSATION_COLUMNS = (
    "id", "location_id", "patient_id", "status", "is_open", "close_reason", "language",
    "variant", "state", "bot_paused", "lost_reason", "booked_by", "updated_at", "opened_at",
    "first_reply_at", "last_inbound_at", "last_outbound_at", "closed_at", "booked_value_cents",
    "treatment", "qualified_at", "handoff_reason", "handed_off_at", "urgent_at",
)  # fmt: skip
APPOINTMENT_COLUMNS = (
    "id", "location_id", "patient_id", "conversation_id", "service", "starts_at", "ends_at",
    "status", "source", "value_cents", "created_at", "cancelled_at", "cancelled_by",
    "rescheduled_from_id",
)  # fmt: skip
# Of the bookings the bot or the page made: how many are cancelled later, and how many are
# moved to another time (of those, some cancelled after all).
CANCELLED_SHARE = 0.12
RESCHEDULED_SHARE = 0.08
MESSAGE_COLUMNS = (
    "id", "location_id", "conversation_id", "patient_id", "call_id", "direction", "kind",
    "from_number", "to_number", "body", "provider", "provider_sid", "idempotency_key",
    "status", "attempts", "created_at", "trigger_at", "send_after", "sent_at", "status_at",
)  # fmt: skip

# Relative call volume by local weekday (Monday first) and hour.
WEEKDAY_VOLUME = (1.15, 1.1, 1.05, 1.1, 1.0, 0.7, 0.25)
HOUR_VOLUME = (
    0.05, 0.03, 0.02, 0.02, 0.03, 0.1, 0.3, 0.7, 1.6, 2.6, 3.0, 2.8,
    2.0, 1.9, 2.3, 2.5, 2.6, 2.2, 1.4, 0.9, 0.6, 0.4, 0.2, 0.1,
)  # fmt: skip
PEAK_HOURS = frozenset({10, 11, 15, 16, 17})
SCREENINGS = (
    ("texted", 70.0),
    ("appointment_textback", 4.0),
    ("joined_conversation", 3.0),
    ("cooldown", 7.0),
    ("anonymous", 5.0),
    ("landline", 3.5),
    ("opted_out", 1.5),
    ("not_textable", 1.2),
    ("invalid_number", 1.0),
    ("wrong_number", 0.8),
    ("blocklisted", 0.3),
    ("own_number", 0.2),
)
TEXTBACK_STATUSES = (
    ("delivered", 93.5),
    ("sent", 2.0),
    ("undelivered", 2.5),
    ("failed", 1.2),
    ("suppressed", 0.8),
)
TREATMENT_WEIGHT = {
    "botox": 35.0,
    "filler": 20.0,
    "hydrafacial": 15.0,
    "laser hair removal": 12.0,
    "microneedling": 10.0,
    "chemical peel": 8.0,
}
TEXTBACK_BODY = (
    "Hi, this is {name} - sorry we missed your call! What treatment were you calling about? "
    "Reply STOP to opt out."
)
REPLY_BODY = "{name}: thanks! What day and time suit you best?"
INBOUND_BODIES = ("botox please", "do you have anything thursday?", "first time", "yes", "ok")


class SeedError(Exception):
    """The history cannot be seeded here; the message says why."""


@dataclass(frozen=True, slots=True)
class SeedSummary:
    calls: int
    conversations: int
    messages: int
    patients: int


class _Weighted:
    """A fast weighted choice (cumulative weights, one random number)."""

    def __init__(self, items: Sequence[tuple[Any, float]]) -> None:
        self.values = [value for value, _ in items]
        self.cumulative = list(itertools.accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> Any:
        x = rng.random() * self.cumulative[-1]
        return self.values[bisect.bisect_right(self.cumulative, x)]


def _allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights``, exactly (largest remainders)."""
    whole = sum(weights)
    shares = [total * w / whole for w in weights]
    counts = [math.floor(s) for s in shares]
    rest = total - sum(counts)
    for index in sorted(range(len(shares)), key=lambda i: counts[i] - shares[i])[:rest]:
        counts[index] += 1
    return counts


# --- writing rows in bulk ----------------------------------------------------------------------


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy would store on SQLite: UTC text with microseconds, dates as text."""
    kind = type(value)
    if kind is datetime:
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if kind is date:
        return value.isoformat()
    if kind is bool:
        return int(value)
    return value


class BulkWriter:
    """Rows buffered per table and written with COPY (PostgreSQL) or executemany (SQLite)."""

    ORDER = ("patients", "conversations", "calls", "appointments", "messages")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.postgres = connection.dialect.name == "postgresql"
        self.columns: dict[str, Sequence[str]] = {
            "patients": PATIENT_COLUMNS,
            "conversations": CONVERSATION_COLUMNS,
            "calls": CALL_COLUMNS,
            "appointments": APPOINTMENT_COLUMNS,
            "messages": MESSAGE_COLUMNS,
        }
        self.rows: dict[str, list[tuple[Any, ...]]] = {name: [] for name in self.columns}
        self.written: dict[str, int] = dict.fromkeys(self.columns, 0)

    def add(self, table: str, row: tuple[Any, ...]) -> None:
        self.rows[table].append(row)

    def pending(self) -> int:
        return sum(len(rows) for rows in self.rows.values())

    def write(self, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = ", ".join(columns)
        raw: Any = self.connection.connection.driver_connection
        if self.postgres:
            with raw.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" * len(columns))
            # Convert only the columns that need it (the rows are uniform per table).
            first = rows[0]
            convert = [
                i
                for i in range(len(columns))
                if any(type(row[i]) in (datetime, date, bool) for row in (first, rows[-1]))
                or columns[i].endswith(("_at", "_after", "day"))
            ]
            if convert:
                fixed = []
                for row in rows:
                    values = list(row)
                    for i in convert:
                        values[i] = _sqlite_value(values[i])
                    fixed.append(values)
            else:
                fixed = [list(row) for row in rows]
            cursor = raw.cursor()
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({marks})",  # noqa: S608 - fixed names
                fixed,
            )
            cursor.close()
        self.written[table] = self.written.get(table, 0) + len(rows)

    def flush(self) -> None:
        for table in self.ORDER:
            self.write(table, self.columns[table], self.rows[table])
            self.rows[table] = []

    def write_dicts(self, table: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            columns = list(rows[0])
            self.write(table, columns, [tuple(row[c] for c in columns) for row in rows])


# --- the history ---------------------------------------------------------------------------


@dataclass
class _Ids:
    patient: int
    call: int
    conversation: int
    message: int
    appointment: int

    def next(self, kind: str) -> int:
        value: int = getattr(self, kind)
        setattr(self, kind, value + 1)
        return value


def _start_ids(session: Session) -> _Ids:
    def after(model: Any) -> int:
        return int(session.scalar(select(func.coalesce(func.max(model.id), 0))) or 0) + 1

    return _Ids(
        after(Patient), after(Call), after(Conversation), after(Message), after(Appointment)
    )


class _LocationHistory:
    """Generates one location's calls, day by day, into the writer and its rollups."""

    def __init__(
        self, location: Location, rng: random.Random, ids: _Ids, writer: BulkWriter, end: date
    ) -> None:
        self.location = location
        self.zone = location.zone
        self.rng = rng
        self.ids = ids
        self.writer = writer
        self.end = end
        self.opening: list[tuple[TimeRange, ...]] = [location.opening_ranges(d) for d in range(7)]
        self.closures = frozenset(location.closures)
        services = [s for s in location.services if not s.consult]
        self.treatments = _Weighted(
            [(s, TREATMENT_WEIGHT.get(s.name.casefold(), 5.0)) for s in services]
        )
        self.has_treatments = bool(services)
        self.hours = [
            _Weighted([(h, HOUR_VOLUME[h] * (1.0 if wd < 5 else 0.8)) for h in range(24)])
            for wd in range(7)
        ]
        self.screenings = _Weighted(SCREENINGS)
        self.statuses = _Weighted(TEXTBACK_STATUSES)
        self.conversations = 0
        self.messages = 0
        self.patients = 0
        self.calls = 0
        self.rollups: list[rollup.DayRollup] = []
        # The bot's reply latencies per conversation, until the call is counted.
        self._replies: dict[int, list[int]] = {}

    def _open(self, local: datetime) -> bool:
        if self.closures and local.date().isoformat() in self.closures:
            return False
        minute = local.hour * 60 + local.minute
        return any(r.start_minutes <= minute < r.end_minutes for r in self.opening[local.weekday()])

    def _reason(self, local: datetime) -> str:
        if not self._open(local):
            return "after_hours"
        busy = 0.55 if local.hour in PEAK_HOURS else 0.35
        x = self.rng.random()
        return "staff_busy" if x < busy else "no_answer" if x < busy + 0.35 else "caller_hung_up"

    def _patient(self, at: datetime) -> tuple[int, str]:
        pid = self.ids.next("patient")
        phone = f"+1{4_242_000_000 + pid}"
        self.writer.add("patients", (pid, self.location.id, phone, None, at, at))
        self.patients += 1
        return pid, phone

    def _message(self, row: dict[str, Any]) -> int:
        mid = self.ids.next("message")
        sid = f"SMseed{mid:026x}" if row.get("status") not in ("failed", "suppressed") else None
        values = {
            "id": mid,
            "location_id": self.location.id,
            "provider": "twilio",
            "provider_sid": sid,
            "idempotency_key": None,
            "attempts": 1 if row["direction"] == "outbound" else 0,
            "call_id": None,
            "trigger_at": None,
            "sent_at": None,
            **row,
        }
        values.setdefault("send_after", values["created_at"])
        values.setdefault("status_at", values["sent_at"])
        self.writer.add("messages", tuple(values[c] for c in MESSAGE_COLUMNS))
        self.messages += 1
        return mid

    def day(self, day: date, count: int) -> None:
        rng = self.rng
        weekday = day.weekday()
        day_rollup = rollup.DayRollup(self.location.id, day)
        moments = sorted(
            datetime.combine(
                day,
                time(self.hours[weekday].pick(rng), rng.randrange(60), rng.randrange(60)),
                tzinfo=self.zone,
            )
            for _ in range(count)
        )
        last_open: tuple[int, int] | None = None  # (conversation, patient) to join
        for local in moments:
            missed_at = local.astimezone(UTC)
            if rollup.local_day(missed_at, self.zone) != day:
                continue  # a wall time skipped by a DST change: no such call
            facts, opened = self._call(local, missed_at, last_open)
            if opened is not None:
                last_open = opened
            replies = self._replies.pop(facts.conversation_id or 0, [])
            rollup.add_call(day_rollup, facts, self.zone, replies)
        self.rollups.append(day_rollup)

    def _call(
        self, local: datetime, missed_at: datetime, join: tuple[int, int] | None
    ) -> tuple[CallFacts, tuple[int, int] | None]:
        rng = self.rng
        reason = self._reason(local)
        screening: str = self.screenings.pick(rng)
        if screening == "joined_conversation" and join is None:
            screening = "cooldown"
        ring = timedelta(seconds=0 if reason == "after_hours" else rng.uniform(12, 24))
        started_at = missed_at - ring
        call_id = self.ids.next("call")
        self.calls += 1
        patient_id: int | None = None
        phone: str | None = None
        from_raw = "anonymous"
        if screening == "joined_conversation" and join is not None:
            patient_id = join[1]
            phone = f"+1{4_242_000_000 + patient_id}"
            from_raw = phone
        elif screening == "invalid_number":
            from_raw = "+1555"
        elif screening != "anonymous":
            patient_id, phone = self._patient(started_at)
            from_raw = phone
        conversation_id: int | None = (
            join[0] if screening == "joined_conversation" and join else None
        )
        facts: dict[str, Any] = {}
        opened: tuple[int, int] | None = None
        if screening in queries.OPENING_SCREENINGS and patient_id is not None and phone:
            conversation_id = self.ids.next("conversation")
            facts = self._conversation(
                conversation_id, call_id, patient_id, phone, missed_at, reason, screening
            )
            if facts.pop("open"):
                opened = (conversation_id, patient_id)
        self.writer.add(
            "calls",
            (
                call_id, "twilio", f"CAseed{call_id:026x}", self.location.id, patient_id,
                from_raw, phone, started_at, missed_at + timedelta(seconds=1),
                reason == "after_hours", "after_hours" if reason == "after_hours" else "ring",
                "missed", reason, missed_at, screening, missed_at + timedelta(milliseconds=40),
                conversation_id,
            ),
        )  # fmt: skip
        return (
            CallFacts(
                call_id=call_id,
                call_sid=f"CAseed{call_id:026x}",
                location_id=self.location.id,
                started_at=started_at,
                missed_at=missed_at,
                miss_reason=reason,
                screening=screening,
                caller=phone or from_raw,
                conversation_id=conversation_id,
                opened=bool(facts),
                **facts,
            ),
            opened,
        )

    def _conversation(
        self,
        conversation_id: int,
        call_id: int,
        patient_id: int,
        phone: str,
        missed_at: datetime,
        reason: str,
        screening: str,
    ) -> dict[str, Any]:
        """Write a conversation with its texts; returns its CallFacts fields (+ "open")."""
        rng = self.rng
        location = self.location
        appointment = screening == "appointment_textback"
        variant = "A" if appointment or rng.random() < 0.5 else "B"
        status: str = self.statuses.pick(rng)
        sent = status not in ("failed", "suppressed")
        if rng.random() < 0.015:
            latency_ms = rng.uniform(5_000, 90_000)  # a provider hiccup and a retry
        else:
            latency_ms = rng.lognormvariate(math.log(1100), 0.35)
        created = missed_at + timedelta(milliseconds=40)
        sent_at = missed_at + timedelta(milliseconds=latency_ms) if sent else None
        self._message(
            {
                "conversation_id": conversation_id,
                "patient_id": patient_id,
                "call_id": call_id,
                "direction": "outbound",
                "kind": "textback",
                "from_number": location.phone_number,
                "to_number": phone,
                "body": TEXTBACK_BODY.format(name=location.name),
                "idempotency_key": f"textback:{call_id}",
                "status": status,
                "created_at": created,
                "trigger_at": missed_at,
                "sent_at": sent_at,
                "status_at": sent_at,
            }
        )
        p_reply = 0.70 if appointment else 0.44 if variant == "A" else 0.50
        p_reply *= {"after_hours": 0.8, "caller_hung_up": 1.15}.get(reason, 1.0)
        if status not in ("delivered", "sent"):
            p_reply *= 0.2
        closes_by = missed_at + timedelta(days=1)
        settled = closes_by.date() < self.end  # old enough for the no-reply timer to close it
        c: dict[str, Any] = {
            "status": "active",
            "is_open": True,
            "close_reason": None,
            "lost_reason": None,
            "booked_by": None,
            "first_reply_at": None,
            "last_inbound_at": None,
            "closed_at": None,
            "booked_value_cents": None,
            "treatment": None,
            "qualified_at": None,
            "handoff_reason": None,
            "handed_off_at": None,
            "urgent_at": None,
        }
        replies: list[int] = []
        last_out = sent_at or created
        if rng.random() < p_reply:
            t = (sent_at or created) + timedelta(minutes=rng.lognormvariate(math.log(4), 1.0))
            c["first_reply_at"] = t
            x = rng.random()
            outcome = (
                "opted_out" if x < 0.03
                else "wrong_number" if x < 0.05
                else "urgent" if x < 0.06
                else "handoff" if x < 0.20 or appointment
                else "qualified"
            )  # fmt: skip
            exchanges = 3 if outcome == "qualified" else 1 if outcome != "handoff" else 2
            for n in range(exchanges):
                self._message(
                    {
                        "conversation_id": conversation_id,
                        "patient_id": patient_id,
                        "direction": "inbound",
                        "kind": "inbound",
                        "from_number": phone,
                        "to_number": location.phone_number,
                        "body": INBOUND_BODIES[n % len(INBOUND_BODIES)],
                        "status": "received",
                        "created_at": t,
                        "trigger_at": t,
                    }
                )
                c["last_inbound_at"] = t
                if outcome != "opted_out":
                    reply_ms = rng.lognormvariate(math.log(900), 0.4)
                    answered = t + timedelta(milliseconds=reply_ms)
                    self._message(
                        {
                            "conversation_id": conversation_id,
                            "patient_id": patient_id,
                            "direction": "outbound",
                            "kind": "reply",
                            "from_number": location.phone_number,
                            "to_number": phone,
                            "body": REPLY_BODY.format(name=location.name),
                            "idempotency_key": f"conv:{conversation_id}:{n + 1}:0",
                            "status": "delivered",
                            "created_at": t,
                            "trigger_at": t,
                            "sent_at": answered,
                        }
                    )
                    replies.append(queries.latency_ms(t, answered))
                    last_out = answered
                if n + 1 < exchanges:
                    t += timedelta(minutes=rng.lognormvariate(math.log(3), 0.8))
            treatment = self.treatments.pick(rng) if self.has_treatments else None
            if outcome in ("qualified", "handoff") and treatment is not None:
                c["treatment"] = treatment.name
            if outcome in ("opted_out", "wrong_number"):
                c.update(status="closed", is_open=False, close_reason=outcome, closed_at=t)
            elif outcome in ("urgent", "handoff"):
                c.update(
                    status="urgent" if outcome == "urgent" else "needs_staff",
                    handoff_reason="urgent" if outcome == "urgent"
                    else "appointment" if appointment
                    else rng.choice(("asked_for_person", "medical_question", "pricing", "consult")),
                    handed_off_at=t,
                    urgent_at=t if outcome == "urgent" else None,
                )  # fmt: skip
                y = rng.random()
                if not appointment and y < 0.45 and treatment is not None:
                    value = treatment.price_cents * rng.choice((1, 1, 1, 2))
                    c.update(
                        status="booked", is_open=False, close_reason="booked", booked_by="staff",
                        booked_value_cents=value, closed_at=t + timedelta(hours=2),
                    )  # fmt: skip
                elif y < 0.65 and settled:
                    c.update(
                        status="closed", is_open=False, close_reason="lost",
                        lost_reason=rng.choice(("Price", "Booked elsewhere", "Just browsing")),
                        closed_at=t + timedelta(hours=3),
                    )  # fmt: skip
            else:
                c["qualified_at"] = t
                y = rng.random()
                if y < 0.58 and c["treatment"] is not None:
                    who = "bot" if y < 0.26 else "page" if y < 0.46 else "staff"
                    # Staff enter what the visit was worth; the bot and page book at list price.
                    entered = (
                        treatment.price_cents * rng.choice((1, 1, 2))
                        if who == "staff" and treatment is not None
                        else None
                    )
                    c.update(
                        status="booked", is_open=False, close_reason="booked", booked_by=who,
                        booked_value_cents=entered, closed_at=t + timedelta(minutes=10),
                    )  # fmt: skip
                    if who != "staff" and treatment is not None:
                        c["bookings"] = self._appointments(
                            conversation_id, patient_id, treatment, t + timedelta(minutes=10), who
                        )
                elif settled:  # sent the booking link; the patient did not book
                    c.update(
                        status="closed", is_open=False, close_reason="booking_link",
                        closed_at=t + timedelta(days=1),
                    )  # fmt: skip
        elif rng.random() < 0.02:
            stop = (sent_at or created) + timedelta(minutes=rng.uniform(1, 60))
            c.update(status="closed", is_open=False, close_reason="opted_out", closed_at=stop)
        elif settled:
            c.update(status="closed", is_open=False, close_reason="no_reply", closed_at=closes_by)
        self._replies[conversation_id] = replies
        self.conversations += 1
        updated = c["closed_at"] or c["last_inbound_at"] or created
        self.writer.add(
            "conversations",
            (
                conversation_id, location.id, patient_id, c["status"], c["is_open"],
                c["close_reason"], "en", variant, "{}", False, c["lost_reason"], c["booked_by"],
                updated, missed_at, c["first_reply_at"], c["last_inbound_at"], last_out,
                c["closed_at"], c["booked_value_cents"], c["treatment"], c["qualified_at"],
                c["handoff_reason"], c["handed_off_at"], c["urgent_at"],
            ),
        )  # fmt: skip
        return {
            "open": c["is_open"],
            "variant": variant,
            "textback_status": status,
            "textback_sent_at": sent_at,
            "textback_trigger_at": missed_at,
            "status": c["status"],
            "first_reply_at": c["first_reply_at"],
            "qualified_at": c["qualified_at"],
            "handed_off_at": c["handed_off_at"],
            "handoff_reason": c["handoff_reason"],
            "urgent_at": c["urgent_at"],
            "close_reason": c["close_reason"],
            "booked_by": c["booked_by"],
            "booked_value_cents": c["booked_value_cents"],
            "treatment": c["treatment"],
            "bookings": c.get("bookings", ()),
        }

    def _appointments(
        self,
        conversation_id: int,
        patient_id: int,
        treatment: Service,
        booked_at: datetime,
        source: str,
    ) -> tuple[BookingChain, ...]:
        """Write the appointment the bot or the page booked, and what became of it: most
        are kept or upcoming, some cancelled, some moved (and a few of those cancelled)."""
        rng = self.rng
        local = (booked_at + timedelta(days=rng.lognormvariate(math.log(4), 0.7))).astimezone(
            self.zone
        )
        start = local.replace(hour=rng.randint(9, 17), minute=0, second=0, microsecond=0)
        value = treatment.price_cents or None
        x = rng.random()
        cancelled = x < CANCELLED_SHARE
        moved = CANCELLED_SHARE <= x < CANCELLED_SHARE + RESCHEDULED_SHARE
        first = self._appointment(
            conversation_id, patient_id, treatment, start, booked_at, value, source,
            cancelled_at=booked_at + timedelta(days=1) if cancelled or moved else None,
            replaces=None,
        )  # fmt: skip
        if not moved:
            status = "cancelled" if cancelled else "booked"
            return (BookingChain(status, start.astimezone(UTC), value, treatment.name, False),)
        later = start + timedelta(days=rng.randint(1, 10))
        gave_up = rng.random() < 0.15
        # The new time is booked in the thread the patient texted from, not this one.
        self._appointment(
            None, patient_id, treatment, later, booked_at + timedelta(days=1), value, "bot",
            cancelled_at=booked_at + timedelta(days=2) if gave_up else None, replaces=first,
        )  # fmt: skip
        status = "cancelled" if gave_up else "booked"
        return (BookingChain(status, later.astimezone(UTC), value, treatment.name, True),)

    def _appointment(
        self,
        conversation_id: int | None,
        patient_id: int,
        treatment: Service,
        start: datetime,
        created_at: datetime,
        value: int | None,
        source: str,
        *,
        cancelled_at: datetime | None,
        replaces: int | None,
    ) -> int:
        appointment_id = self.ids.next("appointment")
        start_utc = start.astimezone(UTC)
        end_utc = start_utc + timedelta(minutes=treatment.minutes)
        status = "cancelled" if cancelled_at else "booked"
        cancelled_by = "patient" if cancelled_at else None
        self.writer.add(
            "appointments",
            (
                appointment_id, self.location.id, patient_id, conversation_id, treatment.name,
                start_utc, end_utc, status, source, value, created_at, cancelled_at,
                cancelled_by, replaces,
            ),
        )  # fmt: skip
        return appointment_id


def seed_history(
    sessions: sessionmaker[Session],
    locations: Sequence[Location],
    *,
    calls: int,
    days: int,
    seed: int = 1,
    allow_existing: bool = False,
    end: date | None = None,
) -> SeedSummary:
    """Write ``calls`` missed calls over the ``days`` local days up to ``end`` (default:
    yesterday), spread over ``locations`` by made-up clinic sizes."""
    if not locations:
        raise SeedError("no locations to seed")
    rng = random.Random(seed)
    last_day = end or (datetime.now(UTC).date() - timedelta(days=1))
    first_day = last_day - timedelta(days=days - 1)
    with transaction(sessions) as session:
        existing = session.scalar(select(Call.id).limit(1)) is not None
        if existing and not allow_existing:
            raise SeedError(
                "the database already has calls; seeding demo history into it would mix "
                "made-up calls with real ones (pass --force to do it anyway)"
            )
        ids = _start_ids(session)
    sizes = [rng.uniform(0.4, 1.8) for _ in locations]
    day_list = [first_day + timedelta(days=i) for i in range(days)]
    # A clinic grows a little over the period; weekdays and weekends differ.
    day_weights = [
        WEEKDAY_VOLUME[d.weekday()] * (0.9 + 0.2 * i / max(1, days - 1))
        for i, d in enumerate(day_list)
    ]
    per_location = _allocate(calls, sizes)
    summary = SeedSummary(0, 0, 0, 0)
    for location, location_calls in zip(locations, per_location, strict=True):
        with transaction(sessions) as session:
            writer = BulkWriter(session.connection())
            history = _LocationHistory(location, rng, ids, writer, last_day)
            for day, count in zip(day_list, _allocate(location_calls, day_weights), strict=True):
                history.day(day, count)
                if writer.pending() >= BATCH_ROWS:
                    writer.flush()
            writer.flush()
            if existing:
                # Other calls may count on these days too: recompute them from the rows.
                rollup.recompute_days(session, [(location, r.day) for r in history.rollups])
            else:
                per_day = [r.rows() for r in history.rollups]
                for index, (table, _) in enumerate(per_day[0].by_table() if per_day else ()):
                    writer.write_dicts(
                        table.name, [row for rows in per_day for row in rows.by_table()[index][1]]
                    )
            summary = SeedSummary(
                summary.calls + history.calls,
                summary.conversations + history.conversations,
                summary.messages + history.messages,
                summary.patients + history.patients,
            )
    with transaction(sessions) as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            for name in ("patients", "calls", "conversations", "messages", "appointments"):
                connection.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "  # noqa: S608
                    f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"
                )
    _analyze(sessions)
    return summary


def _analyze(sessions: sessionmaker[Session]) -> None:
    """Fresh planner statistics: the tables just grew by orders of magnitude."""
    with transaction(sessions) as session:
        session.execute(text("ANALYZE"))
