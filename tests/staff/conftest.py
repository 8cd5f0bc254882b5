"""Staff accounts for tests: created through the same domain code the CLI uses."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from ringback.db import transaction
from ringback.staff import auth
from tests.conftest import Service

PASSWORD = "correct horse battery staple"


def add_user(
    service: Service,
    email: str,
    *,
    role: str = "owner",
    locations: list[str] | None = None,
    password: str = PASSWORD,
) -> int:
    with transaction(service.runtime.deps.sessions) as session:
        user = auth.create_user(
            session,
            email=email,
            name=email.split("@")[0].title(),
            role=role,
            password=password,
            location_ids=locations or [],
            known_locations={loc.id for loc in service.locations},
            now=datetime.now(UTC),
        )
        return user.id


def login_form(client: httpx.Client, service: Service) -> str:
    page = client.get(service.url + "/staff/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(service: Service, email: str, password: str = PASSWORD) -> httpx.Client:
    """A browser-like client (cookies kept) signed in as ``email``."""
    client = httpx.Client(base_url=service.url, follow_redirects=False, timeout=10)
    csrf = login_form(client, service)
    response = client.post(
        "/staff/login", data={"email": email, "password": password, "csrf_token": csrf}
    )
    assert response.status_code == 303, response.text
    return client


def page_csrf(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text) or re.search(
        r'name="csrf-token" content="([^"]+)"', page.text
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def staff_client(service: Service) -> Callable[..., httpx.Client]:
    def make(
        email: str = "owner@glow.example", role: str = "owner", locations: list[str] | None = None
    ) -> httpx.Client:
        add_user(service, email, role=role, locations=locations)
        return sign_in(service, email)

    return make
