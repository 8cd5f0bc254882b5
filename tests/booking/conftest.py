"""Fixtures for scheduling tests: a real Radicale CalDAV server (see :mod:`radicale_server`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.booking.radicale_server import RadicaleCalendar, RadicaleServer


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RadicaleServer]:
    """One Radicale for the session; stopped at the end, also when tests failed."""
    server = RadicaleServer(tmp_path_factory.mktemp("radicale"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def radicale(radicale_server: RadicaleServer) -> RadicaleCalendar:
    """A fresh, empty calendar collection on the session's Radicale."""
    return radicale_server.new_calendar()
