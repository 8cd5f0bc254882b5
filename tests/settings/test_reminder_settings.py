"""The Reminders and Booking system settings pages over HTTP: they save, are used at once
and logged; bad input is named next to its field with nothing saved; an admin may change
them; read only under a locations file."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from ringback.models import SettingsChange, SettingsState
from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.settings.forms import field_error, read_form
from tests.staff.conftest import add_user, sign_in

BASE = "/staff/settings/locations/glow-downtown"
REMINDERS = BASE + "/reminders"
BOOKING = BASE + "/booking-system"


def saved_state(service: Service) -> tuple[int, int]:
    return (
        int(service.scalar(select(SettingsState.version))),
        int(service.scalar(select(func.count()).select_from(SettingsChange))),
    )


def downtown(service: Service):  # type: ignore[no-untyped-def]
    found = service.runtime.deps.locations.get("glow-downtown")
    assert found is not None
    return found


def test_an_admin_changes_the_reminders_and_it_is_used_and_logged(db_service: Service) -> None:
    add_user(db_service, "mia@glow.example", role="admin")
    admin = sign_in(db_service, "mia@glow.example")
    form = read_form(admin, REMINDERS)
    assert form["reminders.0.hours_before"] == "48"
    assert form["reminders.1.hours_before"] == "2"
    assert form["no_show_text"] == "on"
    assert form["automated_texts_per_day"] == "1"
    form.update(
        {
            "reminders.1.remove": "on",
            "reminders.2.hours_before": "24",
            "reminders.2.text": "{location}: see you {when} for your {treatment}!",
            "reminders.2.text_es": "{location}: le esperamos el {when}.",
            "automated_texts_per_day": "",
            "health_details_in_texts": "on",
        }
    )
    del form["no_show_text"]
    done = admin.post(REMINDERS, data=form)
    assert done.status_code == 303, done.text
    location = downtown(db_service)
    assert [r.hours_before for r in location.reminders] == [48, 24]
    assert location.reminders[1].text == "{location}: see you {when} for your {treatment}!"
    assert location.automated_texts_per_day is None
    assert location.no_show_text is False
    assert location.health_details_in_texts is True
    sections = db_service.rows(
        select(SettingsChange.section).where(SettingsChange.actor == "mia@glow.example")
    )
    assert "reminders" in sections
    page = admin.get(REMINDERS + "?saved=1").text
    assert "Saved." in page
    # The preview shows the typed wording, filled in, with its encoding and segments.
    assert "Glow Med Spa: see you Wed Nov 25 at 12:00pm for your Botox!" in page
    assert "GSM-7" in page
    # The messages page lists the reminder texts too.
    templates = admin.get(BASE + "/templates").text
    assert 'id="reminder-previews"' in templates
    assert "Reminder 24 h before, Spanish" in templates


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"reminders.0.hours_before": "0"}, "reminders.0.hours_before", "greater than 0"),
        ({"reminders.0.hours_before": "soon"}, "reminders.0.hours_before", "valid number"),
        (
            {"reminders.0.hours_before": "", "reminders.0.text": "{location}: see you {when}"},
            "reminders.0.hours_before",
            "how many hours",
        ),
        ({"reminders.0.text": "Hi {name}"}, "reminders.0.text", "unknown placeholder {name}"),
        ({"reminders.1.hours_before": "48"}, "reminders", "due the same time"),
        ({"reminders.0.text_es": "{treatment} {when}"}, "reminders", "health_details_in_texts"),
        ({"automated_texts_per_day": "0"}, "automated_texts_per_day", "greater than or equal"),
        ({"automated_texts_per_day": "lots"}, "automated_texts_per_day", "valid integer"),
    ],
)
def test_bad_reminder_input_is_named_and_nothing_is_saved(
    db_service: Service, owner: httpx.Client, changes: dict[str, str], field: str, message: str
) -> None:
    form = read_form(owner, REMINDERS)
    form.update(changes)
    before = saved_state(db_service)
    refused = owner.post(REMINDERS, data=form)
    assert refused.status_code == 400
    assert "Nothing was saved." in refused.text
    assert message in field_error(refused, field)
    assert saved_state(db_service) == before
    assert [r.hours_before for r in downtown(db_service).reminders] == [48, 2]


def test_the_reminder_preview_follows_what_is_typed(
    db_service: Service, owner: httpx.Client
) -> None:
    form = read_form(owner, REMINDERS)
    form["reminders.0.text"] = "{location}: 😊 {when}"
    shown = owner.post(REMINDERS + "/preview", data=form)
    assert shown.status_code == 200
    assert "Glow Med Spa: 😊 Wed Nov 25 at 12:00pm" in shown.text
    assert "UCS-2" in shown.text


def test_the_booking_system_shows_what_each_can_do_and_saves(
    db_service: Service, owner: httpx.Client
) -> None:
    page = owner.get(BOOKING)
    assert page.status_code == 200
    assert "Now: booking system ringback" in page.text
    assert "computes slots itself" in page.text  # Square
    assert "busy-only (Ringback computes slots)" in page.text  # Google Calendar
    form = read_form(owner, BOOKING)
    assert form["booking_system"] == "ringback"
    before = saved_state(db_service)
    # Square needs its location and a team member for every provider: named, nothing saved.
    square = owner.post(BOOKING, data={**form, "booking_system": "square"})
    assert square.status_code == 400
    assert "at least 1 character" in field_error(square, "square.location_id")
    assert saved_state(db_service) == before
    unknown = owner.post(BOOKING, data={**form, "booking_system": "acuity"})
    assert unknown.status_code == 400
    assert "choose one of ringback, caldav" in field_error(unknown, "booking_system")
    assert saved_state(db_service) == before
    no_providers = owner.post(BOOKING, data={**form, "booking_system": "google_calendar"})
    assert no_providers.status_code == 400
    assert "needs providers" in field_error(no_providers, "booking_system")
    assert saved_state(db_service) == before
    providers = read_form(owner, BASE + "/providers")
    providers.update({"providers.0.name": "Maya Chen", "providers.0.services": "Botox"})
    assert owner.post(BASE + "/providers", data=providers).status_code == 303
    google = owner.post(
        BOOKING,
        data={
            **read_form(owner, BOOKING),
            "booking_system": "google_calendar",
            "google_calendar.default_calendar": "clinic@group.calendar.google.com",
        },
    )
    assert google.status_code == 303, google.text
    location = downtown(db_service)
    assert location.booking_system == "google_calendar"
    assert location.google_calendar is not None
    assert location.google_calendar.default_calendar == "clinic@group.calendar.google.com"
    back = owner.post(BOOKING, data={**read_form(owner, BOOKING), "booking_system": "ringback"})
    assert back.status_code == 303
    assert downtown(db_service).google_calendar is None


def test_staff_are_refused_and_a_file_makes_the_pages_read_only(
    make_service,  # type: ignore[no-untyped-def]
) -> None:
    service = make_service()
    store_settings(service, managed_by="/etc/ringback/locations.yaml")
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    assert desk.get(REMINDERS).status_code == 403
    assert desk.get(BOOKING).status_code == 403
    owner = sign_in(service, "owner@glow.example")
    for path in (REMINDERS, BOOKING):
        page = owner.get(path)
        assert 'id="read-only"' in page.text
        form = read_form(owner, path)
        refused = owner.post(path, data=form)
        assert refused.status_code == 409
        assert "managed by the file /etc/ringback/locations.yaml" in refused.text
