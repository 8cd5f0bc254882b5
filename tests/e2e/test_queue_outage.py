"""A queue that is down never turns a stored webhook into an error: Twilio hears the usual
TwiML, and every caller is texted once, soon after the queue is back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from tests.conftest import Service, settle, wait_for
from tests.support.phone import FRONT_DESK_TO, texts_to
from tests.support.recovery import PrivateRedis, private_redis
from tests.twilio_payloads import caller_number, new_call_sid, payload

CALLERS = 20
DRAIN_TARGET_SECONDS = 15.0


@pytest.fixture
def redis() -> Iterator[PrivateRedis]:
    with private_redis() as server:
        yield server


@pytest.fixture
def queue_url(redis: PrivateRedis) -> str:
    # This test's own Redis, whatever RINGBACK_TEST_QUEUE says: it stops it.
    return redis.url


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


def test_webhooks_answer_while_redis_is_down_and_texts_follow_when_it_is_back(
    make_service: Callable[..., Service], redis: PrivateRedis
) -> None:
    service = make_service(now=datetime.now(UTC), sweeper=True)
    first = caller_number(4000)
    status, usual_answer = missed(service, first)
    assert status == 200
    wait_for(lambda: texts_to(service, first), what="the text-back before the outage")

    redis.stop()
    callers = [caller_number(4001 + i) for i in range(CALLERS)]
    answers = [missed(service, caller) for caller in callers]
    assert answers == [(200, usual_answer)] * CALLERS
    time.sleep(2)  # the outage goes on a little
    redis.start()
    back = time.monotonic()

    wait_for(
        lambda: all(texts_to(service, caller) for caller in callers),
        timeout=DRAIN_TARGET_SECONDS + 5,
        what="a text for every caller once Redis is back",
    )
    drained = time.monotonic() - back
    settle(1.0)
    assert [len(texts_to(service, caller)) for caller in callers] == [1] * CALLERS
    assert len(texts_to(service, first)) == 1
    print(f"queue outage: {CALLERS} texts, all sent {drained:.1f} s after Redis was back")
    assert drained < DRAIN_TARGET_SECONDS
