"""The settings pages over HTTP: every form saves, names bad input next to its field and
saves nothing, logs each change, is read only under a locations file, and is refused to
anyone but an owner or admin."""

from __future__ import annotations

import html
import re

import httpx
import pytest
from sqlalchemy import func, select

from ringback.models import SettingsChange, SettingsState
from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.settings.forms import field_error, read_form
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.phone import miss, next_text
from tests.twilio_payloads import caller_number

BASE = "/staff/settings/locations/glow-downtown"


def version(service: Service) -> int:
    return int(service.scalar(select(SettingsState.version)))


def changes(service: Service) -> int:
    return int(service.scalar(select(func.count()).select_from(SettingsChange)))


def downtown(service: Service):  # type: ignore[no-untyped-def]
    found = service.runtime.deps.locations.get("glow-downtown")
    assert found is not None
    return found


def test_the_location_form_saves_and_the_change_is_used_and_logged(
    db_service: Service, owner: httpx.Client
) -> None:
    form = read_form(owner, BASE)
    assert form["name"] == "Glow Med Spa"
    assert form["hours.thu"] == "09:00-20:00"
    assert form["booking_mode"] == "link"
    form.update(
        {
            "ring_seconds": "25",
            "hours.sun": "10:00-14:00",
            "closures": "2026-12-25\n2027-01-01",
            "front_desk": "(310) 555-0101\n310-555-0109",
            "urgent_phone": "+13105550177",
            "blocklist": "+13105550666",
            "after_hours_skip_ring": "on",
        }
    )
    before = version(db_service)
    saved = owner.post(BASE, data=form)
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"{BASE}?saved=1"
    assert version(db_service) == before + 1
    location = downtown(db_service)  # the running service uses it at once
    assert location.ring_seconds == 25
    assert location.hours["sun"] == "10:00-14:00"
    assert location.closures == ("2026-12-25", "2027-01-01")
    assert location.front_desk == ("+13105550101", "+13105550109")
    assert location.after_hours_skip_ring is True
    assert location.urgent_phone == "+13105550177"
    page = owner.get(f"{BASE}?saved=1")
    assert "Saved." in page.text

    log = owner.get("/staff/settings/changes")
    assert log.status_code == 200
    text = html.unescape(log.text)
    assert "owner@glow.example" in text
    assert "ring seconds" in text
    rows = db_service.rows(select(SettingsChange).where(SettingsChange.section == "ring_seconds"))
    assert [(r.actor, r.location_id, r.before, r.after) for r in rows] == [
        ("owner@glow.example", "glow-downtown", 18, 25)
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ring_seconds", "abc", "valid integer"),
        ("ring_seconds", "2", "greater than or equal to 5"),
        ("hours.mon", "9-5", "expected 'HH:MM-HH:MM'"),
        ("hours.tue", "18:00-09:00", "expected the end after the start"),
        ("phone_number", "12", "expected a phone number in E.164 form"),
        ("front_desk", "555", "expected a phone number"),
        ("timezone", "Mars/Olympus", "expected an IANA time zone"),
        ("closures", "next friday", "expected dates as YYYY-MM-DD"),
        ("texting_hours", "closed", "expected a window like '08:00-21:00'"),
        ("booking_url", "glow.example/book", "expected an http(s) URL"),
        ("staff_alert_emails", "not an email", "expected an email address"),
        ("name", "", "at least 1 character"),
        ("phone_number", "+13105550200", "is used by both"),  # Westside's number
    ],
)
def test_bad_input_on_the_location_form_is_named_next_to_its_field_and_nothing_is_saved(
    db_service: Service, owner: httpx.Client, field: str, value: str, message: str
) -> None:
    form = read_form(owner, BASE)
    form[field] = value
    before, logged = version(db_service), changes(db_service)
    refused = owner.post(BASE, data=form)
    assert refused.status_code == 400
    assert "Nothing was saved." in refused.text
    assert message in field_error(refused, field)
    assert f'name="{field}"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert (version(db_service), changes(db_service)) == (before, logged)
    assert downtown(db_service).phone_number == "+13105550100"


def test_the_booking_mode_needs_providers_or_a_link(
    db_service: Service, owner: httpx.Client
) -> None:
    form = read_form(owner, BASE)
    form["booking_mode"] = "own"
    refused = owner.post(BASE, data=form)
    assert refused.status_code == 400
    assert "needs at least one provider" in field_error(refused, "booking_mode")
    form.update(booking_mode="link", booking_url="")
    refused = owner.post(BASE, data=form)
    assert "needs its URL" in field_error(refused, "booking_url")
    assert downtown(db_service).booking_url == "https://glow.example/book"


def test_services_are_added_changed_and_removed_in_rows(
    db_service: Service, owner: httpx.Client
) -> None:
    path = f"{BASE}/services"
    form = read_form(owner, path)
    assert form["services.0.name"] == "Botox"
    blank = max(int(k.split(".")[1]) for k in form if k.startswith("services."))
    assert form[f"services.{blank}.name"] == ""  # a blank row to add to
    form["services.0.price"] = "$495"
    form["services.1.remove"] = "on"  # Filler
    form.update(
        {
            f"services.{blank}.name": "Lash Lift",
            f"services.{blank}.aliases": "lashes, lash lift",
            f"services.{blank}.minutes": "45",
            f"services.{blank}.price": "120.50",
            f"services.{blank}.prep_note": "Come without mascara.",
        }
    )
    saved = owner.post(path, data=form)
    assert saved.status_code == 303, saved.text
    menu = downtown(db_service).services
    names = [s.name for s in menu]
    assert "Filler" not in names
    assert names[-1] == "Lash Lift"
    assert menu[0].price_cents == 49500
    lash = menu[-1]
    assert (lash.aliases, lash.minutes, lash.price_cents, lash.prep_note) == (
        ("lashes", "lash lift"),
        45,
        12050,
        "Come without mascara.",
    )


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"services.0.minutes": "two"}, "services.0.minutes", "valid integer"),
        ({"services.0.minutes": "2"}, "services.0.minutes", "greater than or equal to 5"),
        ({"services.2.price": "-5"}, "services.2.price", "greater than or equal to 0"),
        ({"services.1.name": "botox"}, "", "service 'botox' is listed twice"),
    ],
)
def test_bad_service_rows_are_named_and_nothing_is_saved(
    db_service: Service, owner: httpx.Client, change: dict[str, str], field: str, message: str
) -> None:
    path = f"{BASE}/services"
    form = read_form(owner, path)
    form.update(change)
    before = version(db_service)
    refused = owner.post(path, data=form)
    assert refused.status_code == 400
    if field:
        assert message in field_error(refused, field)
    else:
        assert message in html.unescape(refused.text)
    assert version(db_service) == before
    assert downtown(db_service).services[1].name == "Filler"


def test_providers_and_their_hours_make_the_location_book_itself(
    db_service: Service, owner: httpx.Client
) -> None:
    path = f"{BASE}/providers"
    form = read_form(owner, path)
    assert form["providers.0.name"] == ""
    form.update(
        {
            "providers.0.name": "Maya Chen",
            "providers.0.services": "Botox, Filler",
            "providers.0.hours.mon": "12:00-18:00",
            "providers.0.hours.tue": "09:00-18:00",
        }
    )
    bad = dict(form, **{"providers.0.hours.wed": "noon-ish"})
    refused = owner.post(path, data=bad)
    assert refused.status_code == 400
    assert "expected 'HH:MM-HH:MM'" in field_error(refused, "providers.0.hours.wed")
    unknown = dict(form, **{"providers.0.services": "Botox, Threads"})
    refused = owner.post(path, data=unknown)
    assert "lists service 'Threads', which is not in services" in html.unescape(refused.text)
    assert downtown(db_service).providers == ()

    saved = owner.post(path, data=form)
    assert saved.status_code == 303, saved.text
    (maya,) = downtown(db_service).providers
    assert (maya.id, maya.name, maya.services) == ("maya-chen", "Maya Chen", ("Botox", "Filler"))
    assert maya.hours is not None
    assert maya.hours["mon"] == "12:00-18:00"
    assert maya.hours["wed"] == "closed"
    assert downtown(db_service).schedules
    general = read_form(owner, BASE)
    assert general["booking_mode"] == "own"


def test_templates_save_with_a_live_preview_of_segments_and_encoding(
    db_service: Service, owner: httpx.Client
) -> None:
    path = f"{BASE}/templates"
    page = owner.get(path)
    text = html.unescape(re.sub(r"<[^>]+>", "", page.text))
    assert "{location}" in text
    assert "{phone}" in text
    assert "{appointment}" in text
    assert "Reply STOP to opt out." in text  # the opt-out suffix shown on the first text
    assert "GSM-7 · 1 segment" in text
    assert "Spanish" in text
    assert "¿Qué tratamiento le interesa?" in text
    assert "UCS-2" in text  # Spanish wording with ¡ ¿ á is counted as UCS-2 where it is
    form = read_form(owner, path)

    preview = owner.post(
        f"{path}/preview",
        data=dict(form, **{"messages.textback": "Hola de {location} 😊 ¿qué tratamiento?"}),
    )
    assert preview.status_code == 200
    shown = html.unescape(re.sub(r"<[^>]+>", "", preview.text))
    assert "Hola de Glow Med Spa 😊 ¿qué tratamiento? Reply STOP to opt out." in shown
    assert "UCS-2" in shown
    wrong = owner.post(f"{path}/preview", data=dict(form, **{"messages.help": "Call {fone}"}))
    assert "unknown placeholder {fone}" in html.unescape(wrong.text)

    refused = owner.post(path, data=dict(form, **{"messages.help": "Call {fone}"}))
    assert refused.status_code == 400
    assert "unknown placeholder {fone}" in field_error(refused, "messages.help")

    new = "Hi from {location}! Sorry we missed you. What can we book for you?"
    saved = owner.post(path, data=dict(form, **{"messages.textback": new}))
    assert saved.status_code == 303, saved.text
    # The next missed call gets the new wording, from the running worker.
    caller = caller_number(41)
    miss(db_service, caller)
    assert next_text(db_service, caller, 1).startswith("Hi from Glow Med Spa! Sorry we missed you.")


def test_only_owners_and_admins_change_settings(db_service: Service, owner: httpx.Client) -> None:
    add_user(db_service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(db_service, "desk@glow.example")
    desk_csrf = page_csrf(desk, "/staff")
    before = version(db_service)
    for suffix in ("", "/services", "/providers", "/templates"):
        assert desk.get(f"{BASE}{suffix}").status_code == 403
        posted = desk.post(f"{BASE}{suffix}", data={"csrf_token": desk_csrf, "name": "Mine"})
        assert posted.status_code == 403
    assert desk.get("/staff/settings").status_code == 403
    assert desk.get("/staff/settings/changes").status_code == 403
    preview = desk.post(f"{BASE}/templates/preview", data={"csrf_token": desk_csrf})
    assert preview.status_code == 403
    assert version(db_service) == before
    anonymous = db_service.http.get(db_service.url + BASE)
    assert anonymous.status_code in (302, 303)
    # A post without the session's CSRF token changes nothing either.
    form = read_form(owner, BASE)
    form["csrf_token"] = "forged"
    assert owner.post(BASE, data=form).status_code == 403
    assert version(db_service) == before


def test_settings_from_a_file_are_read_only(make_service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    store_settings(service, managed_by=str(service.config_path))
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    page = owner.get(BASE)
    assert page.status_code == 200
    assert "Read only." in page.text
    assert str(service.config_path) in page.text
    assert "<fieldset disabled>" in page.text
    form = read_form(owner, BASE)
    form["ring_seconds"] = "30"
    refused = owner.post(BASE, data=form)
    assert refused.status_code == 409
    assert "managed by the file" in html.unescape(refused.text)
    assert downtown(service).ring_seconds == 18


def test_an_unknown_location_is_404(db_service: Service, owner: httpx.Client) -> None:
    page = owner.get("/staff/settings/locations/nowhere/services")
    assert page.status_code == 404
    assert "no location 'nowhere'" in html.unescape(page.text)
    overview = owner.get("/staff/settings")
    assert overview.status_code == 200
    assert "Glow Med Spa Westside" in overview.text


def test_a_form_opened_before_someone_else_saved_is_refused_not_merged(
    db_service: Service, owner: httpx.Client
) -> None:
    form = read_form(owner, BASE)
    other = dict(form, ring_seconds="40")
    assert owner.post(BASE, data=other).status_code == 303
    form["address"] = "9 Elm St"
    refused = owner.post(BASE, data=form)  # still carries the version it was opened at
    assert refused.status_code == 409
    assert "someone else saved a change" in html.unescape(refused.text)
    assert downtown(db_service).ring_seconds == 40
    assert downtown(db_service).address != "9 Elm St"
