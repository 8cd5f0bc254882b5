"""Sending is durable: retried with backoff on 429/5xx/timeouts, permanent errors acted on,
and nothing lost or sent twice when a worker dies mid-send."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from ringback.models import Message, Patient
from ringback.runtime import run_sweep
from tests.conftest import Service, settle, wait_for
from tests.support.phone import miss, texts_to
from tests.twilio_payloads import caller_number


def outbox(service: Service) -> Message:
    return wait_for(
        lambda: service.scalar(select(Message).where(Message.direction == "outbound")),
        what="outbox row",
    )


def seed_outbox_row(
    service: Service,
    caller: str,
    *,
    status: str,
    attempts: int,
    at: datetime,
    claimed_at: datetime | None = None,
) -> None:
    """An outbox row as a worker would have left it (claimed, or queued and then lost)."""
    now = service.clock()
    with service.db() as session:
        patient = Patient(location_id="glow-downtown", phone=caller, created_at=now, updated_at=now)
        session.add(patient)
        session.flush()
        session.add(
            Message(
                location_id="glow-downtown",
                patient_id=patient.id,
                direction="outbound",
                kind="textback",
                from_number="+13105550100",
                to_number=caller,
                body=f"Hi there {caller[-2:]}",
                idempotency_key=f"textback:seed:{caller}",
                status=status,
                attempts=attempts,
                created_at=at,
                send_after=at,
                claimed_at=claimed_at,
            )
        )
        session.commit()


def test_server_errors_are_retried_until_sent(service: Service) -> None:
    service.twilio.fail_next(2, status=500, code=20500)
    caller = caller_number(40)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), timeout=15, what="text-back after retries")
    message = outbox(service)
    wait_for(lambda: service.scalar(select(Message.attempts)) == 3, what="three attempts recorded")
    settle()
    assert len(texts_to(service, caller)) == 1
    assert message.kind == "textback"


def test_rate_limit_is_retried(service: Service) -> None:
    service.twilio.rate_limit_next(1, retry_after_seconds=1)
    caller = caller_number(41)
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), timeout=15, what="text-back after 429")
    assert len(texts_to(service, caller)) == 1


def test_21610_marks_the_caller_opted_out(service: Service) -> None:
    caller = caller_number(42)
    service.twilio.fail_for(caller, code=21610)
    miss(service, caller)
    wait_for(lambda: service.scalar(select(Message.status)) == "failed", what="failed send")
    message = outbox(service)
    assert message.error_code == 21610
    patient = service.scalar(select(Patient).where(Patient.phone == caller))
    assert patient.opted_out
    assert patient.opt_out_source == "carrier"


def test_21211_and_21614_mark_the_number_not_textable(service: Service) -> None:
    for index, code in enumerate((21211, 21614)):
        caller = caller_number(43 + index)
        service.twilio.fail_for(caller, code=code)
        miss(service, caller)
        wait_for(
            lambda c=caller: (
                (p := service.scalar(select(Patient).where(Patient.phone == c)))
                and p.not_textable_reason
            ),
            what=f"{code} recorded",
        )
        patient = service.scalar(select(Patient).where(Patient.phone == caller))
        assert patient.not_textable_reason == f"twilio_{code}"
        assert not patient.opted_out


def test_timeout_after_twilio_accepted_is_reconciled_not_resent(service: Service) -> None:
    # Twilio takes the message, but the answer never reaches our worker (timeout).
    service.twilio.hang_after_accepting(1, seconds=5)
    caller = caller_number(46)
    miss(service, caller)
    message = wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid.is_not(None))),
        timeout=20,
        what="send reconciled from Twilio's message list",
    )
    assert message.status in ("queued", "sent", "delivered")
    settle(1.0)
    assert len(texts_to(service, caller)) == 1


def test_sweep_resends_what_a_dead_worker_claimed_but_never_sent(service: Service) -> None:
    # A worker claimed this text (pending -> sending) and died before calling Twilio.
    caller = caller_number(47)
    five_minutes_ago = service.clock() - timedelta(minutes=5)
    seed_outbox_row(
        service,
        caller,
        status="sending",
        attempts=1,
        at=five_minutes_ago,
        claimed_at=five_minutes_ago,
    )
    counts = run_sweep(service.runtime.deps)
    assert counts["stuck"] == 1
    wait_for(lambda: texts_to(service, caller), timeout=15, what="resent after the sweep")
    wait_for(lambda: service.scalar(select(Message.provider_sid)), what="sid recorded")
    settle()
    assert len(texts_to(service, caller)) == 1
    # Sweeping again finds nothing left to do and sends nothing more.
    assert run_sweep(service.runtime.deps) == {"due": 0, "stuck": 0, "events": 0, "timers": 0}
    settle(0.3)
    assert len(texts_to(service, caller)) == 1


def test_sweep_redrives_a_due_text_whose_job_was_lost(service: Service) -> None:
    caller = caller_number(48)
    seed_outbox_row(
        service, caller, status="pending", attempts=0, at=service.clock() - timedelta(minutes=2)
    )
    assert run_sweep(service.runtime.deps)["due"] == 1
    wait_for(lambda: texts_to(service, caller), timeout=15, what="sent after the sweep")
    settle()
    assert len(texts_to(service, caller)) == 1
