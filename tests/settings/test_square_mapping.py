"""The Square mapping page over HTTP, against the fake Square: it lists Square's locations,
team members and services beside the location's own (matched by name until saved), saves
the mapping into the settings (audited, used at once: the next text books in Square), and
on a refused token, Square down, an unknown id or a file-managed install says so and
saves nothing. ``ringback square map --save`` saves into the same settings."""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import time

import httpx
import pytest
from sqlalchemy import func, select

from ringback.fakes.square import SELLER_SCOPES, FakeSquare, FakeSquareServer
from ringback.models import Appointment, SettingsChange, SettingsState
from tests.conftest import Service, wait_for
from tests.settings.conftest import store_settings
from tests.settings.forms import field_error, read_form
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.booking import offered_times, scheduling
from tests.support.cli import ringback
from tests.support.phone import miss, next_text, text_in
from tests.twilio_payloads import caller_number

PAGE = "/staff/settings/booking-systems/square?location=glow-downtown"
POST = "/staff/settings/booking-systems/square?location=glow-downtown"


@dataclass
class Square:
    server: FakeSquareServer
    anna: str
    bea: str
    botox: str
    filler: str
    hydra: str

    @property
    def state(self) -> FakeSquare:
        return self.server.state


@pytest.fixture
def square(monkeypatch: pytest.MonkeyPatch) -> Iterator[Square]:
    state = FakeSquare(scopes=SELLER_SCOPES)
    anna = state.add_team_member("Anna", "Lopez", opens=time(9))
    bea = state.add_team_member("Bea", "Kim")
    botox = state.add_service("Botox", 30, (anna,))
    filler = state.add_service("Filler", 60, (anna, bea))
    hydra = state.add_service("HydraFacial", 60, (bea,))
    state.add_service("Lip Flip", 15, (anna,))
    monkeypatch.setenv("SQUARE_ACCESS_TOKEN", state.access_token)
    with FakeSquareServer(state) as server:
        yield Square(server, anna, bea, botox.variation_id, filler.variation_id, hydra.variation_id)
        assert state.violations == []


@pytest.fixture
def spa(make_service: Callable[..., Service], square: Square) -> Service:
    service = make_service(
        edit=scheduling(), settings_overrides={"SQUARE_API_BASE_URL": square.server.url}
    )
    square.state.clock = service.clock
    store_settings(service)
    return service


@pytest.fixture
def owner(spa: Service) -> httpx.Client:
    add_user(spa, "owner@glow.example")
    return sign_in(spa, "owner@glow.example")


def version(service: Service) -> int:
    return int(service.scalar(select(SettingsState.version)))


def changes(service: Service) -> int:
    return int(service.scalar(select(func.count()).select_from(SettingsChange)))


def downtown(service: Service):  # type: ignore[no-untyped-def]
    found = service.runtime.deps.locations.get("glow-downtown")
    assert found is not None
    return found


def test_the_page_matches_by_name_saves_the_mapping_and_the_next_text_books_in_square(
    spa: Service, owner: httpx.Client, square: Square
) -> None:
    page = owner.get(PAGE)
    assert page.status_code == 200, page.text
    text = html.unescape(page.text)
    assert "Anna Lopez" in text
    assert "Bea Kim" in text
    assert "Lip Flip (15 min)" in text  # Square's own services are all listed
    form = read_form(owner, PAGE)
    assert form["square_location"] == square.state.location_id
    assert form["provider.anna"] == square.anna  # "Anna" matched "Anna Lopez" by name
    assert form["provider.bea"] == square.bea
    assert form["service.0"] == square.botox
    assert form["service.1"] == square.filler
    assert form["service.2"] == square.hydra
    assert form["service.3"] == ""  # Laser Hair Removal: nothing of that name in Square
    assert "service.6" not in form  # the consultation is not booked in Square
    before = version(spa)
    saved = owner.post(POST, data=form)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"].endswith("?location=glow-downtown&saved=1")
    assert version(spa) == before + 1
    location = downtown(spa)  # the running service uses it at once
    assert location.booking_system == "square"
    assert location.square is not None
    assert location.square.location_id == square.state.location_id
    assert location.square.team_members == {"anna": square.anna, "bea": square.bea}
    assert location.square.services == {
        "Botox": square.botox,
        "Filler": square.filler,
        "HydraFacial": square.hydra,
    }
    logged = spa.rows(select(SettingsChange).where(SettingsChange.version == before + 1))
    assert {(row.section, row.actor) for row in logged} == {
        ("booking_system", "owner@glow.example"),
        ("square", "owner@glow.example"),
    }
    assert "Saved." in owner.get(saved.headers["location"]).text

    # Changing one select changes only that mapping.
    form = read_form(owner, PAGE)
    form["service.1"] = square.hydra
    assert owner.post(POST, data=form).status_code == 303
    assert downtown(spa).square.services["Filler"] == square.hydra
    stale = owner.post(POST, data=form)  # the version this form was read at is gone
    assert stale.status_code == 409
    assert "someone else saved a change" in html.unescape(stale.text)
    form = read_form(owner, PAGE)
    form["service.1"] = square.filler
    assert owner.post(POST, data=form).status_code == 303

    # No restart: a missed caller's booking now lands in Square, once.
    caller = caller_number(931)
    miss(spa, caller)
    next_text(spa, caller, 1)
    text_in(spa, caller, "botox thursday afternoon please, first time")
    assert offered_times(next_text(spa, caller, 2))
    text_in(spa, caller, "1")
    assert "You're booked!" in next_text(spa, caller, 3)
    wait_for(
        lambda: spa.scalar(select(Appointment).where(Appointment.status == "booked")),
        what="the appointment",
    )
    ours = wait_for(
        lambda: [b for b in square.state.bookings() if "ringback:" in str(b.get("seller_note"))],
        what="the booking in Square",
    )
    assert len(ours) == 1
    assert ours[0]["appointment_segments"][0]["team_member_id"] == square.anna


def test_staff_may_not_map_and_a_post_needs_the_csrf_token(
    spa: Service, owner: httpx.Client
) -> None:
    add_user(spa, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(spa, "desk@glow.example")
    assert desk.get(PAGE).status_code == 403
    csrf = page_csrf(desk, "/staff/patients")
    assert desk.post(POST, data={"csrf_token": csrf}).status_code == 403
    form = read_form(owner, PAGE)
    form.pop("csrf_token")
    before = version(spa)
    assert owner.post(POST, data=form).status_code == 403
    assert version(spa) == before
    assert owner.get("/staff/settings/booking-systems/square?location=nowhere").status_code == 404


def test_an_unknown_id_or_a_required_service_left_out_is_named_and_nothing_is_saved(
    spa: Service, owner: httpx.Client, square: Square
) -> None:
    before, logged = version(spa), changes(spa)
    form = read_form(owner, PAGE)
    form["provider.anna"] = "TMforged"
    form["service.2"] = ""  # HydraFacial: Bea performs it, so Square must know it
    form["service.3"] = "NOPE"  # Laser Hair Removal: optional, but not an unknown id
    refused = owner.post(POST, data=form)
    assert refused.status_code == 400
    assert "Nothing was saved" in refused.text
    assert "'TMforged' is not one of Square's team members" in field_error(refused, "provider.anna")
    assert "choose Square's service for HydraFacial" in field_error(refused, "service.2")
    assert "'NOPE' is not one of Square's bookable services" in field_error(refused, "service.3")
    assert "selected>Not in Square: TMforged</option>" in refused.text  # kept as typed
    form = read_form(owner, PAGE)
    form["square_location"] = "LOCforged"
    elsewhere = owner.post(POST, data=form)
    assert elsewhere.status_code == 400
    assert "'LOCforged' is not one of the seller's locations" in html.unescape(elsewhere.text)
    assert (version(spa), changes(spa)) == (before, logged)
    assert downtown(spa).booking_system == "ringback"


def test_an_expired_token_or_square_down_is_said_and_nothing_is_saved(
    spa: Service, owner: httpx.Client, square: Square, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = version(spa)
    form = read_form(owner, PAGE)
    square.state.fail_next(status=500)
    down = owner.post(POST, data=form)
    assert down.status_code == 503
    assert "Square is not answering right now" in html.unescape(down.text)
    square.state.fail_next(status=503, operation="ListLocations")
    assert "Square is not answering right now" in html.unescape(owner.get(PAGE).text)
    square.state.expire_access_token()
    shown = owner.get(PAGE)
    assert shown.status_code == 502
    assert "Square refused the access token" in html.unescape(shown.text)
    assert "ACCESS_TOKEN_EXPIRED" in shown.text
    refused = owner.post(POST, data=form)
    assert refused.status_code == 502
    assert "Nothing was saved" in refused.text
    monkeypatch.delenv("SQUARE_ACCESS_TOKEN")
    missing = owner.get(PAGE)
    assert missing.status_code == 409
    assert "no Square access token: set SQUARE_ACCESS_TOKEN" in html.unescape(missing.text)
    assert version(spa) == before
    assert downtown(spa).booking_system == "ringback"


def test_read_only_while_a_locations_file_manages_the_settings(
    make_service: Callable[..., Service], square: Square
) -> None:
    service = make_service(
        edit=scheduling(), settings_overrides={"SQUARE_API_BASE_URL": square.server.url}
    )
    store_settings(service, managed_by="/etc/ringback/locations.yaml")
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    page = owner.get(PAGE)
    assert page.status_code == 200
    assert "Read only." in page.text
    assert "/etc/ringback/locations.yaml" in page.text
    assert "Save the mapping" not in page.text
    before = version(service)
    refused = owner.post(POST, data={**read_form(owner, PAGE), "version": str(before)})
    assert refused.status_code == 409
    assert "managed by the file /etc/ringback/locations.yaml" in html.unescape(refused.text)
    assert version(service) == before


def test_the_cli_saves_into_the_same_settings_and_the_page_shows_it(
    spa: Service, owner: httpx.Client, square: Square, database_url: str
) -> None:
    env = {
        "RINGBACK_CONFIG": "",  # the settings live in the database
        "RINGBACK_DATABASE_URL": database_url,
        "SQUARE_API_BASE_URL": square.server.url,
    }
    before = version(spa)
    printed = ringback("square", "map", "-l", "glow-downtown", env=env)
    assert printed.returncode == 0, printed.stderr
    assert f"  {square.anna}  Anna Lopez" in printed.stdout
    assert version(spa) == before  # without --save nothing changes
    saved = ringback("square", "map", "-l", "glow-downtown", "--save", env=env)
    assert saved.returncode == 0, saved.stderr
    assert f"saved to the settings (version {before + 1})" in saved.stdout
    assert version(spa) == before + 1
    rows = spa.rows(select(SettingsChange).where(SettingsChange.version == before + 1))
    assert {row.section for row in rows} == {"booking_system", "square"}
    assert all(row.actor.endswith("(ringback square map)") for row in rows)
    form = read_form(owner, PAGE)  # the page reads what the CLI saved
    assert downtown(spa).booking_system == "square"
    assert form["provider.anna"] == square.anna
    assert form["service.0"] == square.botox
    assert "Square mapping" in owner.get("/staff/settings/booking-systems").text
    # The page's change, read back by the CLI: it prints the saved mapping first.
    form["provider.anna"] = square.bea
    assert owner.post(POST, data=form).status_code == 303
    again = ringback("square", "map", "-l", "glow-downtown", env=env)
    assert f"anna: {square.bea}" in again.stdout
