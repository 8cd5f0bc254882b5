"""A service whose settings live in the database (as after ``ringback init``), and the
owner signed in to change them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from ringback.db import transaction
from ringback.settings import store
from tests.conftest import Service
from tests.staff.conftest import add_user, sign_in


def store_settings(service: Service, *, managed_by: str | None = None) -> int:
    """Put the service's locations in the database, as the settings pages keep them."""
    with transaction(service.runtime.deps.sessions) as session:
        stored = store.replace_all(
            session,
            store.document_of(service.locations),
            actor="test setup",
            now=datetime(2026, 11, 24, 18, 0, tzinfo=UTC),
            managed_by=managed_by,
        )
    assert service.runtime.settings_watcher is not None
    service.runtime.settings_watcher.refresh()
    return stored.version


@pytest.fixture
def db_service(make_service: Callable[..., Service]) -> Service:
    service = make_service()
    store_settings(service)
    return service


@pytest.fixture
def owner(db_service: Service) -> httpx.Client:
    add_user(db_service, "owner@glow.example")
    return sign_in(db_service, "owner@glow.example")
