"""Tests for ``ringback.conversation.understand``: the corpus, then the tricky pieces."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ringback.config import Location, load_locations
from ringback.conversation.understand import (
    INTENT_ORDER,
    TimeWindow,
    Understanding,
    understand,
)

CORPUS = Path(__file__).with_name("corpus.yaml")
DEMO_LOCATIONS = Path(__file__).parents[2] / "src" / "ringback" / "demo" / "locations.yaml"
FIELDS = ("intents", "treatments", "times", "timing", "patient", "choice", "language")
NOW = datetime.fromisoformat("2026-11-24T10:15:00-08:00")  # a Tuesday


def demo_location(location_id: str = "glow-downtown") -> Location:
    location = load_locations(DEMO_LOCATIONS).get(location_id)
    assert location is not None, f"demo location {location_id!r} is missing"
    return location


def compact(window: TimeWindow) -> str:
    """``2026-11-26T09:00/12:00``; the end's date is written out when it differs."""
    start, end = window.start, window.end
    if end.date() == start.date():
        return f"{start:%Y-%m-%dT%H:%M}/{end:%H:%M}"
    return f"{start:%Y-%m-%dT%H:%M}/{end:%Y-%m-%dT%H:%M}"


def exact(window: TimeWindow) -> str:
    return f"{window.start.isoformat()}/{window.end.isoformat()}"


@dataclass(frozen=True)
class CorpusCase:
    text: str
    now: datetime
    location: Location
    known_patient: bool
    expected: dict[str, Any] = field(default_factory=dict)
    exact_times: bool = False

    def actual(self, result: Understanding) -> dict[str, Any]:
        render = exact if self.exact_times else compact
        return {
            "intents": list(result.intents),
            "treatments": list(result.treatments),
            "times": [render(w) for w in result.times],
            "timing": result.timing,
            "patient": result.patient,
            "choice": result.choice,
            "language": result.language,
        }

    def run(self) -> Understanding:
        return understand(self.text, self.now, self.location, known_patient=self.known_patient)


def load_corpus(path: Path = CORPUS) -> list[CorpusCase]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    locations = load_locations(DEMO_LOCATIONS)
    default_now = datetime.fromisoformat(data["now"])
    cases = []
    for raw in data["cases"]:
        unknown = set(raw) - {*FIELDS, "text", "now", "location", "known_patient", "times_iso"}
        assert not unknown, f"corpus case {raw.get('text')!r}: unknown keys {sorted(unknown)}"
        location = locations.get(raw.get("location", data["location"]))
        assert location is not None, f"corpus case {raw['text']!r}: unknown location"
        expected = {
            "intents": list(raw.get("intents", [])),
            "treatments": list(raw.get("treatments", [])),
            "times": list(raw.get("times_iso", raw.get("times", []))),
            "timing": raw.get("timing"),
            "patient": raw.get("patient"),
            "choice": raw.get("choice"),
            "language": raw.get("language", "en"),
        }
        cases.append(
            CorpusCase(
                text=str(raw["text"]),
                now=datetime.fromisoformat(raw["now"]) if "now" in raw else default_now,
                location=location,
                known_patient=bool(raw.get("known_patient", False)),
                expected=expected,
                exact_times="times_iso" in raw,
            )
        )
    return cases


def field_accuracy(cases: list[CorpusCase]) -> tuple[dict[str, int], list[str]]:
    """Correct count per field, and one readable line per wrong field."""
    correct = dict.fromkeys(FIELDS, 0)
    failures: list[str] = []
    for case in cases:
        actual = case.actual(case.run())
        for name in FIELDS:
            if actual[name] == case.expected[name]:
                correct[name] += 1
            else:
                failures.append(
                    f"{case.text!r}: {name} expected {case.expected[name]!r}, got {actual[name]!r}"
                )
    return correct, failures


# --- the corpus ----------------------------------------------------------------------------


def test_corpus_is_large_and_varied() -> None:
    cases = load_corpus()
    assert len(cases) >= 150
    assert sum(c.expected["language"] == "es" for c in cases) >= 30
    assert sum(c.exact_times for c in cases) >= 5
    keys = [(c.text, c.now) for c in cases]
    duplicates = {text for text, now in keys if keys.count((text, now)) > 1}
    assert not duplicates, f"cases listed twice: {sorted(duplicates)}"


def test_corpus(capsys: pytest.CaptureFixture[str]) -> None:
    cases = load_corpus()
    correct, failures = field_accuracy(cases)
    with capsys.disabled():
        print(f"\ncorpus: {len(cases)} cases")
        for name in FIELDS:
            print(
                f"  {name:<11} {correct[name]:>4}/{len(cases)} ({correct[name] / len(cases):.1%})"
            )
        for line in failures:
            print(f"  FAIL {line}")
    assert not failures, f"{len(failures)} corpus field(s) wrong:\n" + "\n".join(failures)


# --- the result's shape ------------------------------------------------------------------


def test_to_json_has_exactly_the_documented_keys() -> None:
    result = understand("botox thursday morning, first time", NOW, demo_location())
    data = result.to_json()
    assert list(data) == [
        "intents",
        "treatments",
        "times",
        "timing",
        "patient",
        "choice",
        "language",
    ]
    assert data["times"] == [
        {"start": "2026-11-26T09:00:00-08:00", "end": "2026-11-26T12:00:00-08:00"}
    ]
    assert data["treatments"] == ["Botox"]
    assert data["patient"] == "new"


def test_windows_are_aware_and_in_the_location_zone() -> None:
    location = demo_location()
    utc_now = NOW.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+00:00").tzinfo)
    result = understand("friday at 2", utc_now, location)
    (window,) = result.times
    assert window.start.tzinfo == location.zone
    assert window.start.isoformat() == "2026-11-27T14:00:00-08:00"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        understand("botox", datetime(2026, 11, 24, 10, 15), demo_location())  # noqa: DTZ001


def test_intents_come_in_urgency_order() -> None:
    result = understand(
        "stop texting me, my lip is swollen, how much do I owe", NOW, demo_location()
    )
    assert result.intents == ("urgent", "stop", "price_question")
    assert list(result.intents) == sorted(result.intents, key=INTENT_ORDER.index)


def test_other_locations_use_their_own_catalogue() -> None:
    westside = demo_location("glow-westside")
    result = understand("hydrafacial and lip filler", NOW, westside)
    assert result.treatments == ("Filler",)  # Westside has no HydraFacial


# --- tricky pieces, table-driven ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "window"),
    [
        ("thursday at 3", "2026-11-26T15:00/16:00"),  # 3am closed -> pm
        ("thursday at 3:30", "2026-11-26T15:30/16:30"),
        ("thursday at 9", "2026-11-26T09:00/10:00"),  # 9am open -> am
        ("thursday at 11", "2026-11-26T11:00/12:00"),
        ("thursday at 12", "2026-11-26T12:00/13:00"),
        ("thursday at 7", "2026-11-26T19:00/20:00"),  # Thursday is open until 20:00
        ("friday at 7", "2026-11-27T07:00/08:00"),  # open at neither: 7-11 read as am
        ("friday at 6", "2026-11-27T18:00/19:00"),  # open at neither: 1-6 read as pm
        ("thursday at 8am", "2026-11-26T08:00/09:00"),  # said outright: kept
        ("thursday at 2 p.m.", "2026-11-26T14:00/15:00"),
        ("thursday 14:00", "2026-11-26T14:00/15:00"),
        ("saturday at 9", "2026-11-28T09:00/10:00"),
        ("thursday 10-2", "2026-11-26T10:00/14:00"),
        ("thursday from 4 to 6", "2026-11-26T16:00/18:00"),
    ],
)
def test_am_pm_inferred_from_opening_hours(text: str, window: str) -> None:
    assert [compact(w) for w in understand(text, NOW, demo_location()).times] == [window]


@pytest.mark.parametrize(
    ("text", "first_window"),
    [
        ("tuesday", "2026-12-01T09:00/18:00"),  # today is Tuesday: the next one
        ("this tuesday", "2026-11-24T10:15/18:00"),
        ("monday", "2026-11-30T09:00/18:00"),
        ("next thursday", "2026-12-03T09:00/20:00"),  # next calendar week
        ("thursday", "2026-11-26T09:00/20:00"),
        ("11/23", "2027-11-23T09:00/18:00"),  # yesterday: next year
        ("11/24", "2026-11-24T10:15/18:00"),  # today stays today
        ("nov 2", "2027-11-02T09:00/18:00"),
        ("1/5/27", "2027-01-05T09:00/18:00"),
        ("the 20th", "2026-12-20T00:00/2026-12-21T00:00"),  # a Sunday: closed, whole day
        ("this morning", "2026-11-24T10:15/12:00"),  # begun: clipped to now
        ("9am", "2026-11-25T09:00/10:00"),  # past today: tomorrow
        ("2pm", "2026-11-24T14:00/15:00"),
    ],
)
def test_dates_roll_forward(text: str, first_window: str) -> None:
    times = understand(text, NOW, demo_location()).times
    assert times, f"no window for {text!r}"
    assert compact(times[0]) == first_window


def test_a_window_that_has_ended_is_dropped() -> None:
    evening = datetime.fromisoformat("2026-11-24T19:30:00-08:00")
    assert understand("this morning", evening, demo_location()).times == ()


@pytest.mark.parametrize(
    "text",
    [
        "laser focused",
        "lip balm",
        "peeling paint",
        "my facial hair is the problem",
        "I need to consult my sister",
        "racial justice",
        "that coffee filter",
        "see you later",
        "fillet of fish",
        "no es facil",
        "the detox tea",
        "I'm filling the form",
        "the botanist",
    ],
)
def test_ordinary_words_are_not_treatments(text: str) -> None:
    assert understand(text, NOW, demo_location()).treatments == ()


@pytest.mark.parametrize(
    ("text", "treatment"),
    [
        ("bottox", "Botox"),
        ("botxo", "Botox"),
        ("btox", "Botox"),
        ("fillr", "Filler"),
        ("lip filer", "Filler"),
        ("hydra-facial", "HydraFacial"),
        ("microneedlin", "Microneedling"),
        ("Laser Hair Removel", "Laser Hair Removal"),
        ("chemical peels", "Chemical Peel"),
        ("restalane", "Filler"),
    ],
)
def test_typos_one_edit_away(text: str, treatment: str) -> None:
    assert understand(text, NOW, demo_location()).treatments == (treatment,)


@pytest.mark.parametrize(
    "text",
    [
        "cabin fever",
        "that sounds swell",
        "a rash decision",
        "he's a pain in the neck",
        "no swelling at all",
        "not swollen anymore, thanks!",
        "zero pain, loved it",
        "will I have swelling?",
        "what are the side effects, any blisters?",
        "this is not an emergency but can I move my appt",
        "burn fat fast",
        "sin fiebre, todo bien",
        "I want botox for my droopy eyelids",
        "a blister pack of vitamins",
        "the swelling went down, thanks!",
        "my wrinkles are getting worse",
    ],
)
def test_everyday_words_are_not_urgent(text: str) -> None:
    assert "urgent" not in understand(text, NOW, demo_location()).intents


@pytest.mark.parametrize(
    "text",
    [
        "swelling",
        "my lip is swollen",
        "SEVERE PAIN",
        "my skin is turning white",
        "blanching on my nose",
        "vision changes",
        "can't see out of my left eye",
        "fever",
        "blisters",
        "trouble breathing",
        "throat feels tight, throat is closing",
        "drooping eyelid",
        "hives",
        "I fainted",
        "hinchazón",
        "no puedo respirar",
        "se me cayó el párpado",
        "piel morada",
        "is swelling normal? mine is huge",
    ],
)
def test_symptoms_are_urgent(text: str) -> None:
    assert understand(text, NOW, demo_location()).intents[:1] == ("urgent",)


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        ("STOP", ("stop",)),
        ("stop", ("stop",)),
        (" Stop. ", ("stop",)),
        ("STOP!!!", ("stop",)),
        ("stopall", ("stop",)),
        ("Unsubscribe", ("stop",)),
        ("cancel", ("stop",)),
        ("END", ("stop",)),
        ("quit", ("stop",)),
        ("Revoke", ("stop",)),
        ("optout", ("stop",)),
        ("opt out", ("stop",)),
        ("alto", ("stop",)),
        ("START", ("start",)),
        ("unstop", ("start",)),
        ("Yes", ("affirm",)),  # an opt-in keyword only for an opted-out patient
        ("yes.", ("affirm",)),
        ("HELP", ("help",)),
        ("info?", ("help",)),
        ("help me pick a treatment", ()),
        ("stop by tomorrow", ()),
        ("the end of the week", ()),
        ("I quit my job so I'm free", ()),
        ("cancel my appointment", ("cancel",)),
        ("yes please", ("affirm",)),
        ("stop texting me", ("stop",)),
        ("do not text me", ("stop",)),
        ("remove me", ("stop",)),
        ("lose my number", ("stop",)),
        ("dejen de escribirme", ("stop",)),
    ],
)
def test_carrier_keywords_and_opt_out(text: str, intents: tuple[str, ...]) -> None:
    assert understand(text, NOW, demo_location()).intents == intents


@pytest.mark.parametrize(
    ("text", "choice", "has_intent"),
    [
        ("3", 3, True),
        ("3.", 3, True),
        ("# 2", 2, True),
        ("number 4 please", 4, True),
        ("lets do 1", 1, True),
        ("second option", 2, True),
        ("the 10:30 one", None, True),
        ("the noon slot", None, True),
        ("0", None, False),
        ("12", None, False),
        ("I want 2 syringes", None, False),
        ("2 weeks from now", None, False),
        ("first time", None, False),
    ],
)
def test_choices(text: str, choice: int | None, has_intent: bool) -> None:
    result = understand(text, NOW, demo_location())
    assert result.choice == choice
    assert ("choice" in result.intents) is has_intent


def test_known_patient_is_returning_even_when_they_say_new() -> None:
    result = understand("first time!", NOW, demo_location(), known_patient=True)
    assert result.patient == "returning"


def _windows(text: str) -> Iterator[str]:
    yield from (compact(w) for w in understand(text, NOW, demo_location()).times)


def test_phrases_do_not_leak_into_each_other() -> None:
    assert list(_windows("I can do tuesday but my sister needs thursday morning")) == [
        "2026-12-01T09:00/18:00",
        "2026-11-26T09:00/12:00",
    ]


def test_greetings_are_not_parts_of_the_day() -> None:
    assert list(_windows("good morning!")) == []
    assert list(_windows("buenas noches")) == []


@pytest.mark.parametrize(
    "text",
    [
        "12/31/99",  # a birthday, not a booking
        "1/1/1900",
        "2/30",
        "13/45",
        "feb 30",
        "in 99 weeks",
        "in 0 days",
        "may i ask",
        "march on",
        "I'm 5 foot 3",
        "call me at 310-555-0199",
        "20 units",
        "1/2 syringe",
        "24/7",
    ],
)
def test_no_absurd_dates_from_ordinary_text(text: str) -> None:
    assert understand(text, NOW, demo_location()).times == ()


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("not today", []),
        ("can't do monday, tuesday?", ["2026-12-01T09:00/18:00"]),
        ("friday doesn't work, saturday?", ["2026-11-28T10:00/16:00"]),
        ("tmrw is booked for me but thurs is open", ["2026-11-26T09:00/20:00"]),
        ("if not thursday then friday", ["2026-11-26T09:00/20:00", "2026-11-27T09:00/18:00"]),
        ("since this morning my lip hurts", []),
        ("last tuesday", []),
    ],
)
def test_days_ruled_out_or_past_give_no_window(text: str, windows: list[str]) -> None:
    assert list(_windows(text)) == windows


@pytest.mark.parametrize(
    ("text", "windows"),
    [
        ("after work wednesday, like 5:15", ["2026-11-25T17:15/18:15"]),
        ("thursday afternoon around 3", ["2026-11-26T15:00/16:00"]),
        ("thursday afternoon or 7pm", ["2026-11-26T12:00/17:00", "2026-11-26T19:00/20:00"]),
    ],
)
def test_a_clock_time_narrows_the_part_of_day_it_falls_in(text: str, windows: list[str]) -> None:
    assert list(_windows(text)) == windows
