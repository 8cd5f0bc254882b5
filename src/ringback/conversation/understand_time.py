"""When a patient says they can come in: SMS time phrases turned into local time windows.

A hand-written scanner for the forms patients text ("tmrw afternoon", "next tues after 5",
"12/3 at 2pm", "wed or thu", "mornings work best", "martes por la tarde"). It is pure
(no clock, no I/O): ``now`` and the location come in as arguments. dateparser is not used:
it is slow and guesses dates from ordinary words.

Input is the folded text made by :mod:`ringback.conversation.understand` (lower case,
accents and apostrophes removed, emoji dropped, "p.m." written "pm").

Window rules (all in the location's zone; a window is ``[start, end)``):

* A day alone ("sat", "12/3", "tomorrow", "in 2 weeks") is the day's opening hours, first
  opening to last closing; a day the clinic is closed (no hours, or listed in ``closures``)
  is the whole day, 00:00-24:00.
* Parts of the day are fixed: morning 09:00-12:00, afternoon 12:00-17:00, evening and
  tonight 17:00-21:00, lunch and noon 12:00-13:00; "early"/"late" take 08:00-10:00 or
  10:00-12:00 (morning), 12:00-15:00 or 15:00-17:00 (afternoon), 17:00-19:00 or
  19:00-21:00 (evening); a day said "early" ("sabado temprano") is its early morning.
  Greetings are not parts of the day ("good morning", "buenas tardes", "Morning! ...").
* A clock time ("2pm", "3:30") is one hour from that time. "after H" runs from H to the
  day's closing time, or to 21:00 when the clinic is closed by then ("after work" is
  "after 5", "after lunch" "after 1", "after school" "after 3"). "before H" runs from
  opening to H (or the two hours before H). "between H and H2", "H-H2", "from H to H2"
  are that span.
* A bare hour without am/pm is am when the clinic is open then on that day, otherwise pm
  when the clinic is open then; when neither, 7-11 are am and the rest pm.
* Several days ("next week", "this weekend", "weekdays") give one window per day, and days
  the clinic is closed are left out (unless every one of them is closed). "next week" is
  Monday-Sunday of next calendar week; "this week" is today to Sunday; "this weekend" the
  coming Saturday and Sunday; "next weekend" the weekend of next calendar week.
* A weekday name is its next occurrence after today ("this <today>" is today); "next
  <weekday>" is that day in next calendar week. A date without a year that has passed is
  next year's; "the 3rd" is the next 3rd of a month.
* A time with no day ("2pm", "the 2pm one", "after 5") is its next occurrence on a day the
  clinic is open; a plural part ("mornings work best", "weekday evenings") gives that part
  on each open day of the next seven.
* Windows that have ended by ``now`` are dropped; one that has begun starts at ``now``.
* Days and times in one phrase combine: "wed or thu after 5" is two windows, "thursday
  morning or friday afternoon" pairs each day with its own part, "2pm tmrw" reads times
  first. A sentence end or three unrelated words end a phrase; a phrase of times alone
  takes the day named just before it ("anything tmrw? im free after 2"). A clock time
  inside a part or span of the same day replaces it ("after work wed, like 5:15" is
  17:15-18:15). Listed hours share a stated am/pm ("1, 2 or 3pm" is three windows).
* Said but not offered gives no window: a day ruled out ("not today", "tmrw is bad",
  "can't do monday"), a day past ("since this morning", "last night"), working hours
  ("I work 9-5"). A weekday beside a date ("tues 12/8") is that one date.
* Nothing absurd is guessed: explicit years must be this year or next, relative dates stop
  a year out, impossible dates ("2/30") and quantities ("1/2 syringe", "20 units") are
  not dates or hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal

from ringback.config import Location

DAY_END = 24 * 60
EVENING_END = 21 * 60


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A span a patient said they could come in: aware datetimes in the location's zone."""

    start: datetime
    end: datetime

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


# --- vocabulary ---------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _index_words(groups: Sequence[str], start: int = 0) -> dict[str, int]:
    """``{"monday": 0, "mon": 0, ...}`` from one space-separated group per index."""
    return {word: index for index, group in enumerate(groups, start) for word in group.split()}


_WEEKDAYS = _index_words(
    (
        "monday mon mondays lunes mondy monady",
        "tuesday tue tues tuesdays martes tuesdy teusday tuseday tusday",
        "wednesday wed weds wednesdays miercoles wensday wendsday wednsday wedensday wednes",
        "thursday thu thur thurs thursdays jueves thrusday thurday thursdy thrs",
        "friday fri fridays viernes fridy firday frday",
        "saturday sat saturdays sabado saterday satruday saturady satuday",
        "sunday sun sundays domingo sundy",
    )
)
_MONTHS = _index_words(
    (
        "jan january enero",
        "feb february febrero",
        "mar march marzo",
        "apr april abril",
        "may mayo",
        "jun june junio",
        "jul july julio",
        "aug august agosto",
        "sep sept september septiembre setiembre",
        "oct october octubre",
        "nov november noviembre",
        "dec december diciembre dic",
    ),
    start=1,
)
# Abbreviations that are also ordinary words ("I sat down", "the sun") count as days only
# next to day-like words.
_AMBIGUOUS_DAYS = _words("sat sun wed mon")
_DAY_CONTEXT_AFTER = _words("or and at after before around @ ? . ! , / - works would is am pm")
_DAY_CONTEXT_BEFORE = _words(
    """& , - / and by coming either el for maybe next o on or this through thru til till
    until y"""
)
_NOT_DAY_BEFORE = _words(
    """a been got had has have he i in it just she the they under was we were you"""
)

_TOMORROW = _words(
    """tmorrow tmr tmro tmrow tmrrw tmrw tmw tomm tommorow tommorrow tommorw tomoro tomorow
    tomorro tomorrow tomorrw tomoz"""
)
_TODAY = _words("today tdy hoy todays")
_TONIGHT = _words("tonight tonite tonigh")
_NUMBER_WORDS = _index_words(
    (
        "a an one un una",
        "two dos couple",
        "three tres few",
        "four cuatro",
        "five cinco",
        "six seis",
        "seven siete",
        "eight ocho",
        "nine nueve",
        "ten diez",
    ),
    start=1,
)

# Parts of the day as (start, end) minutes; "early"/"late" variants follow.
_PARTS: dict[str, tuple[int, int]] = {
    "morning": (9 * 60, 12 * 60),
    "afternoon": (12 * 60, 17 * 60),
    "evening": (17 * 60, EVENING_END),
    "lunch": (12 * 60, 13 * 60),
}
_EARLY_LATE: dict[tuple[str, str], tuple[int, int]] = {
    ("early", "morning"): (8 * 60, 10 * 60),
    ("late", "morning"): (10 * 60, 12 * 60),
    ("early", "afternoon"): (12 * 60, 15 * 60),
    ("late", "afternoon"): (15 * 60, 17 * 60),
    ("early", "evening"): (17 * 60, 19 * 60),
    ("late", "evening"): (19 * 60, EVENING_END),
}
# word -> (part, plural)
_PART_WORDS: dict[str, tuple[str, bool]] = {
    **dict.fromkeys(_words("morning mornin morn mornign moring manana"), ("morning", False)),
    **dict.fromkeys(_words("mornings mananas"), ("morning", True)),
    **dict.fromkeys(
        _words("afternoon aft arvo afternon afternooon aftn afternoom tarde"),
        ("afternoon", False),
    ),
    **dict.fromkeys(_words("afternoons tardes"), ("afternoon", True)),
    **dict.fromkeys(_words("evening eve evning night nite noche"), ("evening", False)),
    **dict.fromkeys(_words("evenings nights noches"), ("evening", True)),
    **dict.fromkeys(_words("lunch lunchtime"), ("lunch", False)),
}
# Clock words that end a phrase like "2 o'clock", "3ish".
_CLOCK_SUFFIX = _words("ish oclock oclk")
_CLOCK_BEFORE = _words("at @ around about abt approx las la round")
_AFTER_WORDS = _words("after aftr past from starting despues desde")
_BEFORE_WORDS = _words("before by until till til antes hasta")
# Words after a number that show it is a quantity, not an hour.
_UNITS = _words(
    """$ a am anos area areas años bucks cc day days dias dollars friends hour hours hr hrs
    kids lbs meses min mins minutes ml month months nd of off p pack people percent pm rd
    semana semanas session sessions st syringe syringes th times treatments unit units
    vial vials week weeks wk wks x year years yrs"""
)
_SENTENCE_END = _words(". ! ? ;")
# "the 3rd one", "the 2nd week": an ordinal that is not a day of the month
_NOT_A_DAY_OF_MONTH = _words("one option choice slot time opt week weekend month")
# "in 99 weeks" is not a booking request; relative dates stop at a year out.
_FURTHEST_DAYS = 366
# "since this morning", "last night": a day or part already past, not an offer of time.
_PAST_MARKERS = _words("since desde last")
_AVAILABILITY = _words("free off available im libre can puedo")
_REJECT_BEFORE = _words("not except cant cannot busy unavailable excepto menos")
_REJECT_STATE = _words("bad out busy full booked tough hard rough")
# "I work 9-5": hours a patient is busy, not hours offered
_WORK_WORDS = _words("work works working shift trabajo")
# Words that may sit between a day and its time without ending the phrase.
_FILLER = _words(
    """& , - / a also an and any anything appointment appt are around at available be best
    better bien but can coming could day de do early either el en even fine for free good
    got great guys have i ideally if im in is it its la las late like maybe me mejor next
    o ok okay on only open or perhaps please pls por possible possibly prefer preferably
    pretty puedo really should slot slots so some something sometime super that the then
    this through thru time to u um work works would y you"""
)

_ASAP = re.compile(
    r"\b(asap|a s a p|as soon as (possible|you can|u can|we can|i can|poss)|soonest|how soon|"
    r"earliest|first available|next available|(next|first|earliest) opening|"
    r"as early as possible|right away|"
    r"soon as possible|lo antes posible|lo mas pronto|cuanto antes|lo mas rapido)\b"
)
_FLEXIBLE = re.compile(
    r"\b(whenever|when ever|any ?time|any day|any date|flexible|open schedule|"
    r"schedule is (open|flexible|wide open)|wide open|doesnt matter when|dont care when|"
    r"whatever works|whatever time|whatever day|cualquier (dia|hora|momento)|cuando sea|"
    r"cuando puedan|a cualquier hora|me da igual|when ?ever works)\b"
)
_UNSURE_STRONG = re.compile(
    r"\b(not sure (yet|when|what day|what time|about (the )?(time|timing|day|date|when))|"
    r"(idk|dont know|do not know|no idea|unsure) (yet|when|what day|what time)|"
    r"not sure of my schedule|let me check|need to check|have to check|gotta check|"
    r"check my (schedule|calendar|work schedule)|get back to you|let you know|"
    r"no se (cuando|todavia|aun|que dia)|todavia no se|aun no se|tengo que (ver|revisar)|"
    r"te aviso|les aviso|le aviso)\b"
)
_UNSURE_WEAK = re.compile(r"\b(not sure|unsure|idk|i dont know|dont know|no idea|no se)\b")

_TOKEN = re.compile(r"\d{1,2}:\d{2}|\d{1,2}/\d{1,2}(?:/\d{2,4})?|\d+|[a-z]+|[-,.!?;&/@#+$]")


def vague_timing(text: str, *, allow_weak: bool) -> Literal["asap", "flexible", "unsure"] | None:
    """The vague timing said first in folded ``text``; a bare "not sure" only if allowed."""
    found: list[tuple[int, Literal["asap", "flexible", "unsure"]]] = []
    if match := _ASAP.search(text):
        found.append((match.start(), "asap"))
    if match := _FLEXIBLE.search(text):
        found.append((match.start(), "flexible"))
    if match := _UNSURE_STRONG.search(text):
        found.append((match.start(), "unsure"))
    if not found and allow_weak and (match := _UNSURE_WEAK.search(text)):
        found.append((match.start(), "unsure"))
    return min(found)[1] if found else None


# --- what the scanner produces -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Days:
    days: tuple[date, ...]
    many: bool  # a range of days ("next week"): closed days are dropped


@dataclass(frozen=True, slots=True)
class _Clock:
    hour: int
    minute: int
    meridiem: Literal["am", "pm"] | None


@dataclass(frozen=True, slots=True)
class _Times:
    kind: Literal["at", "after", "before", "between", "part"]
    first: _Clock | None = None
    second: _Clock | None = None
    part: tuple[int, int] | None = None
    plural: bool = False


_Item = _Days | _Times


class _Break:
    """A phrase boundary."""


_BREAK = _Break()


# --- the scanner -------------------------------------------------------------------------


class _Scanner:
    """Walks the tokens once, turning day and time phrases into items."""

    def __init__(self, tokens: Sequence[str], today: date) -> None:
        self.tokens = tokens
        self.today = today
        self.out: list[_Item | _Break] = []
        # "tues 12/8", "Dec 8 (tue)": a weekday beside a date names the same day
        self.last_weekday: tuple[_Days, int] | None = None
        self.last_date: tuple[_Days, int] | None = None

    def tok(self, index: int) -> str:
        return self.tokens[index] if 0 <= index < len(self.tokens) else ""

    def scan(self) -> list[_Item | _Break]:
        i = 0
        gap = 0
        while i < len(self.tokens):
            j = self.match_days(i)
            if j == i:
                j = self.match_times(i)
            if j > i:
                gap = 0
                i = j
                continue
            word = self.tokens[i]
            if word in _SENTENCE_END:
                self.out.append(_BREAK)
            elif word not in _FILLER and not word.isdigit():
                gap += 1
                if gap >= 3:
                    self.out.append(_BREAK)
                    gap = 0
            i += 1
        return self.out

    # --- days -------------------------------------------------------------------------

    def in_the_past(self, i: int) -> bool:
        """Whether token ``i`` follows "since"/"last" closely, with no sign of availability."""
        before = [self.tok(k) for k in range(max(0, i - 4), i)]
        if self.tok(i - 1) == "last":
            return True
        return any(w in {"since", "desde"} for w in before) and not any(
            w in _AVAILABILITY for w in before
        )

    def rejected(self, i: int) -> bool:
        """Whether the day word at ``i`` is ruled out ("can't do tmrw", "friday doesn't work")."""
        back = i - 1
        if self.tok(back) == "it" and self.tok(back - 1) == "make":  # "can't make it today"
            back -= 2
        elif self.tok(back) in {"this", "on", "do", "make", "el"}:
            back -= 1
        if self.tok(back) in _REJECT_BEFORE and self.tok(back - 1) != "if":
            return True
        after, after2 = self.tok(i + 1), self.tok(i + 2)
        if after in {"is", "s", "are"} and after2 in _REJECT_STATE:
            return True
        if after in {"doesnt", "wont", "dont", "isnt", "not"} and after2 in {"work", "good", "ok"}:
            return True
        return after == "no" and after2 in {"puedo", "me", "", ".", ","}

    def emit_days(self, days: Sequence[date], *, many: bool = False) -> None:
        self.out.append(_Days(tuple(days), many))

    def emit_date(self, day: date, start: int, end: int) -> None:
        weekday = self.last_weekday
        if weekday and self.out and self.out[-1] is weekday[0] and start - weekday[1] <= 1:
            self.out.pop()
        item = _Days((day,), many=False)
        self.out.append(item)
        self.last_date = (item, end)

    def match_days(self, i: int) -> int:
        word = self.tok(i)
        prev = self.tok(i - 1)
        today = self.today
        if self.in_the_past(i):
            return i + 1 if word in _TODAY or word in _WEEKDAYS or word in _PART_WORDS else i
        day_word = word in _TODAY or word in _TOMORROW or word in _WEEKDAYS or word == "manana"
        if day_word and self.rejected(i):
            return i + 1  # "not today", "tmrw is bad": a day ruled out
        if word in _TODAY:
            self.emit_days([today])
            return i + 1
        if word in _TONIGHT or (word == "esta" and self.tok(i + 1) == "noche"):
            self.emit_days([today])
            self.out.append(_Times("part", part=_PARTS["evening"]))
            return i + (2 if word == "esta" else 1)
        if word == "day" and self.tok(i + 1) == "after" and self.tok(i + 2) in _TOMORROW:
            self.emit_days([today + timedelta(days=2)])
            return i + 3
        if word == "pasado" and self.tok(i + 1) == "manana":
            self.emit_days([today + timedelta(days=2)])
            return i + 2
        if word in _TOMORROW:
            self.emit_days([today + timedelta(days=1)])
            return i + 1
        if word == "manana":
            if prev in {"la", "las"}:  # "por la manana": the morning, not tomorrow
                return i
            self.emit_days([today + timedelta(days=1)])
            return i + 1
        if word in _WEEKDAYS:
            return self.match_weekday(i)
        if word in {"weekend", "weekends", "wknd", "wkend"} or (
            word == "fin" and self.tok(i + 1) == "de" and self.tok(i + 2) == "semana"
        ):
            saturday = today + timedelta(days=(5 - today.weekday()) % 7)
            if today.weekday() == 6:
                saturday = today - timedelta(days=1)
            if prev in {"next", "proximo"} or self.tok(i + 3) in {"proximo", "que"}:
                saturday = saturday + timedelta(days=7)
            days = [d for d in (saturday, saturday + timedelta(days=1)) if d >= today]
            self.emit_days(days, many=True)
            return i + (3 if word == "fin" else 1)
        if word in {"weekday", "weekdays"}:
            days = [today + timedelta(days=n) for n in range(7)]
            self.emit_days([d for d in days if d.weekday() < 5], many=True)
            return i + 1
        if word in {"week", "semana"}:
            return self.match_week(i)
        if word in {"in", "en", "dentro"}:
            return self.match_in_n(i)
        if re.fullmatch(r"\d{1,2}/\d{1,2}(?:/\d{2,4})?", word):
            return self.match_numeric_date(i)
        if word in _MONTHS and self.tok(i + 1).isdigit():
            return self.match_month_day(i, i + 1, i + 2)
        if (word.isdigit() or word in _NUMBER_WORDS) and self.tok(i + 2) == "from":
            return self.match_n_from_now(i)
        if word.isdigit():
            return self.match_day_of_month(i)
        return i

    def match_n_from_now(self, i: int) -> int:
        """ "2 weeks from now", "a week from today" """
        word, unit = self.tok(i), self.tok(i + 1)
        if self.tok(i + 3) not in {"now", "today"}:
            return i
        count = int(word) if word.isdigit() and len(word) <= 2 else _NUMBER_WORDS.get(word)
        step = {"day": 1, "days": 1, "week": 7, "weeks": 7, "wks": 7}.get(unit)
        if count is None or step is None or not 1 <= count * step <= _FURTHEST_DAYS:
            return i
        self.emit_days([self.today + timedelta(days=count * step)])
        return i + 4

    def match_weekday(self, i: int) -> int:
        word = self.tok(i)
        prev = self.tok(i - 1)
        nxt = self.tok(i + 1)
        if word in _AMBIGUOUS_DAYS:
            if prev in _NOT_DAY_BEFORE:
                return i
            day_like = nxt in _WEEKDAYS or nxt in _PART_WORDS or nxt in _TOMORROW
            near_day = (
                i == 0
                or prev in _DAY_CONTEXT_BEFORE
                or prev in _WEEKDAYS
                or day_like
                or nxt in _DAY_CONTEXT_AFTER
                or nxt[:1].isdigit()
            )
            if not near_day and nxt:
                return i
        dated = self.last_date
        if dated and self.out and self.out[-1] is dated[0] and i - dated[1] <= 1:
            return i + 1  # "12/8 tues": the date already says which day
        weekday = _WEEKDAYS[word]
        today = self.today
        ahead = (weekday - today.weekday()) % 7
        if prev == "next" or (prev == "the" and self.tok(i - 2) == "next"):
            monday_next = today + timedelta(days=7 - today.weekday())
            day = monday_next + timedelta(days=weekday)
        elif prev == "this" and ahead == 0:
            day = today
        else:
            day = today + timedelta(days=ahead or 7)
        item = _Days((day,), many=False)
        self.out.append(item)
        end = i + 1
        self.last_weekday = (item, end)
        # "martes que viene", "el martes proximo": the coming one, already chosen
        if self.tok(end) == "que" and self.tok(end + 1) == "viene":
            end += 2
        elif self.tok(end) in {"proximo", "proxima"}:
            end += 1
        return end

    def match_week(self, i: int) -> int:
        today = self.today
        prev = self.tok(i - 1)
        monday = today - timedelta(days=today.weekday())
        nxt, nxt2 = self.tok(i + 1), self.tok(i + 2)
        if (prev == "of" and self.tok(i - 2) == "end") or (
            prev == "the" and self.tok(i - 2) == "of" and self.tok(i - 3) == "end"
        ):
            start = monday + timedelta(days=4)
            self.emit_days(
                [start + timedelta(days=n) for n in range(3) if start + timedelta(days=n) >= today],
                many=True,
            )
            return i + 1
        if nxt == "after" and nxt2 == "next":
            start = monday + timedelta(days=14)
            self.emit_days([start + timedelta(days=n) for n in range(7)], many=True)
            return i + 3
        if (
            prev in {"next", "proxima"}
            or nxt in {"proxima", "entrante"}
            or (nxt == "que" and nxt2 == "viene")
        ):
            start = monday + timedelta(days=7)
            span = range(7)
            if prev == "next" and self.tok(i - 2) == "early":
                span = range(3)  # Monday-Wednesday
            elif prev == "next" and self.tok(i - 2) in {"late", "end"}:
                span = range(3, 7)  # Thursday-Sunday
            self.emit_days([start + timedelta(days=n) for n in span], many=True)
            return i + (3 if nxt == "que" else 2 if nxt in {"proxima", "entrante"} else 1)
        if prev in {"this", "esta"}:
            first = today
            if self.tok(i - 2) in {"later", "late"}:
                first = today + timedelta(days=1)
            count = 7 - first.weekday()
            self.emit_days([first + timedelta(days=n) for n in range(count)], many=True)
            return i + 1
        return i

    def match_in_n(self, i: int) -> int:
        j = i + 1
        if self.tok(i) == "dentro" and self.tok(j) == "de":
            j += 1
        if self.tok(j) == "a" and self.tok(j + 1) == "couple":
            j += 1
        word = self.tok(j)
        count = int(word) if word.isdigit() and len(word) <= 2 else _NUMBER_WORDS.get(word)
        if count is None:
            return i
        j += 1
        if self.tok(j) == "of":
            j += 1
        unit = self.tok(j)
        if unit in {"day", "days", "dias", "dia"}:
            step = 1
        elif unit in {"week", "weeks", "wk", "wks", "semana", "semanas"}:
            step = 7
        else:
            return i
        if not 1 <= count * step <= _FURTHEST_DAYS:
            return i
        self.emit_days([self.today + timedelta(days=count * step)])
        return j + 1

    def match_numeric_date(self, i: int) -> int:
        parts = [int(p) for p in self.tok(i).split("/")]
        if self.tok(i + 1) in _UNITS - {"am", "pm", "a", "p", "st", "nd", "rd", "th"}:
            return i
        month, day_of_month = parts[0], parts[1]
        year = None
        if len(parts) == 3:
            year = parts[2] + 2000 if parts[2] < 100 else parts[2]
        found = self.make_date(year, month, day_of_month)
        if found is None:
            return i
        self.emit_date(found, i, i + 1)
        return i + 1

    def match_month_day(self, month_at: int, day_at: int, end: int) -> int:
        month = _MONTHS[self.tok(month_at)]
        day_of_month = int(self.tok(day_at))
        if self.tok(end) in {"st", "nd", "rd", "th"}:
            end += 1
        year = None
        year_at = end + 1 if self.tok(end) == "," else end
        if re.fullmatch(r"20\d\d", self.tok(year_at)):
            year = int(self.tok(year_at))
            end = year_at + 1
        found = self.make_date(year, month, day_of_month)
        if found is None:
            return month_at if month_at < day_at else day_at
        self.emit_date(found, min(month_at, day_at), end)
        return end

    def match_day_of_month(self, i: int) -> int:
        word = self.tok(i)
        nxt = self.tok(i + 1)
        after = i + 2 if nxt in {"st", "nd", "rd", "th"} else i + 1
        # "3rd of december", "3 dec", "3 de diciembre"
        month_at = after
        if self.tok(month_at) in {"of", "de"}:
            month_at += 1
        if self.tok(month_at) in _MONTHS and len(word) <= 2:
            return self.match_month_day(month_at, i, month_at + 1)
        # "the 3rd", "on the 15th": the next such day of a month
        if nxt in {"st", "nd", "rd", "th"} and self.tok(i - 1) in {"the", "on"}:
            if self.tok(i + 2) in _NOT_A_DAY_OF_MONTH:
                return i
            number = int(word)
            for months_ahead in range(3):
                month = (self.today.month - 1 + months_ahead) % 12 + 1
                year = self.today.year + (self.today.month - 1 + months_ahead) // 12
                found = self.make_date(year, month, number)
                if found is not None and found >= self.today:
                    self.emit_date(found, i - 1, i + 2)
                    return i + 2
        return i

    def make_date(self, year: int | None, month: int, day_of_month: int) -> date | None:
        """The date meant, or None when impossible or absurd (a past year, years ahead)."""
        if year is not None and not self.today.year <= year <= self.today.year + 1:
            return None
        try:
            found = date(year or self.today.year, month, day_of_month)
        except ValueError:
            return None
        if year is None and found < self.today:
            try:
                found = found.replace(year=found.year + 1)
            except ValueError:
                return None
        return found

    # --- times ------------------------------------------------------------------------

    def clock_at(self, i: int, *, loose: bool) -> tuple[_Clock, int] | None:
        """A clock time starting at token ``i``; ``loose`` accepts a bare hour."""
        word = self.tok(i)
        if word in {"noon", "midday", "mediodia"}:
            return _Clock(12, 0, "pm"), i + 1
        hour: int
        minute = 0
        if re.fullmatch(r"\d{1,2}:\d{2}", word):
            hour, minute = (int(p) for p in word.split(":"))
            explicit = True
        elif word.isdigit() and len(word) <= 2:
            hour = int(word)
            explicit = False
        elif re.fullmatch(r"\d{3,4}", word) and (loose or self.tok(i + 1) in {"am", "pm"}):
            hour, minute = divmod(int(word), 100)  # "230pm", "at 430"
            explicit = True
            if not 1 <= hour <= 12:
                return None
        else:
            return None
        if hour > 23 or minute > 59:
            return None
        end = i + 1
        meridiem: Literal["am", "pm"] | None = None
        nxt = self.tok(end)
        # "a"/"p" alone mean am/pm, but "de 3 a 5" is Spanish for "from 3 to 5"
        joins = self.tok(end + 1)[:1].isdigit() or self.tok(end + 1) in {"las", "la"}
        if nxt == "am" or (nxt == "a" and not joins):
            meridiem, end = "am", end + 1
        elif nxt == "pm" or (nxt == "p" and not joins):
            meridiem, end = "pm", end + 1
        elif nxt in _CLOCK_SUFFIX:
            end += 1
            explicit = True
        elif (
            nxt == "de"
            and self.tok(end + 1) == "la"
            and self.tok(end + 2) in {"manana", "tarde", "noche"}
        ):
            meridiem = "am" if self.tok(end + 2) == "manana" else "pm"
            end += 3
        elif nxt == "in" and self.tok(end + 1) == "the" and self.tok(end + 2) in _PART_WORDS:
            part = _PART_WORDS[self.tok(end + 2)][0]
            meridiem = "am" if part == "morning" else "pm"
            end += 3
        if meridiem is None and not explicit and (not loose or (nxt in _UNITS and not joins)):
            return None
        if meridiem is not None and hour > 12:
            return None
        if meridiem is None and hour == 0 and not explicit:
            return None
        return _Clock(hour, minute, meridiem), end

    def match_times(self, i: int) -> int:
        word = self.tok(i)
        prev = self.tok(i - 1)
        if word == "after" and self.tok(i + 1) in {"work", "lunch", "school", "trabajo"}:
            hour = {"work": 17, "trabajo": 17, "lunch": 13, "school": 15}[self.tok(i + 1)]
            self.out.append(_Times("after", first=_Clock(hour, 0, None)))
            return i + 2
        if word == "despues" and self.tok(i + 1) == "del" and self.tok(i + 2) == "trabajo":
            self.out.append(_Times("after", first=_Clock(17, 0, None)))
            return i + 3
        if word == "before" and self.tok(i + 1) == "lunch":
            self.out.append(_Times("before", first=_Clock(12, 0, "pm")))
            return i + 2
        if word in _AFTER_WORDS | _BEFORE_WORDS:
            start = i + 1
            if self.tok(start) == "de":  # "despues de las 5"
                start += 1
            if self.tok(start) in {"las", "la"}:
                start += 1
            found = self.clock_at(start, loose=True)
            if found is None:
                return i
            clock, end = found
            if word in {"from", "desde"} or self.tok(end) in {"to", "-", "til", "till", "a"}:
                span = self.span_end(clock, end)
                if span is not None:
                    return span
                if word in {"from", "desde"}:
                    self.out.append(_Times("at", first=clock))
                    return end
            kind: Literal["after", "before"] = "after" if word in _AFTER_WORDS else "before"
            self.out.append(_Times(kind, first=clock))
            return end
        if word in {"between", "btwn", "btw", "entre"}:
            start = i + 2 if self.tok(i + 1) in {"las", "la"} else i + 1
            found = self.clock_at(start, loose=True)
            if found is None:
                return i
            clock, end = found
            if self.tok(end) in {"and", "&", "-", "y", "to"}:
                span = self.span_end(clock, end)
                if span is not None:
                    return span
            return i
        if word in {"early", "late", "temprano"} and self.tok(i + 1) in _PART_WORDS:
            part, plural = _PART_WORDS[self.tok(i + 1)]
            bounds = _EARLY_LATE.get(("late" if word == "late" else "early", part))
            if bounds is None:
                return i
            self.out.append(_Times("part", part=bounds, plural=plural))
            return i + 2
        if word in _PART_WORDS:
            return self.match_part(i)
        day_before = prev in _WEEKDAYS or prev in _TOMORROW or prev in _TODAY
        if word in {"early", "temprano"} and day_before:  # "sabado temprano", "friday early"
            self.out.append(_Times("part", part=_EARLY_LATE["early", "morning"]))
            return i + 1
        if word in {"am", "pm"} and prev == "the":
            part = "morning" if word == "am" else "afternoon"
            self.out.append(_Times("part", part=_PARTS[part]))
            return i + 1
        listed = self.match_clock_list(i)
        if listed > i:
            return listed
        if prev in _WORK_WORDS and self.tok(i + 1) in {"-", "to"} and word[:1].isdigit():
            end = i + 3
            while self.tok(end) in {"am", "pm", "a", "p"}:
                end += 1
            return end
        nxt = self.tok(i + 1)
        if prev == "like" and self.tok(i - 2) in _CLOCK_BEFORE:  # "at like 4"
            prev = self.tok(i - 2)
        loose = (
            prev in _CLOCK_BEFORE
            or prev in _WEEKDAYS
            or prev in _TOMORROW
            or prev in _TODAY
            or nxt in _TOMORROW
            or nxt in _TODAY
            or (prev == "or" and bool(self.out) and isinstance(self.out[-1], _Times))
        )
        # "2-4", "2 to 4", "de 3 a 5": a span of hours needs no other context
        span_like = (nxt in {"-", "to"} or (nxt == "a" and prev in {"de", "las"})) and (
            self.tok(i + 2)[:1].isdigit() or self.tok(i + 2) in {"las", "la"}
        )
        found = self.clock_at(i, loose=loose or span_like)
        if found is None:
            return i
        clock, end = found
        if self.tok(end) in {"-", "to", "til", "till", "a"}:
            span = self.span_end(clock, end)
            if span is not None:
                return span
        if span_like and not loose and clock.meridiem is None and ":" not in self.tok(i):
            return i
        if prev == "at" and self.tok(i - 2) in {"off", "done", "finish", "finished", "out"}:
            self.out.append(_Times("after", first=clock))  # "I get off at 6"
            return end
        # "the 2pm one", "at 2 or 3": one window each
        self.out.append(_Times("at", first=clock))
        return end

    def match_clock_list(self, i: int) -> int:
        """ "1, 2 or 3pm", "3 or 4 tomorrow": bare hours listed before a clear one."""
        starts = [i]
        j = i
        while self.tok(j + 1) in {",", "or", "and", "/"}:
            k = j + 2
            if self.tok(k) == "or":  # "1, or 2"
                k += 1
            if not re.fullmatch(r"\d{1,2}(?::\d{2})?", self.tok(k)):
                break
            starts.append(k)
            j = k
        if len(starts) < 2 or not re.fullmatch(r"\d{1,2}(?::\d{2})?", self.tok(i)):
            return i
        found = self.clock_at(starts[-1], loose=True)
        if found is None:
            return i
        last, end = found
        after = self.tok(end)
        before = self.tok(i - 1)
        anchored = (
            last.meridiem is not None
            or after in _TOMORROW
            or after in _TODAY
            or after in _WEEKDAYS
            or before in _CLOCK_BEFORE
            or before in _WEEKDAYS
            or before in _TOMORROW
        )
        if not anchored:
            return i
        for start in starts[:-1]:
            clock = self.clock_at(start, loose=True)
            if clock is None:
                return i
            first = clock[0]
            if first.meridiem is None and last.meridiem is not None and first.hour <= last.hour:
                first = _Clock(first.hour, first.minute, last.meridiem)
            self.out.append(_Times("at", first=first))
        self.out.append(_Times("at", first=last))
        return end

    def span_end(self, first: _Clock, joiner: int) -> int | None:
        start = joiner + 1
        if self.tok(start) in {"las", "la"}:
            start += 1
        found = self.clock_at(start, loose=True)
        if found is None:
            return None
        second, end = found
        if first.meridiem is None and second.meridiem is not None and first.hour <= second.hour:
            first = _Clock(first.hour, first.minute, second.meridiem)
        self.out.append(_Times("between", first=first, second=second))
        return end

    def match_part(self, i: int) -> int:
        word = self.tok(i)
        prev = self.tok(i - 1)
        part, plural = _PART_WORDS[word]
        if (
            word in {"tarde", "tardes"}
            and prev not in {"la", "las", "por", "en", "de"}
            and not (
                self.tok(i - 1) in _WEEKDAYS or self.tok(i - 1) in _TOMORROW or prev == "manana"
            )
        ):
            return i  # "llego tarde": late, not the afternoon
        if prev in {"good", "buenas", "buenos", "last", "every"}:
            return i  # greetings ("good morning", "buenas tardes") and the past
        if i == 0 and not plural and self.tok(1) in {"!", ","} and len(self.tokens) > 2:
            return i  # "Morning! any chance ..." is a greeting
        if word in {"manana", "mananas"} and prev not in {"la", "las"}:
            return i
        day_before = prev in _WEEKDAYS or prev in _TOMORROW or prev in _TODAY
        if word in {"eve", "aft", "morn"} and not day_before and prev not in {"this", "the", "in"}:
            return i
        if prev in {"any", "most", "all"}:
            plural = True
        if prev in {"this", "esta"}:  # "this morning": today's, even once it has passed
            self.emit_days([self.today])
        self.out.append(_Times("part", part=_PARTS[part], plural=plural))
        return i + 1


# --- from items to windows ---------------------------------------------------------------


class _Calendar:
    """The location's opening hours as minutes, by date."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.closures = frozenset(location.closures)
        self.ranges = tuple(location.opening_ranges(weekday) for weekday in range(7))

    def hours(self, day: date) -> tuple[int, int] | None:
        if day.isoformat() in self.closures or not self.ranges[day.weekday()]:
            return None
        ranges = self.ranges[day.weekday()]
        return ranges[0].start_minutes, max(r.end_minutes for r in ranges)

    def is_open(self, day: date, minute: int) -> bool:
        if day.isoformat() in self.closures:
            return False
        return any(r.start_minutes <= minute < r.end_minutes for r in self.ranges[day.weekday()])

    def minute_of(self, clock: _Clock, day: date) -> int:
        """Minutes after midnight, inferring am/pm from the opening hours when not said."""
        hour = clock.hour
        if clock.meridiem == "am":
            hour %= 12
        elif clock.meridiem == "pm":
            hour = hour % 12 + 12
        elif 1 <= hour <= 11:
            morning = hour * 60 + clock.minute
            if self.is_open(day, morning):
                return morning
            if self.is_open(day, morning + 12 * 60):
                return morning + 12 * 60
            return morning if hour >= 7 else morning + 12 * 60
        return hour * 60 + clock.minute

    def span(self, spec: _Times, day: date) -> tuple[int, int]:
        hours = self.hours(day)
        if spec.kind == "part":
            assert spec.part is not None
            return spec.part
        assert spec.first is not None
        first = self.minute_of(spec.first, day)
        if spec.kind == "at":
            return first, min(first + 60, DAY_END)
        if spec.kind == "after":
            if hours is not None and hours[1] > first:
                return first, hours[1]
            return first, max(min(first + 60, DAY_END), EVENING_END)
        if spec.kind == "before":
            if hours is not None and hours[0] < first:
                return hours[0], first
            return max(0, first - 120), first
        assert spec.second is not None
        second = self.minute_of(spec.second, day)
        if spec.second.meridiem is None and spec.second.hour <= 12:
            second = spec.second.hour % 12 * 60 + spec.second.minute
            while second <= first and second + 12 * 60 <= DAY_END:
                second += 12 * 60
        if second <= first:
            second = min(first + 60, DAY_END)
        return first, second

    def whole_day(self, day: date) -> tuple[int, int]:
        return self.hours(day) or (0, DAY_END)


def _pairs(items: Sequence[_Item]) -> Iterator[tuple[list[_Days], list[_Times]]]:
    """Pair day groups with their times inside one phrase (see the module docstring)."""
    groups: list[tuple[bool, list[_Item]]] = []
    for item in items:
        is_day = isinstance(item, _Days)
        if groups and groups[-1][0] == is_day:
            groups[-1][1].append(item)
        else:
            groups.append((is_day, [item]))
    pairs: list[tuple[list[_Days], list[_Times]]] = []
    times_first = bool(groups) and not groups[0][0] and any(g[0] for g in groups)
    pending: list[_Times] = []
    for is_day, group in groups:
        if is_day:
            days = [g for g in group if isinstance(g, _Days)]
            pairs.append((days, pending if times_first else []))
            pending = []
        else:
            times = [g for g in group if isinstance(g, _Times)]
            if times_first:
                pending = times
            elif pairs and not pairs[-1][1]:
                pairs[-1] = (pairs[-1][0], times)
            else:
                pairs.append(([], times))
    if pending:  # "lunch tomorrow around 12:30": late times join the last day named
        if pairs:
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + pending)
        else:
            pairs.append(([], pending))
    yield from pairs


def extract_times(folded: str, now: datetime, location: Location) -> tuple[TimeWindow, ...]:
    """Every window the text names, in order of mention, clipped to the future."""
    tokens = _TOKEN.findall(folded)
    zone = location.zone
    local_now = now.astimezone(zone)
    today = local_now.date()
    stream = _Scanner(tokens, today).scan()
    calendar = _Calendar(location)
    spans: list[tuple[date, int, int]] = []

    pairs: list[tuple[list[_Days], list[_Times]]] = []
    phrase: list[_Item] = []
    for entry in [*stream, _BREAK]:
        if not isinstance(entry, _Break):
            phrase.append(entry)
            continue
        found = list(_pairs(phrase))
        # "do you have anything tmrw? im free after 2": times alone take the day just named
        if len(found) == 1 and not found[0][0] and pairs and pairs[-1][0] and not pairs[-1][1]:
            pairs[-1] = (pairs[-1][0], found[0][1])
        else:
            pairs.extend(found)
        phrase = []
    for day_items, time_items in pairs:
        days = _days_of(day_items, calendar)
        if not days:
            spans.extend(_dateless(time_items, calendar, local_now))
            continue
        for day in days:
            if not time_items:
                spans.append((day, *calendar.whole_day(day)))
            resolved = [(calendar.span(spec, day), spec.kind) for spec in time_items]
            clock_starts = [first for (first, _), kind in resolved if kind == "at"]
            for (first, last), kind in resolved:
                # "after work, like 5:15": the clock time says which part of the span
                if kind != "at" and any(first <= c < last for c in clock_starts):
                    continue
                spans.append((day, first, last))

    floor = local_now.replace(second=0, microsecond=0)
    windows: list[TimeWindow] = []
    for day, first, last in spans:
        start, end = _at(day, first, location), _at(day, last, location)
        if end <= local_now:
            continue
        window = TimeWindow(max(start, floor), end)
        if window not in windows:
            windows.append(window)
    return tuple(windows)


def _days_of(items: Sequence[_Days], calendar: _Calendar) -> list[date]:
    days: list[date] = []
    for item in items:
        chosen = list(item.days)
        if item.many:
            open_days = [d for d in chosen if calendar.hours(d) is not None]
            chosen = open_days or chosen
        days.extend(d for d in chosen if d not in days)
    return days


def _dateless(
    specs: Sequence[_Times], calendar: _Calendar, local_now: datetime
) -> Iterator[tuple[date, int, int]]:
    today = local_now.date()
    now_minute = local_now.hour * 60 + local_now.minute
    week = [today + timedelta(days=n) for n in range(8)]
    open_days = [d for d in week if calendar.hours(d) is not None] or week
    for spec in specs:
        if spec.plural:
            for day in open_days:
                if day >= today + timedelta(days=7):
                    break
                first, last = calendar.span(spec, day)
                if day != today or last > now_minute:
                    yield day, first, last
            continue
        for day in open_days:
            first, last = calendar.span(spec, day)
            ahead = last > now_minute and (spec.kind != "at" or first > now_minute)
            if day != today or ahead:
                yield day, first, last
                break


def _at(day: date, minute: int, location: Location) -> datetime:
    if minute >= DAY_END:
        return datetime.combine(day + timedelta(days=1), time(0), tzinfo=location.zone)
    hour, rest = divmod(minute, 60)
    return datetime.combine(day, time(hour, rest), tzinfo=location.zone)
