"""The Square mapping page in Chromium at desk and phone size, against the fake Square: it
passes axe-core, fits the screen, names a service left unmapped at its select, and saves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import time

import pytest
from playwright.sync_api import Browser, Page, expect

from ringback.fakes.square import SELLER_SCOPES, FakeSquare, FakeSquareServer
from tests.browser.test_settings_pages import SIZES, checked
from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.support.booking import scheduling
from tests.support.browser import OWNER, Console, add_user_named, open_context, sign_in

pytestmark = pytest.mark.slow

PAGE = "/staff/settings/booking-systems/square?location=glow-downtown"


@pytest.fixture
def square(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSquareServer]:
    state = FakeSquare(scopes=SELLER_SCOPES)
    anna = state.add_team_member("Anna", "Lopez", opens=time(9))
    bea = state.add_team_member("Bea", "Kim")
    state.add_service("Botox", 30, (anna,))
    state.add_service("Filler", 60, (anna, bea))
    state.add_service("HydraFacial", 60, (bea,))
    monkeypatch.setenv("SQUARE_ACCESS_TOKEN", state.access_token)
    with FakeSquareServer(state) as server:
        yield server
        assert state.violations == []


@pytest.fixture
def service(make_service: Callable[..., Service], square: FakeSquareServer) -> Service:
    served = make_service(edit=scheduling(), settings_overrides={"SQUARE_API_BASE_URL": square.url})
    store_settings(served)
    add_user_named(served, OWNER, "Dana Reyes")
    return served


@pytest.fixture(params=list(SIZES))
def screen(
    request: pytest.FixtureRequest, browser: Browser, service: Service
) -> Iterator[tuple[Page, Console]]:
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


def test_an_owner_maps_the_location_to_square(
    service: Service, square: FakeSquareServer, screen: tuple[Page, Console]
) -> None:
    page, console = screen
    sign_in(page, service)
    page.goto(f"{service.url}/staff/settings/booking-systems")
    checked(page, "booking systems")
    page.get_by_role("link", name="Book into Square instead").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Glow Med Spa: Square Appointments")
    checked(page, "Square mapping")
    anna = page.get_by_label("Anna", exact=True)
    expect(anna.locator("option:checked")).to_have_text("Anna Lopez")  # matched by name
    hydra = page.get_by_label("HydraFacial", exact=True)
    hydra.select_option(label="Not mapped")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.get_by_role("alert").first).to_contain_text("Nothing was saved.")
    expect(page.locator('[data-field="service.2"]')).to_contain_text(
        "choose Square's service for HydraFacial"
    )
    expect(page.get_by_label("HydraFacial", exact=True)).to_have_attribute("aria-invalid", "true")
    checked(page, "Square mapping with an error")
    page.get_by_label("HydraFacial", exact=True).select_option(label="HydraFacial (60 min)")
    page.get_by_role("button", name="Save the mapping").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    downtown = service.runtime.deps.locations.get("glow-downtown")
    assert downtown is not None
    assert downtown.booking_system == "square"
    assert downtown.square is not None
    assert set(downtown.square.services) == {"Botox", "Filler", "HydraFacial"}
    page.goto(f"{service.url}/staff/settings/booking-systems")
    expect(page.get_by_role("link", name="Square mapping")).to_be_visible()
    assert [e for e in console.errors if "status of 400" not in e] == []
