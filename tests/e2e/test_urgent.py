"""Issue #12 end to end, over signed webhooks and the staff pages: an urgent text after
hours gets a safety reply with a number someone will answer (or none), the nurse's alert
carries the patient's full number and the link, the inbox card shows the treatment and
the patient's words, and staff close the thread as resolved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ringback.phones import display
from tests.conftest import AFTER_HOURS, Service, settle, wait_for
from tests.staff.conftest import add_user, sign_in
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.support.staff import act, conversation_of, reload, wait_status
from tests.twilio_payloads import caller_number

STAFF_SMS = "+13105550102"
ON_CALL = "+13105550177"
SYMPTOM = "my lip is swelling after filler yesterday"


def on_call(config: dict[str, Any]) -> None:
    config["locations"][0]["urgent_phone"] = ON_CALL


def urgent_after_hours(service: Service, index: int) -> tuple[str, str]:
    caller = caller_number(index)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, SYMPTOM)
    return caller, next_text(service, caller, 2)


def test_after_hours_urgent_text_to_resolved(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=on_call, now=AFTER_HOURS)
    caller, safety = urgent_after_hours(service, 700)
    assert "911" in safety
    assert "(310) 555-0177" in safety  # the on-call line, written the way people write it
    assert "+1310" not in safety
    assert "(310) 555-0100" not in safety  # not the line that just went unanswered

    conversation = wait_status(service, conversation_of(service, caller).id, "urgent")
    [alert] = texts_to(service, STAFF_SMS)
    assert display(caller) in alert.body  # the nurse calls back from the alert itself
    assert f"{service.public_url}/staff/conversations/{conversation.id}" in alert.body
    assert "swelling" not in alert.body  # no health details in an SMS

    add_user(service, "nurse@glow.example", role="staff", locations=["glow-downtown"])
    client = sign_in(service, "nurse@glow.example")
    inbox = client.get("/staff?queue=urgent").text
    card = inbox[inbox.index(f'id="conv-{conversation.id}"') :]
    card = card[: card.index("</li>")]
    assert "Filler" in card
    assert f"Patient:</span> {SYMPTOM}" in card

    resolved = act(client, conversation.id, "resolve", {"note": "Called, cold compress"})
    assert resolved.status_code == 303
    closed = reload(service, conversation.id)
    assert (closed.status, closed.close_reason, closed.is_open) == ("closed", "resolved", False)
    page = client.get(resolved.headers["location"]).text
    assert "Called back, resolved. Called, cold compress" in page
    assert "Urgent since" not in client.get("/staff?queue=urgent").text
    settle()
    assert len(texts_to(service, caller)) == 2  # resolving texts nobody
    # The dashboard counts it apart from booked and lost.
    figures = wait_for(
        lambda: (
            (html := client.get("/staff/dashboard").text)
            and "<td>Called back, resolved</td><td>1</td>" in html
            and html
        ),
        what="the resolved thread in the funnel",
    )
    assert "<td>Marked lost</td><td>0</td>" in figures


def test_after_hours_without_an_on_call_line_the_safety_text_gives_no_spa_number(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(now=AFTER_HOURS)
    _, safety = urgent_after_hours(service, 701)
    assert "911" in safety
    assert "call you back" in safety
    assert "555-0100" not in safety
    assert "555-0101" not in safety
    assert "+1" not in safety
