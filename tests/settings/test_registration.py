"""The texting registration helper (US A2P 10DLC): owners only, written from the
location's real wording, every sample counted in segments."""

from __future__ import annotations

import html
from datetime import UTC, datetime

from ringback.config import load_locations
from ringback.missed_calls.service import textback_body
from ringback.settings.registration import build
from tests.conftest import DEMO_LOCATIONS, Service
from tests.staff.conftest import add_user, sign_in

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def test_the_registration_uses_the_locations_own_wording() -> None:
    downtown = load_locations(DEMO_LOCATIONS).get("glow-downtown")
    assert downtown is not None
    reg = build(downtown, textback_body(downtown, 0, None), NOW)
    first = reg.samples[0]
    assert first.body == (
        "Hi, this is Glow Med Spa - sorry we missed your call! What treatment were you "
        "calling about? Reply STOP to opt out."
    )
    assert (first.encoding, first.segments) == ("GSM-7", 1)
    assert "Glow Med Spa at 1200 Main St, Suite 4, Los Angeles, CA 90012" in reg.description
    assert "(310) 555-0100" in reg.message_flow
    assert "We're sending you a text right now" in reg.message_flow
    assert reg.samples[-1].body == downtown.render(downtown.messages.help)
    assert "STOP" in reg.opt_out_keywords
    assert "UNSUBSCRIBE" in reg.opt_out_keywords
    assert (
        reg.opt_out_message
        == "You're unsubscribed from Glow Med Spa texts. Reply START to resubscribe."
    )
    assert "HELP" in reg.help_keywords
    assert reg.has_links  # the downtown spa sends its booking link
    assert all(s.segments >= 1 for s in reg.samples)
    assert all("Glow Med Spa" in s.body for s in reg.samples)


def test_owners_see_the_page_and_staff_do_not(service: Service) -> None:
    add_user(service, "owner@glow.example")
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    owner = sign_in(service, "owner@glow.example")
    page = owner.get("/staff/settings/texting-registration", params={"location": "glow-westside"})
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Texting registration (US A2P 10DLC)" in text
    assert "Hi, this is Glow Med Spa Westside - sorry we missed your call!" in text
    assert "GSM-7 · 1 segment" in text
    assert "Customer Care" in text
    unknown = owner.get("/staff/settings/texting-registration", params={"location": "nowhere"})
    assert unknown.status_code == 404
    assert "no location 'nowhere'" in html.unescape(unknown.text)
    desk = sign_in(service, "desk@glow.example")
    refused = desk.get("/staff/settings/texting-registration")
    assert refused.status_code == 403
    assert "Hi, this is" not in refused.text
    anonymous = service.http.get(service.url + "/staff/settings/texting-registration")
    assert anonymous.status_code in (302, 303)
