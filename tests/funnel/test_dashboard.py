"""The staff app's recovery dashboard over HTTP (sign-in, locations, filters, figures, SVG)
and in headless Chromium at phone size (readable, nothing overflowing, no errors)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from ringback.db import transaction
from ringback.funnel import rollup
from ringback.funnel.seed import seed_history
from ringback.models import StaffUser
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import REPO, Service
from tests.funnel.dataset import add_history
from tests.staff.conftest import PASSWORD, add_user, sign_in

MARCH = {"since": "2026-03-06", "until": "2026-03-10"}
SCREENSHOTS = REPO / "docs" / "screenshots"


def with_history(service: Service) -> Service:
    with transaction(service.runtime.deps.sessions) as session:
        add_history(session)
    rollup.rebuild(service.runtime.deps.sessions, service.locations)
    return service


def svgs(html: str) -> dict[str, ET.Element]:
    """Every chart on the page, parsed as XML (so escaping mistakes fail here)."""
    found = {}
    for match in re.finditer(r"<svg\b.*?</svg>", html, flags=re.S):
        element = ET.fromstring(match.group(0))  # noqa: S314 - our own page
        found[element.get("id", "")] = element
    return found


def test_dashboard_needs_sign_in(service: Service) -> None:
    response = service.http.get(
        service.url + "/staff/dashboard?since=2026-03-06", follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/staff/login?next=/staff/dashboard%3Fsince%3D2026-03-06"


def test_owner_sees_every_figure_for_all_locations(service: Service) -> None:
    with_history(service)
    add_user(service, "owner@glow.example")
    page = sign_in(service, "owner@glow.example").get("/staff/dashboard", params=MARCH)
    assert page.status_code == 200
    html = page.text
    assert "<h1>Recovery</h1>" in html
    assert 'id="queue-nav"' in html  # the inbox's frame and navigation
    assert "Glow Med Spa, Glow Med Spa Westside · Mar 6, 2026 – Mar 10, 2026" in html
    kpis = re.findall(r'<span class="kpi-value">([^<]+)</span>', html)
    assert kpis == ["15", "8", "6", "4", "$2,029", "1\u00a0s"]
    charts = svgs(html)
    assert set(charts) == {"funnel-chart", "trend-chart", "reasons-chart", "heatmap-chart"}
    assert charts["funnel-chart"].get("role") == "img"
    assert "Missed calls 15; Could be texted 10 (67% of missed)" in html
    assert "Mondays 9 AM–10 AM" in html  # busiest time, local
    assert "Many missed callers can&#39;t be texted" in html
    assert "Front desk busy" in html
    assert re.search(r"Glow Med Spa Westside</a></td>\s*<td>1</td>", html)
    assert "/staff/reports/calls.csv?since=2026-03-06&amp;until=2026-03-10" in html


def test_staff_see_only_their_location(service: Service) -> None:
    with_history(service)
    add_user(service, "amy@glow.example", role="staff", locations=["glow-westside"])
    amy = sign_in(service, "amy@glow.example")
    page = amy.get("/staff/dashboard", params=MARCH)
    assert page.status_code == 200
    kpis = re.findall(r'<span class="kpi-value">([^<]+)</span>', page.text)
    assert kpis[:5] == ["1", "1", "1", "1", "$450"]
    assert 'id="f-location"' not in page.text  # nothing to choose between
    assert "Glow Med Spa, " not in page.text
    other = amy.get("/staff/dashboard", params={"location": "glow-downtown", **MARCH})
    assert other.status_code == 404
    assert "location: no location &#39;glow-downtown&#39; you can see" in other.text
    assert 'class="kpi"' not in other.text


def test_filters_and_their_errors(service: Service) -> None:
    with_history(service)
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    one = owner.get("/staff/dashboard", params={"location": "glow-downtown", **MARCH})
    assert re.findall(r'<span class="kpi-value">([^<]+)</span>', one.text)[:5] == [
        "14", "7", "5", "3", "$1,579",
    ]  # fmt: skip
    assert '<option value="glow-downtown" selected>' in one.text
    bad = owner.get("/staff/dashboard", params={"since": "March"})
    assert bad.status_code == 400
    assert "since: expected a date like 2026-11-24, got &#39;March&#39;" in bad.text
    backwards = owner.get("/staff/dashboard", params={"since": "2026-03-10", "until": "2026-03-01"})
    assert backwards.status_code == 400
    # No range: the 30 days up to today (the test clock's), where nothing was missed.
    default = owner.get("/staff/dashboard")
    assert default.status_code == 200
    assert "Oct 26, 2026 – Nov 24, 2026" in default.text
    assert "No calls were missed in this period." in default.text


def test_staff_without_locations_are_told_why(service: Service) -> None:
    user_id = add_user(service, "new@glow.example", role="staff", locations=["glow-westside"])
    with transaction(service.runtime.deps.sessions) as session:
        user = session.get(StaffUser, user_id)
        assert user is not None
        user.location_ids = ["a-location-since-closed"]
    page = sign_in(service, "new@glow.example").get("/staff/dashboard")
    assert page.status_code == 403
    assert "not linked to any location" in page.text


def tables_that_scroll(page: Page) -> list[str]:
    """The dashboard's tables wider than their card (each would need a sideways scroll)."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('table')]
            .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
            .map(t => (t.closest('section')?.getAttribute('aria-labelledby') || '?')
                 + ': ' + t.scrollWidth + ' px in ' + t.parentElement.clientWidth)"""
    )
    return found


def on_a_phone(url: str, screenshot: Path | None) -> None:
    """Drive the dashboard in Chromium at phone size, then at a 1366 px laptop; fails on
    anything unreadable or a table that does not fit its card."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)", pytrace=False)
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="en-US",
            timezone_id="America/Los_Angeles",
        )
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "console",
            lambda message: errors.append(message.text) if message.type == "error" else None,
        )
        try:
            page.goto(url + "/staff/dashboard")
            page.fill("input[name=email]", "owner@glow.example")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url("**/staff/dashboard")
            assert page.locator("h1").inner_text() == "Recovery"
            for chart in ("funnel-chart", "trend-chart", "reasons-chart", "heatmap-chart"):
                box = page.locator(f"#{chart}").bounding_box()
                assert box is not None, chart
                assert box["width"] > 300, chart
            # Nothing wider than the phone: tables and the heatmap scroll inside their cards.
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
            assert tables_that_scroll(page) == []
            assert page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)") >= 16
            label = page.locator("#funnel-chart text").first.bounding_box()
            assert label is not None
            assert label["height"] >= 11  # chart labels stay legible at phone width
            page.select_option("#f-location", "glow-westside")
            page.click("form.dash-filter button[type=submit]")
            page.wait_for_url("**location=glow-westside**")
            assert "Glow Med Spa Westside" in page.locator(".dash-head").inner_text()
            page.goto(url + "/staff/dashboard")
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=True)
            assert errors == []
            laptop = browser.new_context(viewport={"width": 1366, "height": 768})
            wide = laptop.new_page()
            wide.goto(url + "/staff/dashboard")
            wide.fill("input[name=email]", "owner@glow.example")
            wide.fill("input[name=password]", PASSWORD)
            wide.click("button[type=submit]")
            wide.wait_for_url("**/staff/dashboard")
            assert wide.evaluate("document.documentElement.scrollWidth") <= 1366
            assert tables_that_scroll(wide) == []
            laptop.close()
        finally:
            context.close()
            browser.close()


@pytest.mark.slow
def test_dashboard_on_a_phone(service: Service) -> None:
    seed_history(
        service.runtime.deps.sessions,
        list(service.locations),
        calls=4_000,
        days=60,
        seed=11,
        end=date(2026, 11, 23),
    )
    add_user(service, "owner@glow.example")
    shot = SCREENSHOTS / "dashboard.png" if os.environ.get("RINGBACK_SCREENSHOTS") == "1" else None
    # Playwright's sync API runs one instance per thread, and the browser tests' session
    # fixture may hold this thread's: drive this browser from a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(on_a_phone, service.url, shot).result(timeout=180)
