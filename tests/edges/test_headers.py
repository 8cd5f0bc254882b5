"""Every page and API answer carries the security headers; anything but /static is
no-store; and the templates hold no inline script or style for the CSP to refuse."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from ringback.guards import CONTENT_SECURITY_POLICY
from tests.conftest import REPO, Service
from tests.staff.conftest import add_user, sign_in
from tests.twilio_payloads import payload

TEMPLATES = REPO / "src" / "ringback" / "templates"


def assert_guarded(
    response: httpx.Response, *, cacheable: bool = False, referrer: str = "same-origin"
) -> None:
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert "'unsafe-eval'" not in csp
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == referrer
    if cacheable:
        assert "no-store" not in headers.get("Cache-Control", "")
    else:
        assert headers["Cache-Control"] == "no-store"


def test_staff_pages_the_api_and_errors_carry_the_headers(service: Service) -> None:
    add_user(service, "owner@glow.example")
    client = sign_in(service, "owner@glow.example")
    for path in ("/staff", "/staff/patients", "/staff/dashboard", "/api/v1/conversations"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_guarded(response)
    # Not signed in, not found, refused: the same headers.
    for response in (
        service.http.get(service.url + "/staff/login"),
        service.http.get(service.url + "/staff", follow_redirects=False),
        service.http.get(service.url + "/api/v1/conversations"),
        service.http.get(service.url + "/no/such/page"),
        service.http.get(service.url + "/healthz"),
        service.post("/twilio/sms", payload("sms_inbound"), signed=False),
        service.http.post(service.url + "/twilio/sms", files={"f": ("a", b"b", "x/y")}),
    ):
        assert_guarded(response)


def test_booking_pages_are_not_stored(service: Service) -> None:
    # An unknown or expired link is still a booking page: never cached.
    response = service.http.get(service.url + "/book/not-a-real-token")
    assert response.status_code in (404, 410)
    # The link must not leave in a Referer header: the page's own stricter policy stays.
    assert_guarded(response, referrer="no-referrer")


def test_static_files_may_be_cached(service: Service) -> None:
    response = service.http.get(service.url + "/static/staff.css")
    assert response.status_code == 200
    assert_guarded(response, cacheable=True)


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")), ids=lambda p: p.name)
def test_templates_have_no_inline_script_or_style(template: Path) -> None:
    text = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), "inline <script>"
    assert "<style" not in text
    assert not re.search(r"\sstyle=", text), "style attribute"
    assert not re.search(r"\son[a-z]+=", text), "inline event handler"
