"""Issue #12's staff actions in headless Chromium, at desk and phone size, with axe-core on
every page: resolve an urgent thread after calling back, name a patient (and be told
plainly when the name cannot be kept), take a thread over by replying and hand it back.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from ringback.models import Conversation, Note, Patient
from tests.conftest import Service, wait_for
from tests.support.browser import (
    OWNER,
    Console,
    add_user_named,
    assert_accessible,
    no_sideways_scroll,
    open_context,
    sign_in,
)
from tests.support.phone import texts_to
from tests.support.staff import handed_off, urgent

pytestmark = pytest.mark.slow

SIZES = {
    "desk": ((1280, 900), {"device_scale_factor": 1}),
    "phone": ((390, 844), {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}),
}


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    served = make_service()
    add_user_named(served, OWNER, "Dana Reyes")
    return served


@pytest.fixture(params=list(SIZES))
def screen(
    request: pytest.FixtureRequest, browser: Browser, service: Service
) -> Iterator[tuple[Page, Console]]:
    """A page at desk or phone size. Depends on ``service`` so it closes (and with it the
    page's event stream) before the server stops."""
    (width, height), extra = SIZES[request.param]
    context = open_context(browser, width, height, **extra)
    page = context.new_page()
    console = Console()
    page.on("console", console.message)
    page.on("pageerror", console.page_error)
    try:
        yield page, console
    finally:
        context.close()


def open_conversation(page: Page, service: Service, conversation_id: int) -> None:
    sign_in(page, service)
    page.goto(f"{service.url}/staff/conversations/{conversation_id}")
    expect(page.get_by_role("heading", name="Texts")).to_be_visible()
    no_sideways_scroll(page, "conversation page")


def row(service: Service, model: Any, conversation_id: int) -> Any:
    return service.scalar(select(model).where(model.id == conversation_id))


def test_resolve_an_urgent_thread(service: Service, screen: tuple[Page, Console]) -> None:
    page, console = screen
    _, cid = urgent(service, 800, "my lip is swelling after filler yesterday")
    sign_in(page, service)
    page.goto(f"{service.url}/staff?queue=urgent")
    card = page.locator("li.conv").filter(has=page.locator(f"#conv-{cid}"))
    expect(card).to_contain_text("Filler")
    expect(card).to_contain_text("Patient: my lip is swelling after filler yesterday")
    assert_accessible(page, "urgent queue")
    no_sideways_scroll(page, "urgent queue")

    page.locator(f"#conv-{cid}").click()
    expect(page.locator("#conv-head")).to_contain_text("Urgent")
    # One tap calls the patient back: a large tel: link at the top of the thread.
    patient_phone = service.scalar(
        select(Patient.phone).join(Conversation).where(Conversation.id == cid)
    )
    call = page.get_by_role("link", name=re.compile(r"^Call "))
    expect(call).to_have_attribute("href", f"tel:{patient_phone}")
    box = call.bounding_box()
    assert box is not None
    assert box["height"] >= 48
    assert_accessible(page, "urgent conversation")
    page.get_by_label("Note on the call back (optional)").fill("Spoke at 10:40; ice, seen 9am")
    page.get_by_role("button", name="Called back, resolved").click()
    expect(page.get_by_role("status").filter(has_text="Resolved")).to_be_visible()
    expect(page.locator("#conv-head .badge")).to_have_text("Closed")
    expect(page.locator("#facts")).to_contain_text("Called back, resolved")
    expect(page.locator("#notes-list")).to_contain_text("Called back, resolved. Spoke at 10:40")
    expect(page.locator("#notes-list")).to_contain_text("Dana Reyes")
    expect(page.get_by_role("button", name="Called back, resolved")).to_have_count(0)
    expect(page.get_by_role("link", name=re.compile(r"^Call "))).to_have_count(0)
    assert_accessible(page, "resolved conversation")
    no_sideways_scroll(page, "resolved conversation")
    conversation = row(service, Conversation, cid)
    assert (conversation.status, conversation.close_reason) == ("closed", "resolved")
    assert console.errors == []


def test_the_header_folds_behind_a_menu_on_a_phone(
    service: Service, screen: tuple[Page, Console]
) -> None:
    page, console = screen
    sign_in(page, service)
    patients = page.get_by_role("link", name="Patients")
    menu = page.get_by_role("button", name="Menu")
    if page.viewport_size and page.viewport_size["width"] < 600:
        expect(patients).to_be_hidden()
        expect(menu).to_have_attribute("aria-expanded", "false")
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(patients).to_be_visible()
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
        assert_accessible(page, "open menu")
        page.keyboard.press("Escape")
        expect(patients).to_be_hidden()
        menu.click()
        patients.click()
        expect(page).to_have_url(f"{service.url}/staff/patients")
    else:
        expect(menu).to_be_hidden()
        expect(patients).to_be_visible()
    expect(page.get_by_role("link", name=re.compile(r"^Urgent"))).to_be_visible()
    no_sideways_scroll(page, "inbox")
    assert console.errors == []


def test_name_a_patient(service: Service, screen: tuple[Page, Console]) -> None:
    page, console = screen
    caller, cid = handed_off(service, 801)
    open_conversation(page, service, cid)

    # A tab pasted into the name: refused next to the field, which gets the focus.
    first = page.get_by_label("First name")
    first.fill("Maria\tJose")
    page.get_by_label("Last name").fill("Cruz")
    page.get_by_role("button", name="Save name").click()
    error = page.get_by_role("alert")
    expect(error).to_have_text(re.compile(r"^First name: contains a control character"))
    expect(first).to_be_focused()
    expect(first).to_have_attribute("aria-invalid", "true")
    assert_accessible(page, "conversation page with a refused name")
    patient = service.scalar(select(Patient).where(Patient.phone == caller))
    assert (patient.first_name, patient.last_name) == (None, None)

    first.fill("Maria")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status").filter(has_text="Name saved.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Maria Cruz")
    assert_accessible(page, "conversation page, named")

    # The patient page has the same form.
    page.goto(f"{service.url}/staff/patients/{patient.id}")
    expect(page.get_by_label("First name")).to_have_value("Maria")
    page.get_by_label("Last name").fill("de la Cruz")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status").filter(has_text="Name saved.")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_have_text("Maria de la Cruz")
    assert_accessible(page, "patient page, named")
    no_sideways_scroll(page, "patient page")
    patient = service.scalar(select(Patient).where(Patient.phone == caller))
    assert (patient.first_name, patient.last_name) == ("Maria", "de la Cruz")
    assert [e for e in console.errors if "status of 400" not in e] == []


def test_take_over_by_replying_then_hand_back(
    service: Service, screen: tuple[Page, Console]
) -> None:
    page, console = screen
    caller, cid = handed_off(service, 802)
    open_conversation(page, service, cid)
    expect(page.locator("#conv-head")).to_contain_text("Bot quiet: waiting for staff")

    page.get_by_label(re.compile("^Reply to")).fill("Hi! Dana here. Which day suits you?")
    page.get_by_role("button", name="Send reply").click()
    expect(page.get_by_role("status").filter(has_text="Reply queued")).to_be_visible()
    expect(page.locator("#conv-head")).to_contain_text("Bot paused: staff have this conversation")
    wait_for(
        lambda: any("Which day suits you" in m.body for m in texts_to(service, caller)),
        what="the staff reply at Twilio",
    )
    assert_accessible(page, "conversation taken over")

    page.get_by_role("button", name="Hand back to the bot").click()
    expect(page.get_by_role("status").filter(has_text="Handed back to the bot")).to_be_visible()
    expect(page.locator("#conv-head")).to_contain_text("Bot is handling this conversation")
    expect(page.locator("#conv-head .badge")).to_have_text("With the bot")
    expect(page.get_by_role("button", name="Hand back to the bot")).to_have_count(0)
    assert_accessible(page, "conversation handed back")
    no_sideways_scroll(page, "conversation handed back")
    conversation = row(service, Conversation, cid)
    assert (conversation.status, conversation.bot_paused) == ("active", False)
    assert service.rows(select(Note).where(Note.conversation_id == cid)) == []
    assert console.errors == []


def test_text_a_patient_from_their_record(service: Service, screen: tuple[Page, Console]) -> None:
    page, console = screen
    phone = "+12135550612"
    now = service.clock()
    with service.db() as session:
        patient = Patient(
            location_id="glow-downtown",
            phone=phone,
            first_name="Rosa",
            created_at=now,
            updated_at=now,
        )
        session.add(patient)
        session.commit()
        patient_id = patient.id
    sign_in(page, service)
    page.goto(f"{service.url}/staff/patients/{patient_id}")
    expect(page.get_by_role("heading", name="Text Rosa")).to_be_visible()
    assert_accessible(page, "patient page with the text form")
    no_sideways_scroll(page, "patient page")
    page.get_by_label("Message").fill("Hi Rosa, your touch-up is due. Next week?")
    page.get_by_role("button", name="Send text").click()
    expect(page).to_have_url(re.compile(r"/staff/conversations/\d+\?done=reply$"))
    expect(page.locator("#thread")).to_contain_text("Hi Rosa, your touch-up is due. Next week?")
    wait_for(lambda: texts_to(service, phone), what="the text to Rosa")
    assert console.errors == []


def test_texting_registration_page(service: Service, screen: tuple[Page, Console]) -> None:
    page, console = screen
    sign_in(page, service)
    page.goto(f"{service.url}/staff/settings/texting-registration")
    expect(page.get_by_role("heading", level=1)).to_have_text("Texting registration (US A2P 10DLC)")
    expect(page.get_by_label("Campaign description")).to_contain_text("Glow Med Spa")
    expect(page.locator(".samples li")).to_have_count(5)
    page.get_by_label("Location").select_option("glow-westside")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_label(re.compile("^Sample 1"))).to_contain_text("Glow Med Spa Westside")
    assert_accessible(page, "texting registration")
    no_sideways_scroll(page, "texting registration")
    assert console.errors == []
