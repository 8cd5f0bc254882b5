"""Nothing lost while the database is unavailable: webhooks are spooled and answered as
usual, and every caller answered 200 is texted exactly once when the database is back.

PostgreSQL is cut through a TCP proxy the test starts (connections refused, or every byte
held); SQLite is held by a long writer (``BEGIN IMMEDIATE`` on another connection).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from ringback.fakes.tcp_proxy import TcpProxy
from ringback.inbox.spool import Spool, SpooledEvent, store_batch
from ringback.models import ProviderEvent
from tests.conftest import DATABASE, Service, settle, wait_for
from tests.support.phone import FRONT_DESK_TO, texts_to
from tests.support.workers import worker_process
from tests.twilio_payloads import caller_number, new_call_sid, payload

BUDGET = "0.5"  # seconds a webhook waits for the database before it spools


@pytest.fixture
def proxy() -> Iterator[TcpProxy | None]:
    if DATABASE != "postgres":
        yield None
        return
    with TcpProxy("127.0.0.1", 5432) as server:
        yield server


@pytest.fixture
def database_url(database_url: str, proxy: TcpProxy | None) -> str:
    # On PostgreSQL the service reaches the database only through the test's proxy.
    if proxy is None:
        return database_url
    url = make_url(database_url)
    return url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)


@pytest.fixture
def outage(database_url: str, proxy: TcpProxy | None) -> Callable[..., Any]:
    """``with outage():`` the database is unavailable for the block."""

    @contextmanager
    def cut(mode: str = "refuse") -> Iterator[None]:
        if proxy is not None:
            proxy.pause() if mode == "pause" else proxy.refuse()
            try:
                yield
            finally:
                proxy.restore()
            return
        writer = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")  # a long import, say
        try:
            yield
        finally:
            writer.execute("ROLLBACK")
            writer.close()

    return cut


def missed(service: Service, caller: str) -> tuple[int, str]:
    params = payload(
        "dial_result_no_answer",
        CallSid=new_call_sid(),
        From=caller,
        To=FRONT_DESK_TO,
        DialCallStatus="no-answer",
    )
    response = service.post("/twilio/voice/dial-result", params)
    return response.status_code, response.text


def start(make_service: Callable[..., Service], **overrides: Any) -> Service:
    return make_service(
        sweeper=True, settings_overrides={"RINGBACK_STORE_BUDGET": BUDGET, **overrides}
    )


@pytest.mark.parametrize(
    "mode",
    [
        "refuse",
        pytest.param(
            "pause",
            marks=pytest.mark.skipif(
                DATABASE != "postgres", reason="a network pause is PostgreSQL's"
            ),
        ),
    ],
)
def test_every_caller_answered_during_an_outage_is_texted_once(
    make_service: Callable[..., Service], outage: Callable[..., Any], mode: str
) -> None:
    service = start(make_service)
    first = caller_number(7000)
    status, usual = missed(service, first)
    assert status == 200
    wait_for(lambda: texts_to(service, first), what="the text-back before the outage")

    callers = [caller_number(7001 + i) for i in range(40)]
    answers: dict[str, tuple[int, str]] = {}
    cut_at, back_at = threading.Event(), threading.Event()

    def load() -> None:
        # About 20 calls a second from 8 callers at once, the outage in the middle.
        with ThreadPoolExecutor(8) as pool:
            for index, caller in enumerate(callers):
                if index == 10:
                    cut_at.set()
                if index == 30:
                    back_at.wait(10)
                pool.submit(lambda c=caller: answers.__setitem__(c, missed(service, c)))
                time.sleep(0.05)

    sender = threading.Thread(target=load)
    sender.start()
    cut_at.wait(10)
    with outage(mode):
        time.sleep(1.5)
        health = service.http.get(service.url + "/healthz")
        assert health.status_code == 503
        assert health.json()["spool"]["depth"] >= 1
    back_at.set()
    sender.join(30)

    assert answers == {caller: (200, usual) for caller in callers}
    wait_for(
        lambda: all(texts_to(service, caller) for caller in callers),
        timeout=30,
        what="a text for every caller answered during the outage",
    )
    settle(1.0)
    assert {caller: len(texts_to(service, caller)) for caller in callers} == {
        caller: 1 for caller in callers
    }
    assert len(texts_to(service, first)) == 1
    health = wait_for(
        lambda: (
            (r := service.http.get(service.url + "/healthz")).status_code == 200
            and r.json()["spool"]["depth"] == 0
            and r
        ),
        what="an empty spool",
    )
    assert health.json()["spool"] == {"depth": 0, "oldest_age_seconds": None}
    metrics = service.http.get(service.url + "/metrics").text
    assert "ringback_spool_depth 0.0" in metrics


def test_a_full_spool_refuses_with_503_and_keeps_what_it_took(
    make_service: Callable[..., Service], outage: Callable[..., Any]
) -> None:
    # Room for two or three dial results (about 560 bytes each, framed).
    service = start(make_service, RINGBACK_SPOOL_MAX_MB=1500 / (1024 * 1024))
    callers = [caller_number(7100 + i) for i in range(6)]
    with outage():
        answers = [missed(service, caller) for caller in callers]
        metrics = service.http.get(service.url + "/metrics").text
    taken = [caller for caller, (status, _) in zip(callers, answers, strict=True) if status == 200]
    refused = [answer for answer in answers if answer[0] != 200]
    assert 1 <= len(taken) < len(callers)
    assert all(status == 503 for status, _ in refused)
    assert all("<Say>Sorry, we cannot take your call" in body for _, body in refused)
    assert "spool" in refused[0][1]
    assert f"ringback_spool_depth {float(len(taken))}" in metrics
    wait_for(lambda: all(texts_to(service, caller) for caller in taken), timeout=20)
    settle(1.0)
    assert sum(len(texts_to(service, caller)) for caller in callers) == len(taken)


def test_a_drain_that_crashed_between_store_and_delete_sends_nothing_twice(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    service = start(make_service)
    deps = service.runtime.deps
    # A web process that died with two spooled calls, and a drainer that died after
    # storing them but before deleting the segment.
    directory = tmp_path / "dead-spool"
    dead = Spool(directory, 1 << 20)
    callers = [caller_number(7200), caller_number(7201)]
    for caller in callers:
        data = payload(
            "dial_result_no_answer", CallSid=new_call_sid(), From=caller, To=FRONT_DESK_TO
        )
        dead.append(SpooledEvent("twilio", "dial_result", "glow-downtown", data, deps.clock()))
    dead.close()

    def store_then_crash(batch: list[SpooledEvent]) -> None:
        store_batch(deps, deps.sessions, batch)
        raise SystemError("the drainer died before deleting the segment")

    with pytest.raises(SystemError):
        Spool(directory, 1 << 20).drain(store_then_crash)
    wait_for(lambda: all(texts_to(service, caller) for caller in callers))
    assert Spool(directory, 1 << 20).drain(lambda b: store_batch(deps, deps.sessions, b)) == 2
    settle(1.0)
    assert [len(texts_to(service, caller)) for caller in callers] == [1, 1]
    assert service.scalar(select(func.count(ProviderEvent.id))) == 2


def test_a_worker_drains_the_spool_a_dead_web_process_left(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    # The web process here neither drains (no spool of its own) nor runs jobs.
    service = make_service(run_worker=False, settings_overrides={"RINGBACK_SPOOL_MAX_MB": 0})
    caller = caller_number(7300)
    dead = Spool(tmp_path / "spool", 1 << 20)
    data = payload("dial_result_no_answer", CallSid=new_call_sid(), From=caller, To=FRONT_DESK_TO)
    clock = service.runtime.deps.clock
    dead.append(SpooledEvent("twilio", "dial_result", "glow-downtown", data, clock()))
    dead.close()
    worker = worker_process(service)
    try:
        wait_for(lambda: texts_to(service, caller), timeout=30, what="the worker's drain")
        wait_for(lambda: not list((tmp_path / "spool").glob("*.spool")), what="the file gone")
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    assert len(texts_to(service, caller)) == 1
