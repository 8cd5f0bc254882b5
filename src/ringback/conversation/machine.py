"""The conversation as a pure state machine: ``Machine(clinic).transition(state, event, now)``.

It returns the next state and a list of commands (send this text, hand off to staff,
alert staff, schedule a timer, close ...). It touches no database and no network; the
service in :mod:`ringback.conversation.service` carries the commands out. Its tests are
tables of cases.

The shape of a conversation:

* **qualifying**: capture treatment, preferred time and new/returning from whatever the
  patient writes; ask only for what is missing, one question per text, at most
  :data:`MAX_QUESTIONS` bot questions (the text-back's own question is the first).
* **offering**: where the location schedules (it has providers), a standard service with a
  time preference gets two or three real slots closest to it ("Reply 1, 2 or 3"). A choice
  books it (the service reports back :class:`Booked` or :class:`SlotTaken`); "none of
  those" or a new preference gets new offers; after three rounds, the booking page link.
* **routed**: without scheduling, a standard service with a time preference gets the
  booking link with the service prefilled; a consult, a medical question, price talk the
  catalogue cannot answer, a request for a person or anything not understood goes to
  staff with the whole thread (**handoff**).
* **appointments**: a patient with an upcoming appointment can confirm, cancel or
  reschedule it in the thread (reschedule offers new slots for the same service).
* **urgent**: a symptom after a treatment alerts staff at once and answers with safety
  wording; the bot never handles it.
* **closed**: wrong number, opt-out, no reply, or after routing when nothing is left.

Whole-message carrier keywords (STOP, START, HELP) never reach the machine: the messaging
layer handles them first, so they work in every state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from ringback.conversation.understand import TimeWindow as TimeWindowLike
from ringback.conversation.understand import Understanding

MAX_QUESTIONS = 3
Stage = Literal["qualifying", "offering", "routed", "handoff", "urgent", "closed"]
MAX_OFFER_ROUNDS = 3
Question = Literal["treatment", "time", "patient", "appointment", "confirm", "waitlist"]
Language = Literal["en", "es"]
TimerKind = Literal["nudge", "close"]


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    price_cents: int
    consult: bool
    # Someone at the location performs it (a waitlist for it could be refilled).
    bookable: bool = True


@dataclass(frozen=True, slots=True)
class Offer:
    """A slot offered in the thread (ISO UTC times; ``label`` as the patient reads it)."""

    start: str
    end: str
    provider_id: str
    room_id: str
    label: str


@dataclass(frozen=True, slots=True)
class Clinic:
    """What the machine needs to know about the location (built from its config)."""

    services: tuple[ServiceInfo, ...]
    has_booking_link: bool
    nudge_after: timedelta
    close_after: timedelta
    # The first moment at or after the given one inside the location's texting hours.
    next_texting_time: Callable[[datetime], datetime] = lambda moment: moment
    # "X" to a booking asks once before cancelling (a location setting).
    confirm_cancel: bool = True
    # The location keeps a waitlist: the bot offers it when no slot fits the wish.
    waitlist: bool = False
    # Scheduling: whether the location books itself. Free slots are not looked up here:
    # the machine asks for them (FindOffers) and is told what was found (OffersFound).
    schedules: bool = False

    def service(self, name: str) -> ServiceInfo | None:
        for service in self.services:
            if service.name == name:
                return service
        return None


@dataclass(frozen=True, slots=True)
class State:
    """Everything the machine remembers; stored as JSON on the conversation."""

    stage: Stage = "qualifying"
    language: Language = "en"
    treatments: tuple[str, ...] = ()
    times: tuple[tuple[str, str], ...] = ()  # ISO start/end windows, location zone
    timing: str | None = None  # asap | flexible | unsure
    patient: str | None = None  # new | returning
    known_patient: bool = False
    questions: int = 0
    last_question: Question | None = None
    misses: int = 0  # replies to the last question that did not answer it
    price_answered: bool = False
    awaiting_reply_since: str | None = None  # ISO time of the bot's last question
    nudged: bool = False
    nudge_at: str | None = None
    close_at: str | None = None
    paused: bool = False  # staff took over
    outcome: str | None = None  # why it was routed, handed off or closed
    # Scheduling: the slots on the table, starts turned down, offer rounds so far, and the
    # appointment this thread is about (an upcoming one, or the one just booked).
    offers: tuple[Offer, ...] = ()
    declined: tuple[str, ...] = ()
    offer_rounds: int = 0
    appointment_id: int | None = None
    appointment_when: str | None = None
    appointment_service: str | None = None
    rescheduling: bool = False
    # "Cancel your Thu 3pm Botox? Reply X again ...": waiting for that answer.
    cancel_pending: bool = False
    # The waitlist entry whose freed slot the thread is offering (None: not a waitlist offer).
    waitlist_entry: int | None = None
    # A clarifying question's numbered choices (service names, new/returning, asap), so
    # "2" answers it; empty when the last question offered none.
    clarify: tuple[str, ...] = ()
    # The question last asked again as choices: a third time it goes to a person.
    clarified: Question | None = None
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["treatments"] = list(self.treatments)
        data["times"] = [list(t) for t in self.times]
        data["declined"] = list(self.declined)
        data["clarify"] = list(self.clarify)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> State:
        if not data:
            return cls()
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["treatments"] = tuple(values.get("treatments", ()))
        values["times"] = tuple(tuple(t) for t in values.get("times", ()))
        values["offers"] = tuple(Offer(**o) for o in values.get("offers", ()))
        values["declined"] = tuple(values.get("declined", ()))
        values["clarify"] = tuple(values.get("clarify", ()))
        return cls(**values)

    @property
    def treatment(self) -> str | None:
        return self.treatments[0] if self.treatments else None

    @property
    def has_time(self) -> bool:
        return bool(self.times) or self.timing is not None


# --- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Upcoming:
    """The patient's next appointment (``when`` as the patient reads it)."""

    id: int
    when: str
    service: str


@dataclass(frozen=True, slots=True)
class TextedBack:
    """The text-back went out; it asked ``question`` (treatment, or about an appointment)."""

    question: Question = "treatment"
    known_patient: bool = False
    upcoming: Upcoming | None = None


@dataclass(frozen=True, slots=True)
class Inbound:
    """The patient wrote something (not a carrier keyword).

    ``reopened``: the thread had closed (booked, no reply ...) and this text continues it:
    the bot owns it again and answers.
    """

    understanding: Understanding
    upcoming: Upcoming | None = None
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class Booked:
    """The slot the patient chose is booked (``when``/``provider`` as the patient reads them)."""

    appointment_id: int
    when: str
    provider: str
    rescheduled: bool = False
    treatment: str = ""  # what was booked, when it differs from the thread (booking page)


@dataclass(frozen=True, slots=True)
class SlotTaken:
    """Someone else got the chosen slot first."""

    start: str


@dataclass(frozen=True, slots=True)
class OffersFound:
    """The free slots the service found for a :class:`FindOffers` (maybe none)."""

    offers: tuple[Offer, ...]
    template: str = "offer_slots"
    price_line: str = ""


@dataclass(frozen=True, slots=True)
class Reminded:
    """A reminder of ``upcoming`` went out in this thread (the reminder sweep sent it): a
    reply is about that appointment (confirm, cancel, reschedule, running late, a question)."""

    upcoming: Upcoming
    # The visit's start (ISO): the thread waits for a reply until then, not just a day.
    until: str | None = None


@dataclass(frozen=True, slots=True)
class MissedVisit:
    """Staff marked the patient's visit for ``treatment`` a no-show: one warm text offers
    fresh times (``kind`` no_show, an automated text)."""

    treatment: str


@dataclass(frozen=True, slots=True)
class Offered:
    """Ringback texts first, with real times: a slot freed for a waitlisted patient
    (``waitlist_entry``), or a rebooking text when the treatment is due again."""

    treatment: str
    offers: tuple[Offer, ...]
    template: Literal["waitlist_offer", "rebook"]
    waitlist_entry: int | None = None


@dataclass(frozen=True, slots=True)
class TimerDue:
    kind: TimerKind


@dataclass(frozen=True, slots=True)
class StaffTookOver:
    pass


@dataclass(frozen=True, slots=True)
class HandedBack:
    """Staff give the thread back. ``answer``: the patient wrote last and staff did not
    answer it, so the bot answers now (staff may tick "already answered")."""

    answer: bool = False


Event = (
    TextedBack
    | Inbound
    | TimerDue
    | StaffTookOver
    | HandedBack
    | Booked
    | SlotTaken
    | OffersFound
    | Reminded
    | MissedVisit
    | Offered
)


# --- commands --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """Send the patient the text ``template`` (a key of :mod:`replies`) in ``language``."""

    template: str
    language: Language
    values: tuple[tuple[str, str], ...] = ()
    kind: Literal["reply", "nudge", "no_show", "waitlist", "rebook"] = "reply"


@dataclass(frozen=True, slots=True)
class HandOff:
    reason: str
    urgent: bool = False


@dataclass(frozen=True, slots=True)
class AlertStaff:
    reason: str
    urgent: bool


@dataclass(frozen=True, slots=True)
class Qualified:
    treatment: str | None


@dataclass(frozen=True, slots=True)
class SetPatientStatus:
    status: str


@dataclass(frozen=True, slots=True)
class OptOut:
    pass


@dataclass(frozen=True, slots=True)
class MarkWrongNumber:
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    kind: TimerKind
    at: datetime


@dataclass(frozen=True, slots=True)
class Close:
    reason: str


@dataclass(frozen=True, slots=True)
class Book:
    """Book ``offer`` for ``treatment`` (replacing appointment ``replaces``, a reschedule)."""

    offer: Offer
    treatment: str
    replaces: int | None = None
    waitlist_entry: int | None = None


@dataclass(frozen=True, slots=True)
class FindOffers:
    """Look up the free slots for ``treatment`` closest to the wished-for ``times`` (ISO
    windows in the location's zone), never starting at one of ``exclude``; answer with
    :class:`OffersFound` (``template`` and ``price_line`` travel along for the reply)."""

    treatment: str
    times: tuple[tuple[str, str], ...]
    exclude: tuple[str, ...]
    template: str = "offer_slots"
    price_line: str = ""
    # "None of those": other days and parts of the day, not the same times a bit later.
    spread: bool = False


@dataclass(frozen=True, slots=True)
class CancelAppointment:
    appointment_id: int


@dataclass(frozen=True, slots=True)
class ConfirmAppointment:
    appointment_id: int


@dataclass(frozen=True, slots=True)
class JoinWaitlist:
    """Put the patient on the waitlist for ``treatment`` at ``times`` (ISO windows)."""

    treatment: str
    times: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class KeepWaiting:
    """The patient passed on (or lost) the slot offered to ``waitlist_entry``: it waits on."""

    waitlist_entry: int


@dataclass(frozen=True, slots=True)
class NoteForStaff:
    """Leave staff a note on the thread (``what``: a key the service words, e.g.
    running_late); no handoff: the bot keeps the thread."""

    what: str


Command = (
    Reply
    | HandOff
    | AlertStaff
    | Qualified
    | SetPatientStatus
    | OptOut
    | MarkWrongNumber
    | Schedule
    | Close
    | Book
    | FindOffers
    | CancelAppointment
    | ConfirmAppointment
    | NoteForStaff
    | JoinWaitlist
    | KeepWaiting
)


# --- the machine -----------------------------------------------------------------------


@dataclass
class _Step:
    state: State
    commands: list[Command] = field(default_factory=list)

    def reply(self, template: str, **values: str) -> None:
        self.commands.append(Reply(template, self.state.language, tuple(sorted(values.items()))))

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)


class Machine:
    """The conversation rules for one clinic."""

    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic

    def transition(self, state: State, event: Event, now: datetime) -> tuple[State, list[Command]]:
        step = _Step(replace(state, seq=state.seq + 1))
        if isinstance(event, TextedBack):
            self._texted_back(step, event, now)
        elif isinstance(event, Inbound):
            self._inbound(step, event.understanding, now, event.upcoming, reopened=event.reopened)
        elif isinstance(event, TimerDue):
            self._timer(step, event.kind, now)
        elif isinstance(event, StaffTookOver):
            step.update(paused=True, nudge_at=None)
        elif isinstance(event, HandedBack):
            self._handed_back(step, event, now)
        elif isinstance(event, Booked):
            self._booked(step, event)
        elif isinstance(event, SlotTaken) and state.waitlist_entry is not None:
            # First reply wins a freed slot; the others hear it is gone and keep waiting.
            step.commands += [KeepWaiting(state.waitlist_entry), Close("waitlist_taken")]
            step.reply("waitlist_taken")
            step.update(
                stage="closed",
                outcome="waitlist_taken",
                offers=(),
                waitlist_entry=None,
                awaiting_reply_since=None,
                nudge_at=None,
                close_at=None,
            )
        elif isinstance(event, SlotTaken):
            step.update(declined=(*state.declined, event.start))
            self._offer(step, now, template="slot_taken")
        elif isinstance(event, OffersFound):
            self._offers_found(step, event, now)
        elif isinstance(event, Reminded):
            self._reminded(step, event, now)
        elif isinstance(event, MissedVisit):
            self._missed_visit(step, event, now)
        elif isinstance(event, Offered):
            self._offered(step, event, now)
        return step.state, step.commands

    # --- events -------------------------------------------------------------------------

    def _texted_back(self, step: _Step, event: TextedBack, now: datetime) -> None:
        step.update(
            stage="qualifying",
            questions=1,
            last_question=event.question,
            known_patient=event.known_patient,
            patient="returning" if event.known_patient else step.state.patient,
        )
        self._remember(step, event.upcoming)
        self._await_reply(step, now)

    def _reminded(self, step: _Step, event: Reminded, now: datetime) -> None:
        """The thread is about the reminded appointment now; staff keep a thread they own."""
        upcoming = event.upcoming
        step.update(
            appointment_id=upcoming.id,
            appointment_when=upcoming.when,
            appointment_service=upcoming.service,
            cancel_pending=False,
        )
        state = step.state
        if state.paused or state.stage in ("handoff", "urgent"):
            return
        step.update(
            stage="qualifying",
            outcome="reminded",
            offers=(),
            offer_rounds=0,
            declined=(),
            rescheduling=False,
            misses=0,
            clarify=(),
            last_question="confirm",
        )
        self._await_reply(step, now, nudge=False)
        close_at = step.state.close_at
        until = datetime.fromisoformat(event.until) if event.until else None
        if until is not None and close_at and until > datetime.fromisoformat(close_at):
            # "C" the evening before a visit booked a week ago still lands in this thread.
            step.update(close_at=until.isoformat())
            step.commands[-1] = Schedule("close", until)

    def _missed_visit(self, step: _Step, event: MissedVisit, now: datetime) -> None:
        """A no-show: fresh times for the same treatment, with a warm word (no blame)."""
        state = step.state
        if state.paused or state.stage in ("handoff", "urgent"):
            return
        step.update(
            stage="qualifying",
            treatments=(event.treatment,),
            times=(),
            timing="asap",
            appointment_id=None,
            appointment_when=None,
            appointment_service=None,
            rescheduling=False,
            cancel_pending=False,
            offers=(),
            offer_rounds=0,
            declined=(),
            misses=0,
            nudged=True,  # the no-show text is the one automated text: no nudge after it
        )
        step.commands.append(FindOffers(event.treatment, (), (), template="no_show_offer"))

    def _offered(self, step: _Step, event: Offered, now: datetime) -> None:
        """A freed slot for a waitlisted patient, or times for a due rebooking; staff keep
        a thread they own (no text then)."""
        state = step.state
        if state.paused or state.stage in ("handoff", "urgent") or not event.offers:
            return
        waitlist = event.template == "waitlist_offer"
        step.update(
            stage="offering",
            outcome="waitlist_offer" if waitlist else "rebook_offer",
            treatments=(event.treatment,),
            times=(),
            timing=None,
            offers=event.offers,
            # A "no" to the one freed slot is not a request for more times.
            offer_rounds=MAX_OFFER_ROUNDS if waitlist else 1,
            declined=(),
            rescheduling=False,
            cancel_pending=False,
            misses=0,
            clarify=(),
            last_question=None,
            nudged=True,  # the offer is the one automated text: no nudge after it
            waitlist_entry=event.waitlist_entry,
        )
        values = (
            ("choices", _choices(len(event.offers), state.language)),
            ("slots", _slot_list(event.offers) if not waitlist else event.offers[0].label),
            ("treatment", event.treatment),
        )
        kind: Literal["waitlist", "rebook"] = "waitlist" if waitlist else "rebook"
        step.commands.append(Reply(event.template, state.language, values, kind=kind))
        self._await_reply(step, now, nudge=False)

    def _waitlist_reply(self, step: _Step, u: Understanding, now: datetime) -> bool:
        """Yes or no to "join the waitlist?", or no to a freed slot; False otherwise."""
        state = step.state
        said_no = bool({"deny", "decline"} & set(u.intents))
        if state.last_question == "waitlist":
            treatment = self._offer_treatment(state)
            if "affirm" in u.intents and not said_no and treatment:
                step.commands += [JoinWaitlist(treatment, state.times), Close("waitlisted")]
                step.reply("waitlisted")
                step.update(stage="closed", outcome="waitlisted", last_question=None, close_at=None)
                return True
            if said_no and not (u.times or u.timing or u.treatments):
                step.update(last_question=None)
                self._no_offers(step, now, treatment or "", "", waitlist=False)
                return True
            step.update(last_question=None)
            return False
        if state.waitlist_entry is not None and state.stage == "offering" and said_no:
            step.commands += [KeepWaiting(state.waitlist_entry), Close("waitlist_declined")]
            step.reply("waitlist_declined")
            step.update(
                stage="closed",
                outcome="waitlist_declined",
                offers=(),
                waitlist_entry=None,
                close_at=None,
            )
            return True
        return False

    def _remember(self, step: _Step, upcoming: Upcoming | None) -> None:
        if upcoming is not None and step.state.appointment_id is None:
            step.update(
                appointment_id=upcoming.id,
                appointment_when=upcoming.when,
                appointment_service=upcoming.service,
            )

    def _inbound(
        self,
        step: _Step,
        u: Understanding,
        now: datetime,
        upcoming: Upcoming | None = None,
        *,
        reopened: bool = False,
    ) -> None:
        self._remember(step, upcoming)
        if reopened:
            self._reopen(step, upcoming)
        u = self._clarified(step.state, u)
        state = before = step.state
        step.update(awaiting_reply_since=None, nudge_at=None, language=u.language, clarify=())
        if "stop" in u.intents:
            step.commands += [OptOut(), Close("opted_out")]
            step.update(stage="closed", outcome="opted_out", close_at=None)
            return
        if "urgent" in u.intents:
            self._capture(step, u)  # the treatment named with the symptom, for staff
            step.commands += [AlertStaff("urgent", urgent=True), HandOff("urgent", urgent=True)]
            step.reply("urgent")
            step.update(stage="urgent", outcome="urgent", close_at=None)
            return
        if "wrong_number" in u.intents:
            step.commands += [MarkWrongNumber(), Close("wrong_number")]
            step.reply("wrong_number")
            step.update(stage="closed", outcome="wrong_number", close_at=None)
            return
        self._capture(step, u)  # what was said is kept even when staff have the thread
        if state.paused or state.stage in ("handoff", "urgent", "closed"):
            return  # staff have it (or it is over); the bot stays quiet
        state = step.state
        if self._waitlist_reply(step, u, now):
            return
        state = step.state
        if (
            (self.clinic.schedules or state.outcome == "reminded")
            and state.appointment_id is not None
            and state.stage != "offering"
            and self._appointment_reply(step, u, now)
        ):
            return
        if state.last_question == "appointment":
            if "deny" in u.intents and not u.treatments:
                # "No" to "are you calling about your appointment?": a new enquiry.
                step.update(appointment_id=None, appointment_when=None, appointment_service=None)
                self._next(step, now, "")
                return
            self._hand_off(step, "appointment", "handoff_appointment")
            return
        if state.stage == "offering" and not {"human", "medical_question"} & set(u.intents):
            self._choose(step, before, u, now)
            return
        for intent, reason, template in (
            ("human", "asked_for_person", "handoff_person"),
            ("medical_question", "medical_question", "handoff_medical"),
            ("cancel", "appointment_change", "handoff_appointment"),
            ("reschedule", "appointment_change", "handoff_appointment"),
        ):
            if intent in u.intents:
                self._hand_off(step, reason, template)
                return
        consult = next(
            (s for t in state.treatments if (s := self.clinic.service(t)) and s.consult), None
        )
        if consult is not None:
            self._hand_off(step, "consult", "handoff_consult")
            return
        if state.stage == "routed":
            self._after_link(step, before, u, now)
            return
        price_line = ""
        if "price_question" in u.intents:
            service = self.clinic.service(state.treatment) if state.treatment else None
            if state.price_answered or service is None or service.price_cents <= 0:
                self._hand_off(step, "pricing", "handoff_pricing")
                return
            price_line = f"{service.name} starts at ${service.price_cents // 100}."
            step.update(price_answered=True)
        if "unsure" in u.intents and state.last_question == "treatment" and not state.treatments:
            if before.clarify:  # not sure even with the menu in front of them: a person helps
                self._hand_off(step, "treatment_unsure", "handoff_choose")
                return
            self._clarify(step, now, "treatment", template="unsure_treatment")
            return
        # A reply that answers the question, or tells us something else we needed, is not
        # a miss: "can I come in sat?" to "which treatment?" moves the conversation on.
        told_something = bool(u.treatments or u.times or u.timing or u.patient)
        answered = self._answered_last_question(state, u) or told_something
        if not answered and state.last_question is not None:
            step.update(misses=state.misses + 1)
            if step.state.misses >= 2:
                self._hand_off(step, f"{state.last_question}_not_understood", "handoff_generic")
                return
        else:
            step.update(misses=0)
        self._next(step, now, price_line)

    def _reopen(self, step: _Step, upcoming: Upcoming | None) -> None:
        """A closed thread continues: the bot owns it again, with what it already knows."""
        state = step.state
        booked = state.outcome in ("booked", "rescheduled", "confirmed", "acknowledged")
        keep_appointment = upcoming is not None and upcoming.id == state.appointment_id
        step.update(
            stage="qualifying",
            outcome=None,
            paused=False,
            questions=0,
            misses=0,
            nudged=False,
            offers=(),
            offer_rounds=0,
            declined=(),
            rescheduling=False,
            cancel_pending=False,
            last_question="confirm" if booked and keep_appointment else state.last_question,
        )
        if not keep_appointment:
            step.update(appointment_id=None, appointment_when=None, appointment_service=None)
            self._remember(step, upcoming)

    def _clarified(self, state: State, u: Understanding) -> Understanding:
        """A number that picks one of a clarifying question's choices, read as that answer."""
        if not state.clarify or u.choice is None or not 1 <= u.choice <= len(state.clarify):
            return u
        picked = state.clarify[u.choice - 1]
        plain = replace(u, choice=None, intents=tuple(i for i in u.intents if i != "choice"))
        if state.last_question == "patient" and picked in ("new", "returning"):
            return replace(plain, patient=picked)  # type: ignore[arg-type]
        if state.last_question == "time" and picked == "asap":
            return replace(plain, timing="asap")
        if state.last_question == "treatment" and picked == TEAM:
            return replace(plain, intents=(*plain.intents, "human"))
        if state.last_question == "treatment" and self.clinic.service(picked) is not None:
            return replace(plain, treatments=(picked,))
        return u

    def _handed_back(self, step: _Step, event: HandedBack, now: datetime) -> None:
        state = step.state
        step.update(paused=False, stage="qualifying" if state.stage == "handoff" else state.stage)
        if not event.answer or step.state.stage not in ("qualifying", "offering", "routed"):
            return
        # The patient wrote while staff had the thread and nobody answered: the bot does.
        if step.state.stage == "offering" and step.state.offers:
            offers = step.state.offers
            step.reply(
                "offer_again",
                slots=_slot_list(offers),
                choices=_choices(len(offers), state.language),
            )
            self._await_reply(step, now)
            return
        if step.state.stage == "routed":
            step.update(stage="qualifying")
        step.update(misses=0, questions=min(state.questions, MAX_QUESTIONS - 1))
        self._next(step, now, "")

    def _after_link(self, step: _Step, before: State, u: Understanding, now: datetime) -> None:
        """The patient writes again after getting the booking link.

        A new treatment gets its own link; thanks, "ok" or a late answer ("new", "Friday")
        gets a short acknowledgement with the link again; anything else (a question, a
        problem with the link) goes to staff rather than the same link again.
        """
        state = step.state
        new = tuple(t for t in state.treatments if t not in before.treatments)
        standard = [t for t in new if (s := self.clinic.service(t)) and not s.consult]
        if standard:
            step.commands.append(Qualified(standard[0]))
            step.reply("booking_link", treatment=standard[0], price="")
            self._await_reply(step, now, nudge=False)
            return
        intents = set(u.intents)
        late_answer = bool(u.patient or u.times or u.timing) and not intents - {"affirm"}
        small_talk = bool(intents) and intents <= {"affirm", "thanks", "deny", "choice"}
        if (small_talk or late_answer) and not new:
            step.reply("ack_link", treatment=state.treatment or "")
            self._await_reply(step, now, nudge=False)
            return
        self._hand_off(step, "after_booking_link", "handoff_generic")

    def _timer(self, step: _Step, kind: TimerKind, now: datetime) -> None:
        state = step.state
        if kind == "nudge":
            due = state.nudge_at is not None and datetime.fromisoformat(state.nudge_at) <= now
            if (
                due
                and not state.nudged
                and not state.paused
                and state.awaiting_reply_since is not None
                and state.stage in ("qualifying", "offering")
            ):
                step.update(nudged=True, nudge_at=None)
                step.commands.append(Reply("nudge", state.language, kind="nudge"))
            return
        due = state.close_at is not None and datetime.fromisoformat(state.close_at) <= now
        if due and state.stage != "closed" and not state.paused and state.awaiting_reply_since:
            waiting = state.stage in ("qualifying", "offering")
            outcome = "no_reply" if waiting else state.outcome or "no_reply"
            step.commands.append(Close(outcome))
            step.update(stage="closed", outcome=outcome, close_at=None, nudge_at=None)

    # --- helpers ------------------------------------------------------------------------

    def _capture(self, step: _Step, u: Understanding) -> None:
        state = step.state
        treatments = state.treatments + tuple(t for t in u.treatments if t not in state.treatments)
        times = tuple((w.start.isoformat(), w.end.isoformat()) for w in u.times) or state.times
        patient = state.patient
        if u.patient and not state.known_patient and u.patient != patient:
            patient = u.patient
            step.commands.append(SetPatientStatus(u.patient))
        step.update(
            treatments=treatments,
            times=times,
            timing=u.timing or (None if u.times else state.timing),
            patient=patient,
        )

    @staticmethod
    def _answered_last_question(before: State, u: Understanding) -> bool:
        if before.last_question == "treatment":
            return bool(u.treatments)
        if before.last_question == "time":
            return bool(u.times) or u.timing is not None
        if before.last_question == "patient":
            return u.patient is not None
        return True

    def _next(self, step: _Step, now: datetime, price_line: str) -> None:
        state = step.state
        missing: Question | None = None
        if state.treatment is None:
            missing = "treatment"
        elif not state.has_time:
            missing = "time"
        elif state.patient is None:
            missing = "patient"
        if missing is not None and state.questions < MAX_QUESTIONS:
            if missing == state.last_question:
                # Never the same question twice in a row: offer choices instead, once.
                if state.clarified == missing:
                    self._hand_off(step, f"{missing}_not_understood", "handoff_generic")
                    return
                self._clarify(step, now, missing, price_line=price_line)
                return
            values = {"treatment": state.treatment or "", "price": price_line}
            step.reply(f"ask_{missing}", **values)
            step.update(questions=state.questions + 1, last_question=missing)
            self._await_reply(step, now)
            return
        if state.treatment is None or not state.has_time:
            self._hand_off(step, "not_qualified", "handoff_generic")
            return
        step.commands.append(Qualified(state.treatment))
        if self.clinic.schedules:
            self._offer(step, now, price_line=price_line)
            return
        if self.clinic.has_booking_link:
            step.reply("booking_link", treatment=state.treatment, price=price_line)
            step.update(stage="routed", outcome="booking_link", last_question=None)
            self._await_reply(step, now, nudge=False)
        else:
            self._hand_off(step, "ready_to_book", "handoff_booking")

    def _clarify(
        self,
        step: _Step,
        now: datetime,
        question: Question,
        *,
        template: str | None = None,
        price_line: str = "",
    ) -> None:
        """Ask ``question`` again as numbered choices ("Reply 1 for new, 2 for returning")."""
        state = step.state
        if question == "treatment":
            names = tuple(s.name for s in self.clinic.services if not s.consult)[:3]
            clarify = (*names, TEAM)
            menu = _menu(names, state.language, team=True)
        elif question == "patient":
            clarify, menu = ("new", "returning"), ""
        else:
            clarify, menu = ("asap",), ""
        step.reply(
            template or f"clarify_{question}",
            menu=menu,
            treatment=state.treatment or "",
            price=price_line,
        )
        step.update(
            questions=state.questions + 1,
            last_question=question,
            clarify=clarify,
            clarified=question,
            misses=1,
        )
        self._await_reply(step, now)

    # --- scheduling ---------------------------------------------------------------------

    def _offer(
        self,
        step: _Step,
        now: datetime,
        *,
        template: str = "offer_slots",
        price_line: str = "",
        spread: bool = False,
    ) -> None:
        """Ask for the slots closest to what the patient asked for (or fall back to the link
        after :data:`MAX_OFFER_ROUNDS`); :meth:`_offers_found` carries on."""
        state = step.state
        treatment = self._offer_treatment(state)
        if treatment is None:
            self._hand_off(step, "not_qualified", "handoff_generic")
            return
        if state.offer_rounds >= MAX_OFFER_ROUNDS:
            # Every round turned down: no time fits, so the waitlist (if kept) is offered.
            self._no_offers(step, now, treatment, price_line, waitlist=not state.rescheduling)
            return
        shown = tuple(o.start for o in state.offers)
        exclude = tuple(dict.fromkeys((*state.declined, *shown)))
        step.commands.append(
            FindOffers(treatment, state.times, exclude, template, price_line, spread)
        )

    @staticmethod
    def _offer_treatment(state: State) -> str | None:
        return state.appointment_service if state.rescheduling else state.treatment

    def _offers_found(self, step: _Step, event: OffersFound, now: datetime) -> None:
        state = step.state
        treatment = self._offer_treatment(state)
        if treatment is None:
            self._hand_off(step, "not_qualified", "handoff_generic")
            return
        offers, template, price_line = event.offers, event.template, event.price_line
        if template == "no_show_offer" and not offers:
            # No times to offer: the warm text alone, asking when suits them.
            step.commands.append(Reply("no_show", state.language, kind="no_show"))
            step.update(stage="qualifying", outcome="no_show", last_question="time")
            self._await_reply(step, now, nudge=False)
            return
        if not offers:
            self._no_offers(step, now, treatment, price_line, waitlist=not state.rescheduling)
            return
        if state.offer_rounds >= 1 and template == "offer_slots":
            template = "offer_more"
        values = (
            ("choices", _choices(len(offers), state.language)),
            ("price", price_line),
            ("slots", _slot_list(offers)),
            ("treatment", treatment),
        )
        kind: Literal["reply", "no_show"] = "no_show" if template == "no_show_offer" else "reply"
        step.commands.append(Reply(template, state.language, values, kind=kind))
        step.update(
            stage="offering",
            outcome="offered",
            offers=offers,
            offer_rounds=state.offer_rounds + 1,
            last_question=None,
            misses=0,
        )
        self._await_reply(step, now)

    def _no_offers(
        self,
        step: _Step,
        now: datetime,
        treatment: str,
        price_line: str,
        *,
        waitlist: bool = False,
    ) -> None:
        """Nothing suitable (or enough rounds): the waitlist when no slot fits the wish at
        all (the location keeps one), else the booking page, or a person."""
        step.update(offers=())
        service = self.clinic.service(treatment)
        if (
            waitlist
            and self.clinic.waitlist
            and service is not None
            and service.bookable
            and step.state.waitlist_entry is None
        ):
            step.reply("offer_waitlist", treatment=treatment)
            step.update(stage="qualifying", outcome="waitlist_asked", last_question="waitlist")
            self._await_reply(step, now, nudge=False)
            return
        if self.clinic.has_booking_link:
            step.reply("no_slots_link", treatment=treatment, price=price_line)
            step.update(stage="routed", outcome="booking_link", last_question=None)
            self._await_reply(step, now, nudge=False)
        else:
            self._hand_off(step, "no_suitable_time", "handoff_booking")

    def _choose(self, step: _Step, before: State, u: Understanding, now: datetime) -> None:
        """The patient answers an offer: a choice, "none of those", or a new wish."""
        state = step.state
        offers = state.offers
        chosen: Offer | None = None
        if u.choice is not None and 1 <= u.choice <= len(offers):
            chosen = offers[u.choice - 1]
        elif u.times:
            matching = [o for o in offers if _within(o, u.times)]
            if not matching:
                matching = [o for o in offers if _same_clock_time(o, u.times)]
            if len(matching) == 1:
                chosen = matching[0]
        elif len(offers) == 1 and "affirm" in u.intents and "decline" not in u.intents:
            chosen = offers[0]
        if chosen is not None:
            treatment = state.appointment_service if state.rescheduling else state.treatment
            step.commands.append(
                Book(
                    chosen,
                    treatment or "",
                    state.appointment_id if state.rescheduling else None,
                    state.waitlist_entry,
                )
            )
            step.update(awaiting_reply_since=None, nudge_at=None, misses=0)
            return
        new_treatment = state.treatments != before.treatments
        if "decline" in u.intents or "deny" in u.intents or u.times or u.timing or new_treatment:
            turned_down = "decline" in u.intents or "deny" in u.intents
            if turned_down:
                step.update(declined=(*state.declined, *(o.start for o in offers)))
            fresh_wish = bool(u.times or u.timing or new_treatment)
            self._offer(step, now, spread=turned_down and not fresh_wish)
            return
        if set(u.intents) <= {"thanks", "affirm"} and "thanks" in u.intents:
            step.reply("ack_offers", choices=_choices(len(offers), state.language))
            self._await_reply(step, now, nudge=False)
            return
        step.update(misses=state.misses + 1)
        if step.state.misses >= 2:
            self._hand_off(step, "offer_not_understood", "handoff_generic")
            return
        step.reply(
            "offer_again", slots=_slot_list(offers), choices=_choices(len(offers), state.language)
        )
        self._await_reply(step, now, nudge=False)

    def _booked(self, step: _Step, event: Booked) -> None:
        state = step.state
        treatment = (
            event.treatment
            or (state.appointment_service if state.rescheduling else state.treatment)
            or ""
        )
        step.reply(
            "rescheduled" if event.rescheduled else "booked",
            treatment=treatment,
            when=event.when,
            provider=event.provider,
        )
        outcome = "rescheduled" if event.rescheduled else "booked"
        step.commands.append(Close(outcome))
        step.update(
            stage="closed",
            outcome=outcome,
            offers=(),
            appointment_id=event.appointment_id,
            appointment_when=event.when,
            appointment_service=treatment,
            rescheduling=False,
            cancel_pending=False,
            waitlist_entry=None,
            last_question="confirm",
            awaiting_reply_since=None,
            nudge_at=None,
            close_at=None,
        )

    def _appointment_reply(self, step: _Step, u: Understanding, now: datetime) -> bool:
        """Confirm, cancel or reschedule the upcoming appointment; False if not about that."""
        state = step.state
        appointment_id = state.appointment_id
        if appointment_id is None:
            return False
        when = state.appointment_when or ""
        what = state.appointment_service or ""
        if "reschedule" in u.intents and not self.clinic.schedules:
            # No times of our own to offer (the clinic books elsewhere): the front desk.
            self._hand_off(step, "appointment_change", "handoff_appointment")
            return True
        if "reschedule" in u.intents:
            step.update(
                rescheduling=True, offers=(), offer_rounds=0, declined=(), cancel_pending=False
            )
            if u.times or u.timing:
                self._offer(step, now)
            else:
                step.reply("ask_reschedule_time")
                step.update(stage="qualifying", last_question="time")
                self._await_reply(step, now)
            return True
        cancel = "cancel" in u.intents or (
            state.cancel_pending and "affirm" in u.intents and "deny" not in u.intents
        )
        if cancel and (state.cancel_pending or not self.clinic.confirm_cancel):
            step.commands += [CancelAppointment(appointment_id), Close("cancelled")]
            step.reply("appointment_cancelled", when=when)
            step.update(
                stage="closed",
                outcome="cancelled",
                cancel_pending=False,
                nudge_at=None,
                close_at=None,
            )
            return True
        if cancel:
            step.reply("confirm_cancel", when=when, treatment=what)
            step.update(cancel_pending=True, last_question="confirm")
            self._await_reply(step, now, nudge=False)
            return True
        if state.cancel_pending and "deny" in u.intents:
            step.commands.append(Close("kept"))
            step.reply("appointment_kept", when=when)
            step.update(stage="closed", outcome="kept", cancel_pending=False, close_at=None)
            return True
        # "Yes" to the missed-call text's "are you calling about your appointment?" says what
        # the call was about, not that they confirm: that one still goes to the front desk.
        about_call = state.last_question == "appointment"
        plain = not (u.treatments or u.times or "deny" in u.intents)
        if "affirm" in u.intents and plain and not about_call:
            step.commands += [ConfirmAppointment(appointment_id), Close("confirmed")]
            step.reply("appointment_confirmed", when=when)
            step.update(stage="closed", outcome="confirmed", nudge_at=None, close_at=None)
            return True
        if state.rescheduling and state.last_question == "time" and (u.times or u.timing):
            self._offer(step, now)
            return True
        if "late" in u.intents:
            # "Running 10 min late": acknowledged, and the front desk sees a note.
            step.commands += [NoteForStaff("running_late"), Close("running_late")]
            step.reply("running_late", when=when)
            step.update(stage="closed", outcome="running_late", nudge_at=None, close_at=None)
            return True
        if "question" in u.intents:
            # A question about the visit (parking, what to bring ...): the front desk answers.
            self._hand_off(step, "appointment_question", "handoff_appointment")
            return True
        if set(u.intents) == {"thanks"} and plain:
            # "Thank you!" after the booking or its confirmation: a short, warm answer.
            step.commands.append(Close("acknowledged"))
            step.reply("ack_appointment", when=when)
            step.update(stage="closed", outcome="acknowledged", nudge_at=None, close_at=None)
            return True
        if state.last_question == "confirm" and plain and not u.intents:
            # Something the bot cannot place, about a booked visit: ask with the choices.
            step.reply("appointment_choices", when=when)
            step.update(last_question="confirm", cancel_pending=False)
            self._await_reply(step, now, nudge=False)
            return True
        return False

    def _hand_off(self, step: _Step, reason: str, template: str) -> None:
        step.commands += [HandOff(reason), AlertStaff(reason, urgent=False)]
        step.reply(template)
        step.update(stage="handoff", outcome=reason, nudge_at=None, close_at=None)

    def _await_reply(self, step: _Step, now: datetime, *, nudge: bool = True) -> None:
        nudge_at = (
            self.clinic.next_texting_time(now + self.clinic.nudge_after)
            if nudge and not step.state.nudged
            else None
        )
        close_at = now + self.clinic.close_after
        step.update(
            awaiting_reply_since=now.isoformat(),
            nudge_at=nudge_at.isoformat() if nudge_at else None,
            close_at=close_at.isoformat(),
        )
        if nudge_at is not None:
            step.commands.append(Schedule("nudge", nudge_at))
        step.commands.append(Schedule("close", close_at))


# The last numbered choice of "which treatment?": talk to a person instead.
TEAM = "__team__"


def _menu(names: tuple[str, ...], language: Language, *, team: bool) -> str:
    """ "1 for Botox, 2 for Filler, 3 for HydraFacial or 4 to ask our team"."""
    word = "para" if language == "es" else "for"
    items = [f"{n} {word} {name}" for n, name in enumerate(names, start=1)]
    if team:
        items.append(
            f"{len(names) + 1} para hablar con nuestro equipo"
            if language == "es"
            else f"{len(names) + 1} to ask our team"
        )
    joiner = " o " if language == "es" else " or "
    return ", ".join(items[:-1]) + joiner + items[-1] if len(items) > 1 else "".join(items)


def _slot_list(offers: tuple[Offer, ...]) -> str:
    return ", ".join(f"{n}) {o.label}" for n, o in enumerate(offers, start=1))


def _choices(count: int, language: Language) -> str:
    numbers = [str(n) for n in range(1, count + 1)]
    if count == 1:
        return "1"
    joiner = " or " if language == "en" else " o "
    return ", ".join(numbers[:-1]) + joiner + numbers[-1]


def _within(offer: Offer, windows: tuple[TimeWindowLike, ...]) -> bool:
    start = datetime.fromisoformat(offer.start)
    return any(w.start <= start < w.end for w in windows)


def _same_clock_time(offer: Offer, windows: tuple[TimeWindowLike, ...]) -> bool:
    """ "4pm works": a bare time names the offer at that time of day, whatever the date."""
    start = datetime.fromisoformat(offer.start)
    for window in windows:
        if window.end - window.start > timedelta(hours=1):
            continue  # "saturday" or "mornings" name no time of day to match an offer by
        local = start.astimezone(window.start.tzinfo)
        if (local.hour, local.minute) == (window.start.hour, window.start.minute):
            return True
    return False
