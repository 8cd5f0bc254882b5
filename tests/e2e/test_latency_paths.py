"""The text-back's fast path: the event handler claims the text in its own transaction and
sends it itself, with no second job, and still sends every text exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ringback.models import Call, Conversation, Message, ProviderEvent
from ringback.ports import OutboundSms, SentSms
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.phone import FRONT_DESK_TO, miss, texts_to
from tests.twilio_payloads import caller_number, new_call_sid, payload


def test_text_back_is_claimed_with_the_decision_and_sent_by_the_handler(
    service: Service,
) -> None:
    caller = caller_number(70)
    call_sid = miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="the text-back")
    message = wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid.is_not(None))),
        what="the send recorded",
    )
    handled_at = service.scalar(
        select(ProviderEvent.handled_at).where(
            ProviderEvent.kind == "dial_result", ProviderEvent.external_id == call_sid
        )
    )
    assert message.kind == "textback"
    assert message.attempts == 1
    assert message.claimed_at is not None
    assert message.claimed_at <= handled_at
    assert message.provider_sid == texts_to(service, caller)[0].sid
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert (call.outcome, call.screening) == ("missed", "texted")
    assert call.conversation_id == message.conversation_id
    conversation = service.scalar(select(Conversation))
    assert conversation.is_open
    assert conversation.last_outbound_at is not None


def test_a_burst_of_misses_and_duplicates_texts_each_caller_once_while_sweeps_run(
    service: Service,
) -> None:
    callers = [caller_number(100 + i) for i in range(24)]
    requests: list[dict[str, str]] = []
    for caller in callers:
        params = payload(
            "dial_result_no_answer",
            CallSid=new_call_sid(),
            From=caller,
            To=FRONT_DESK_TO,
            DialCallStatus="no-answer",
        )
        requests += [params, params]  # Twilio retried every webhook once

    def post(params: dict[str, str]) -> int:
        return service.post("/twilio/voice/dial-result", params).status_code

    def sweep(_: int) -> dict[str, int]:
        return run_sweep(service.runtime.deps)

    with ThreadPoolExecutor(max_workers=12) as pool:
        sweeps = pool.map(sweep, range(6))
        statuses = list(pool.map(post, requests))
        sweep_counts = list(sweeps)
    assert set(statuses) == {200}
    wait_for(
        lambda: all(texts_to(service, caller) for caller in callers),
        timeout=30,
        what="a text-back for every caller",
    )
    settle(1.0)
    assert [len(texts_to(service, caller)) for caller in callers] == [1] * len(callers)
    # Nothing was due or unsettled for a sweep to send again, then or now (sweeps that
    # found another one running skipped: one at a time).
    assert all(c.get("due", 0) == 0 and c.get("stuck", 0) == 0 for c in sweep_counts)
    service.clock.advance(timedelta(minutes=5))
    counts = run_sweep(service.runtime.deps)
    assert (counts["due"], counts["stuck"]) == (0, 0)
    statuses_now = service.rows(select(Message.status))
    assert len(statuses_now) == len(callers)
    assert set(statuses_now) <= {"queued", "sent", "delivered"}


def test_a_claimed_text_the_handler_failed_to_send_is_reconciled_then_sent_once(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    sender: Any = service.runtime.deps.sms
    real_send = sender.send
    failures: list[OutboundSms] = []

    def crash_once(sms: OutboundSms) -> SentSms:
        if not failures:
            failures.append(sms)
            raise ConnectionResetError("the process died mid-send, as far as we know")
        return real_send(sms)  # type: ignore[no-any-return]

    monkeypatch.setattr(sender, "send", crash_once)
    caller = caller_number(71)
    miss(service, caller)
    wait_for(lambda: failures, what="the inline send to fail")
    message = wait_for(lambda: service.scalar(select(Message)), what="the text's row")
    assert message.status == "sending"  # claimed, outcome unknown: never simply resent
    # The reconcile (scheduled by the handler, or found by a later sweep) asks the
    # provider, finds nothing sent, and sends it once.
    service.clock.advance(timedelta(minutes=5))
    run_sweep(service.runtime.deps)
    wait_for(lambda: texts_to(service, caller), timeout=20, what="the text after reconcile")
    settle(1.0)
    assert len(texts_to(service, caller)) == 1
    sent = service.scalar(select(Message))
    assert sent.provider_sid == texts_to(service, caller)[0].sid
    assert sent.attempts == 2
