"""The booking page over HTTP: the texted link, holds, confirmation, and every way to get it
wrong (an altered or expired link, a slot taken meanwhile, a forged or malformed form)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, update

from ringback.conversation.service import booking_page_url
from ringback.db import transaction
from ringback.models import Appointment, Conversation, Patient
from ringback.readable import when
from tests.conftest import Service, settle, wait_for
from tests.support.booking import scheduling
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number

LA = ZoneInfo("America/Los_Angeles")
LINK = re.compile(r"https?://\S+/book/[^\s?]+\S*")


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(found.get("action", ""), found.get("method", "get")))
        elif tag == "input" and self.forms and "name" in found:
            self.forms[-1].fields[found["name"]] = found.get("value", "")


def forms(page: httpx.Response) -> list[Form]:
    parser = _Forms()
    parser.feed(page.text)
    return parser.forms


def slot_forms(page: httpx.Response) -> list[Form]:
    return [f for f in forms(page) if f.method == "post" and f.action.endswith("/hold")]


def text_of(page: httpx.Response) -> str:
    return html.unescape(re.sub(r"\s+", " ", page.text))


def conversation_of(service: Service, caller: str) -> Conversation:
    conversation: Conversation = wait_for(
        lambda: service.scalar(
            select(Conversation)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
            .order_by(Conversation.id.desc())
        ),
        what="conversation",
    )
    return conversation


def link_for(service: Service, caller: str, treatment: str = "Botox") -> str:
    """A texted-back caller's booking link, built the way the bot builds it."""
    miss(service, caller)
    next_text(service, caller, 1)
    conversation = conversation_of(service, caller)
    location = service.locations.get("glow-downtown")
    assert location is not None
    return booking_page_url(service.runtime.deps, location, conversation.id, treatment)


def get(service: Service, url: str) -> httpx.Response:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return service.http.get(service.url + path)


def post(service: Service, action: str, data: dict[str, str]) -> httpx.Response:
    return service.http.post(service.url + action, data=data)


def appointments(service: Service) -> list[Appointment]:
    return service.rows(select(Appointment).order_by(Appointment.id))


def test_the_texted_link_books_on_the_page_and_closes_the_thread_as_booked(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(601)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "botox thursday afternoon please, first time")
    next_text(service, caller, 2)
    text_in(service, caller, "none of those work")
    more = next_text(service, caller, 3)
    match = LINK.search(more)
    assert match, more
    link = match.group(0)
    assert "service=Botox" in link

    page = get(service, link)
    assert page.status_code == 200, page.text
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    shown = text_of(page)
    assert "Book at Glow Med Spa" in shown
    assert '<option value="Botox" selected>' in page.text
    assert "Consultation" not in shown  # a consult is not booked online
    slots = slot_forms(page)
    assert slots, shown
    # Real times in the clinic's zone, opening at the day the patient asked for
    # (Thursday), with the afternoon they asked for marked.
    assert "day=2026-11-26" in link
    assert "part=afternoon" in link
    assert "Thu Nov 26" in shown
    assert 'id="asked"' in page.text
    first = slots[0]
    starts = when(datetime.fromisoformat(first.fields["start"]), LA)
    assert starts.startswith("Thu Nov 26 at ")
    assert first.fields["service"] == "Botox"
    assert first.fields["provider_id"] == "anna"

    held = post(service, first.action, first.fields)
    assert held.status_code == 303, held.text
    confirm_path = held.headers["location"]
    assert re.fullmatch(r"/book/[^/]+/confirm/\d+", confirm_path)
    appointment = appointments(service)[0]
    assert (appointment.status, appointment.source) == ("held", "page")

    step = get(service, confirm_path)
    assert step.status_code == 200
    shown = text_of(step)
    assert "Confirm your booking" in shown
    assert "We're holding this time for you for 10 minutes (until 10:" in shown
    assert starts in shown
    assert "Anna" in shown
    assert "1200 Main St" in shown
    assert "Please skip alcohol the day before." in shown
    (confirm_form,) = [f for f in forms(step) if f.method == "post"]

    done = post(service, confirm_form.action, confirm_form.fields)
    assert done.status_code == 303
    booked_page = get(service, done.headers["location"])
    assert "You're booked" in text_of(booked_page)

    appointment = appointments(service)[0]
    assert (appointment.status, appointment.source) == ("booked", "page")
    assert appointment.hold_expires_at is None
    conversation = service.scalar(
        select(Conversation).where(Conversation.id == appointment.conversation_id)
    )
    assert conversation.status == "booked"
    assert conversation.booked_by == "page"
    assert conversation.is_open is False
    assert conversation.booked_value_cents == 48000
    confirmation = next_text(service, caller, 4)
    assert confirmation.startswith(f"Glow Med Spa: You're booked! Botox on {starts}")
    assert "1200 Main St" in confirmation

    # A second click of the same button, or the link opened again: no second booking.
    again = post(service, confirm_form.action, confirm_form.fields)
    assert again.status_code == 303
    reopened = get(service, link)
    assert reopened.status_code == 200
    assert "You're already booked" in text_of(reopened)
    assert starts in text_of(reopened)
    assert slot_forms(reopened) == []
    late_hold = post(service, first.action, first.fields)
    assert late_hold.status_code == 409
    assert "You're already booked" in text_of(late_hold)
    settle()
    assert len(texts_to(service, caller)) == 4
    assert len(appointments(service)) == 1


def test_altered_expired_and_orphaned_links_say_so(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=scheduling())
    link = link_for(service, caller_number(602))
    path = urlsplit(link).path
    token = path.rsplit("/", 1)[1]
    conversation_id, expires, signature = token.split(".")

    ok = get(service, link)
    assert ok.status_code == 200
    for altered in (
        f"{conversation_id}.{expires}.{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{int(conversation_id) + 1}.{expires}.{signature}",
        f"{conversation_id}.{int(expires) + 86400}.{signature}",
        "nonsense",
        f"{conversation_id}.{expires}.{signature[:-1]}é",
        f"١.{expires}.{signature}",
        "1.2.3.4",
    ):
        page = service.http.get(f"{service.url}/book/{altered}")
        assert page.status_code == 404, altered
        assert "This link isn't valid" in text_of(page)
        hold = post(service, f"/book/{altered}/hold", {"service": "Botox"})
        assert hold.status_code == 404
        step = service.http.get(f"{service.url}/book/{altered}/confirm/1")
        assert step.status_code == 404

    location = service.locations.get("glow-downtown")
    assert location is not None
    orphan = booking_page_url(service.runtime.deps, location, 999_999, "Botox")
    assert get(service, orphan).status_code == 404

    form = slot_forms(ok)[0]
    service.clock.advance(timedelta(days=8))  # links work for booking.link_days (7)
    expired = get(service, link)
    assert expired.status_code == 410
    shown = text_of(expired)
    assert "This link has expired" in shown
    assert "Booking links work for 7 days" in shown
    assert "(310) 555-0100" in shown
    assert post(service, form.action, form.fields).status_code == 410
    assert appointments(service) == []


def test_two_holds_of_one_slot_the_second_is_told_it_was_taken(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling([{"id": "anna", "name": "Anna"}]))
    first_link = link_for(service, caller_number(603))
    second_link = link_for(service, caller_number(604))
    mine = slot_forms(get(service, first_link))[0]
    theirs = next(
        f
        for f in slot_forms(get(service, second_link))
        if f.fields["start"] == mine.fields["start"]
    )

    assert post(service, mine.action, mine.fields).status_code == 303
    taken = post(service, theirs.action, theirs.fields)
    assert taken.status_code == 409
    shown = text_of(taken)
    assert "That time was just taken — pick another." in shown
    # The list shown with it no longer offers the held time.
    assert mine.fields["start"] not in {f.fields["start"] for f in slot_forms(taken)}
    assert slot_forms(taken)
    live = [a for a in appointments(service) if a.status == "held"]
    assert len(live) == 1

    # Picking another time lets go of the first hold: one live hold per thread.
    other = slot_forms(taken)[0]
    mine_again = next(
        f
        for f in slot_forms(get(service, first_link))
        if f.fields["start"] == other.fields["start"]
    )
    assert post(service, mine_again.action, mine_again.fields).status_code == 303
    assert [a.status for a in appointments(service)] == ["expired", "held"]


def test_a_lapsed_hold_books_if_still_free_and_is_refused_once_taken(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling([{"id": "anna", "name": "Anna"}]))
    first_link = link_for(service, caller_number(605))
    second_link = link_for(service, caller_number(606))
    third_link = link_for(service, caller_number(607))
    slots = slot_forms(get(service, first_link))

    # Lapsed but still free: confirming books it.
    held = post(service, slots[1].action, slots[1].fields)
    service.clock.advance(timedelta(minutes=11))
    step = get(service, held.headers["location"])
    assert "Your hold has lapsed" in text_of(step)
    (confirm_form,) = [f for f in forms(step) if f.method == "post"]
    assert post(service, confirm_form.action, confirm_form.fields).status_code == 303
    assert appointments(service)[0].status == "booked"

    # Lapsed and taken by someone else meanwhile: refused, with new times.
    second = slot_forms(get(service, second_link))[0]
    held = post(service, second.action, second.fields)
    step = get(service, held.headers["location"])
    (confirm_form,) = [f for f in forms(step) if f.method == "post"]
    service.clock.advance(timedelta(minutes=11))
    third = next(
        f
        for f in slot_forms(get(service, third_link))
        if f.fields["start"] == second.fields["start"]
    )
    assert post(service, third.action, third.fields).status_code == 303
    refused = post(service, confirm_form.action, confirm_form.fields)
    assert refused.status_code == 409
    assert "That time was just taken — pick another." in text_of(refused)
    assert slot_forms(refused)
    statuses = [a.status for a in appointments(service)]
    assert statuses == ["booked", "expired", "held"]
    thread = conversation_of(service, caller_number(606))
    assert thread.is_open is True
    assert thread.booked_by is None


def test_bad_fields_are_refused_by_name_and_nothing_is_written(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    link = link_for(service, caller_number(608))
    page = get(service, link)
    good = slot_forms(page)[0]
    action = good.action

    def hold(status: int, named: str, **changes: str) -> None:
        data = {**good.fields, **changes}
        for key in [k for k, v in changes.items() if v == "<drop>"]:
            data.pop(key)
        answer = post(service, action, data)
        assert answer.status_code == status, (changes, answer.text)
        assert named in text_of(answer), (changes, text_of(answer))

    hold(403, "csrf_token", csrf_token="<drop>")
    hold(403, "csrf_token", csrf_token="0" * 64)
    hold(403, "csrf_token", csrf_token="é" * 64)
    hold(400, "service: no treatment named 'Tattoo'", service="Tattoo")
    hold(400, "service: no treatment named 'Consultation'", service="Consultation")
    hold(400, "service: no treatment named ''", service="<drop>")
    hold(400, "start: expected a time", start="tomorrow at 3")
    hold(400, "start: expected a time", start="2026-11-26T15:00:00")  # no zone
    hold(400, "start: expected a time", start="<drop>")
    hold(400, "start: expected a time", start="2026-11-26")
    hold(400, "start: expected a time", start="9999-12-31T23:59:00-05:00")  # past UTC's range
    hold(400, "is not a time we offer", start="0001-01-01T00:00:00+00:00")
    hold(400, "is not a time we offer", start="2026-11-26T11:07:00+00:00")  # 03:07 in LA
    hold(400, "is not a time we offer", start="2025-11-26T19:00:00+00:00")  # the past
    hold(400, "provider_id: no provider 'zoe'", provider_id="zoe")
    hold(400, "provider_id: Bea does not do Botox", provider_id="bea")
    hold(400, "room_id: 'nope'", room_id="nope")
    too_long = "x" * 5000
    hold(400, "service: no treatment named", service=too_long)

    token_path = urlsplit(link).path
    for bad_day, named in (("26-11-2026", "day: expected a date"), ("2020-01-01", "day: 2020")):
        answer = service.http.get(f"{service.url}{token_path}?day={bad_day}")
        assert answer.status_code == 400
        assert named in text_of(answer)
    answer = service.http.get(f"{service.url}{token_path}?provider=zoe")
    assert answer.status_code == 400
    assert "provider: no provider 'zoe'" in text_of(answer)
    # An unknown treatment in the link falls back to the thread's, with a word about it.
    answer = service.http.get(f"{service.url}{token_path}?service=Tattoo")
    assert answer.status_code == 200
    assert "Tattoo can't be booked online" in text_of(answer)
    for bad_id in ("abc", "99999999999999999999999", "-1", "424242"):
        step = service.http.get(f"{service.url}{token_path}/confirm/{bad_id}")
        assert step.status_code == 404, bad_id
        confirm = post(
            service, f"{token_path}/confirm/{bad_id}", {"csrf_token": good.fields["csrf_token"]}
        )
        assert confirm.status_code == 404, bad_id
    assert appointments(service) == []

    # Another thread's hold cannot be confirmed (or seen) through this link.
    other_link = link_for(service, caller_number(609))
    other = slot_forms(get(service, other_link))[0]
    held = post(service, other.action, other.fields)
    other_id = held.headers["location"].rsplit("/", 1)[1]
    assert service.http.get(f"{service.url}{token_path}/confirm/{other_id}").status_code == 404
    stolen = post(
        service, f"{token_path}/confirm/{other_id}", {"csrf_token": good.fields["csrf_token"]}
    )
    assert stolen.status_code == 404
    # Nor with the other link's own form token on this link.
    forged = post(service, action, {**good.fields, "csrf_token": other.fields["csrf_token"]})
    assert forged.status_code == 403
    assert [a.status for a in appointments(service)] == ["held"]


def test_the_page_speaks_spanish_to_a_spanish_thread(make_service: Callable[..., Service]) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(610)
    link = link_for(service, caller)
    conversation = conversation_of(service, caller)
    with service.db() as session:
        session.execute(
            update(Conversation).where(Conversation.id == conversation.id).values(language="es")
        )
        session.commit()
    page = get(service, link)
    shown = text_of(page)
    assert '<html lang="es">' in page.text
    assert "Reserve en Glow Med Spa" in shown
    assert "mar 24 nov" in shown
    assert "11:15" in shown


@pytest.mark.parametrize("treatment", ["Consultation", ""])
def test_a_link_for_a_consult_or_no_treatment_offers_the_bookable_ones(
    make_service: Callable[..., Service], treatment: str
) -> None:
    service = make_service(edit=scheduling())
    link = link_for(service, caller_number(611), treatment)
    page = get(service, link)
    assert page.status_code == 200
    assert slot_forms(page)
    assert service.scalar(select(func.count()).select_from(Appointment)) == 0


def test_a_link_used_after_the_thread_closed_still_confirms_and_counts_as_booked(
    make_service: Callable[..., Service],
) -> None:
    """Threads close after a day without reply; the texted link works for a week."""
    service = make_service(edit=scheduling())
    caller = caller_number(611)
    link = link_for(service, caller, "Botox")
    conversation = conversation_of(service, caller)
    with transaction(service.runtime.deps.sessions) as session:
        row = session.get(Conversation, conversation.id)
        assert row is not None
        row.is_open, row.status, row.close_reason = False, "closed", "no_reply"
    page = get(service, link + "&service=Filler")  # the patient picks another treatment
    assert page.status_code == 200, page.text
    slot = slot_forms(page)[0]
    assert slot.fields["service"] == "Filler"
    held = post(service, slot.action, slot.fields)
    assert held.status_code == 303, held.text
    (confirm_form,) = [
        f for f in forms(get(service, held.headers["location"])) if f.method == "post"
    ]
    assert post(service, confirm_form.action, confirm_form.fields).status_code == 303
    confirmation = next_text(service, caller, 2)
    assert confirmation.startswith("Glow Med Spa: You're booked! Filler on ")
    closed = service.scalar(select(Conversation).where(Conversation.id == conversation.id))
    assert (closed.status, closed.close_reason, closed.booked_by) == ("booked", "booked", "page")
    assert closed.treatment == "Filler"


def test_the_link_opens_at_the_day_and_part_of_day_the_patient_asked_for(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=scheduling())
    caller = caller_number(371)
    miss(service, caller)
    next_text(service, caller, 1)
    conversation = conversation_of(service, caller)
    location = service.locations.get("glow-downtown")
    assert location is not None
    # "Friday afternoon": Fri Nov 27 2026, 12:00-17:00 in Los Angeles.
    wish = (("2026-11-27T12:00:00-08:00", "2026-11-27T17:00:00-08:00"),)
    url = booking_page_url(service.runtime.deps, location, conversation.id, "Botox", wish)
    assert "day=2026-11-27" in url
    assert "part=afternoon" in url
    assert url.endswith("#asked")
    page = get(service, url.split("#")[0])
    assert page.status_code == 200
    days = re.findall(r"<h2>([^<]+)</h2>", page.text)
    assert days[0] == "Fri Nov 27"
    asked = re.search(r'id="asked">.*?<button type="submit">([^<]+)<', page.text, re.S)
    assert asked is not None
    assert asked.group(1).strip() == "12:00pm"  # the first afternoon time, not 9:00am
    bad = get(service, url.split("#")[0].replace("part=afternoon", "part=teatime"))
    assert bad.status_code == 400
    assert "part: expected morning, afternoon, evening" in text_of(bad)
    assert appointments(service) == []
