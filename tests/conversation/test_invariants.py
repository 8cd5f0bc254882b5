"""Property-based: random sequences of the texts real patients send, staff actions and
time passing, driven through the service, must never break what Ringback promises.

* never silent while the bot owns the thread: each patient text gets exactly one text
  back (an answer, or a hand-off that says a person will follow up);
* staff own a handed-off or taken-over thread: the bot says nothing there;
* never the same question twice in a row; at most three questions per leg;
* nothing is sent after STOP but its one confirmation, until START;
* one open thread per patient;
* the funnel's counts add up (missed >= texted >= replied >= booked).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ringback.conversation.machine import MAX_QUESTIONS
from ringback.funnel.report import load_report
from ringback.messaging import keywords
from tests.conftest import OPEN_HOURS
from tests.support.inprocess import InProcess, in_process

# How patients really text: short answers, emoji, typos, Spanish, changes of mind.
TEXTS = (
    "yes",
    "Yes!",
    "no",
    "nope",
    "ok",
    "k",
    "👍",
    "sure",
    "thanks",
    "thank you!!",
    "botox",
    "botx pls",
    "filler",
    "hydrafacial tmrw morning",
    "lip filler thursday 3pm",
    "new",
    "first time",
    "been before",
    "returning",
    "not sure",
    "idk",
    "whenever",
    "any day",
    "asap",
    "friday afternoon",
    "next tues after 5",
    "1",
    "2",
    "3",
    "none of those",
    "C",
    "X",
    "R",
    "can someone call me?",
    "how much is botox?",
    "is it safe while breastfeeding?",
    "wrong number",
    "STOP",
    "START",
    "HELP",
    "asdfgh",
    "🤔",
    "hmm",
    "sí",
    "mañana en la tarde",
    "primera vez",
    "quiero botox",
    "actually make it filler",
    "can i come in saturday",
    "see you then",
    "my lip is really swollen after filler yesterday",
)
# The only texts the bot answers even in a thread staff own: safety comes first, and a
# wrong number gets its one apology.
ALWAYS_ANSWERED = ("wrong number", "my lip is really swollen after filler yesterday")

Step = tuple[str, Any]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("say"), st.sampled_from(TEXTS)),
        st.tuples(st.just("take_over"), st.none()),
        st.tuples(st.just("hand_back"), st.booleans()),
        st.tuples(st.just("wait"), st.sampled_from([1, 3, 26, 72])),
    ),
    min_size=1,
    max_size=12,
)
_numbers = itertools.count(1)
_services: dict[str, InProcess] = {}


def _service(database_url: str) -> InProcess:
    if database_url not in _services:
        _services[database_url] = in_process(database_url, OPEN_HOURS)
    return _services[database_url]


def _staff_own(service: InProcess, caller: str) -> bool:
    conversation = service.conversation(caller)
    if conversation is None or not conversation.is_open:
        return False
    state = service.state(caller)
    assert state is not None
    return state.paused or state.stage in ("handoff", "urgent")


def _say(service: InProcess, caller: str, text: str, log: list[str]) -> None:
    word = keywords.keyword(text)
    opted_out = service.opted_out(caller)
    staff = _staff_own(service, caller)
    before = len(service.texts_to(caller))
    service.text(caller, text)
    sent = service.texts_to(caller)[before:]
    log.append(f"{text!r} -> {sent}")
    where = "\n".join(log)
    assert service.open_threads(caller) <= 1, where
    if word == "stop":
        assert len(sent) == (0 if opted_out else 1), f"STOP confirms once\n{where}"
        return
    if opted_out:
        if word == "start" or (text.strip().lower().rstrip("!") == "yes"):
            assert len(sent) == 1, f"START confirms once\n{where}"
        else:
            assert sent == [], f"texted after STOP\n{where}"
        return
    if word in ("start", "help"):
        assert len(sent) <= 1, where
        return
    if staff:
        if text in ALWAYS_ANSWERED:
            assert len(sent) == 1, where
        else:
            assert sent == [], f"the bot spoke in a thread staff own\n{where}"
        return
    assert len(sent) == 1, f"left on read (or answered twice)\n{where}"
    state = service.state(caller)
    assert state is not None
    assert state.questions <= MAX_QUESTIONS, where


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=steps)
def test_conversation_invariants(database_url: str, plan: list[Step]) -> None:
    service = _service(database_url)
    service.clock.now = OPEN_HOURS
    caller = f"+1213556{next(_numbers):04d}"
    service.call(caller)
    log = [f"text-back: {service.texts_to(caller)}"]
    assert len(service.texts_to(caller)) == 1
    for kind, arg in plan:
        if kind == "say":
            _say(service, caller, str(arg), log)
        elif kind == "take_over":
            service.take_over(caller)
            log.append("staff take over")
        elif kind == "hand_back":
            before = len(service.texts_to(caller))
            staff = _staff_own(service, caller)
            handed = service.hand_back(caller, already_answered=bool(arg))
            sent = service.texts_to(caller)[before:]
            log.append(f"hand back (answered={arg}) -> {sent}")
            assert len(sent) <= 1, "\n".join(log)
            if handed and staff and arg:
                assert sent == [], "\n".join(log)
        else:
            service.wait(timedelta(hours=int(arg)))
            log.append(f"{arg} h later")
        bodies = service.texts_to(caller)
        questions = [b for b in bodies if b.endswith("?")]
        for first, second in itertools.pairwise(bodies):
            if first == second and first in questions:
                raise AssertionError("the same question twice in a row\n" + "\n".join(log))
        if service.opted_out(caller):
            log.append("(opted out)")
    _funnel_adds_up(service)


def _funnel_adds_up(service: InProcess) -> None:
    day = OPEN_HOURS.astimezone(UTC).date()
    location = service.locations.get("glow-downtown")
    assert location is not None
    report = load_report(
        service.deps.sessions,
        service.locations,
        [location],
        day - timedelta(days=1),
        day + timedelta(days=1),
        now=datetime.now(UTC),
    )
    f = report.total
    assert f.missed >= f.recoverable >= f.texted >= f.replied >= f.booked >= 0
    assert f.missed == f.screened_out + f.pending + f.recoverable
    assert f.revenue_cents >= 0
