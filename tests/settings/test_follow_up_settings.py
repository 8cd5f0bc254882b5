"""The waitlist, rebooking and review settings on the Services page, over HTTP: an owner
sets a treatment interval and turns follow-ups on; bad input is named and nothing saved."""

from __future__ import annotations

import html

import httpx
import pytest
from sqlalchemy import select

from ringback.models import SettingsState
from tests.conftest import Service
from tests.settings.forms import field_error, read_form

PATH = "/staff/settings/locations/glow-downtown/services"


def test_intervals_rebooking_and_reviews_are_set_on_the_services_page(
    db_service: Service, owner: httpx.Client
) -> None:
    form = read_form(owner, PATH)
    assert form["waitlist"] == "on"  # on by default
    assert "rebooking" not in form
    assert form["services.0.rebook_after_days"] == ""
    form.update(
        {
            "services.0.rebook_after_days": "90",
            "services.1.rebook_after_days": "270",
            "rebooking": "on",
            "review_requests": "on",
            "review_link": "https://g.page/r/glow/review",
        }
    )
    form.pop("waitlist")
    saved = owner.post(PATH, data=form)
    assert saved.status_code == 303, saved.text
    location = db_service.runtime.deps.locations.get("glow-downtown")
    assert location is not None
    assert [s.rebook_after_days for s in location.services[:3]] == [90, 270, None]
    assert (location.waitlist, location.rebooking, location.review_requests) == (
        False,
        True,
        True,
    )
    assert location.review_link == "https://g.page/r/glow/review"
    again = read_form(owner, PATH)
    assert again["services.0.rebook_after_days"] == "90"
    assert again["rebooking"] == "on"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"services.0.rebook_after_days": "3"}, "services.0.rebook_after_days", "greater than"),
        ({"services.0.rebook_after_days": "soon"}, "services.0.rebook_after_days", "integer"),
        ({"review_requests": "on"}, "", "set review_link"),
        ({"review_link": "http://g.page/x"}, "", "expected an https:// address"),
    ],
)
def test_bad_follow_up_settings_are_named_and_nothing_is_saved(
    db_service: Service, owner: httpx.Client, change: dict[str, str], field: str, message: str
) -> None:
    form = read_form(owner, PATH)
    form.update(change)
    before = db_service.scalar(select(SettingsState.version))
    refused = owner.post(PATH, data=form)
    assert refused.status_code == 400
    if field:
        assert message in field_error(refused, field)
    else:
        assert message in html.unescape(refused.text)
    assert db_service.scalar(select(SettingsState.version)) == before
