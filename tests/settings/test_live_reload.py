"""A change saved in the database reaches running processes without a restart: the web
service (checked per request) and a worker in another runtime (checked per job)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ringback.config import load_locations
from ringback.db import transaction
from ringback.runtime import build_runtime
from ringback.settings import store
from tests.conftest import Service
from tests.settings.conftest import store_settings
from tests.support.phone import miss, next_text
from tests.twilio_payloads import caller_number

NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)


def change(service: Service, **values: object) -> None:
    """Another process saves a change (the settings pages, or ``config import``)."""
    with transaction(service.runtime.deps.sessions) as session:
        stored = store.read(session)
        assert stored is not None
        document = stored.document
        document["locations"][0].update(values)
        store.replace_all(session, document, actor="another process", now=NOW)


def test_a_worker_in_another_process_picks_up_a_change_at_its_next_job(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    store_settings(service)
    # A second runtime on the same database stands for `ringback worker`: its own locations.
    worker = build_runtime(service.runtime.settings, load_locations(service.config_path))
    try:
        assert worker.locations.get("glow-downtown").ring_seconds == 18  # type: ignore[union-attr]
        worker.jobs.deps_for_job()  # a job starts: the version is read once, settings loaded
        change(service, ring_seconds=31, name="Glow Downtown")
        deps = worker.jobs.deps_for_job()  # the next job sees the change
        downtown = deps.locations.get("glow-downtown")
        assert downtown is not None
        assert (downtown.ring_seconds, downtown.name) == (31, "Glow Downtown")
        assert worker.settings_watcher is not None
        assert not worker.settings_watcher.refresh()  # nothing new: one cheap read only
    finally:
        worker.close()


def test_the_web_service_picks_up_a_change_at_its_next_request(
    make_service: Callable[..., Service],
) -> None:
    service = make_service()
    store_settings(service)
    change(
        service,
        messages={"textback": "Hello from {location}, we missed you! Which treatment?"},
    )
    caller = caller_number(77)
    miss(service, caller)  # the webhook request sees the new wording, so does the job
    assert next_text(service, caller, 1).startswith("Hello from Glow Med Spa, we missed you!")


def test_a_process_whose_settings_were_never_stored_is_left_alone(service: Service) -> None:
    watcher = service.runtime.settings_watcher
    assert watcher is not None
    assert not watcher.refresh()
    assert service.runtime.deps.locations.get("glow-downtown") is not None
