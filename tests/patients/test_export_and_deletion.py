"""Export and deletion on request, on records made the real way (signed webhooks, the
queue, the worker): deletion erases the person and keeps the counts; a deleted number
that calls again is a new caller, unless they had opted out."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from ringback.models import (
    Appointment,
    Call,
    Conversation,
    Message,
    Note,
    Patient,
    ProviderEvent,
    SuppressedNumber,
)
from ringback.patients import service as patients
from ringback.patients.erasure import AlreadyDeleted, PatientNotFound, delete_patient
from ringback.patients.export import EXPORT_COLUMNS, csv_lines, export_patients
from ringback.patients.record import patient_record
from tests.conftest import Service, settle, wait_for
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number, payload


def counts(service: Service) -> dict[str, int]:
    return {
        model.__name__: service.scalar(select(func.count()).select_from(model))
        for model in (Call, Conversation, Message, Appointment, Patient)
    }


def patient_id(service: Service, phone: str) -> int:
    return int(service.scalar(select(Patient.id).where(Patient.phone == phone)))


def talk(service: Service, caller: str, words: str) -> int:
    """A missed call, the text-back, the patient's reply and the bot's answer."""
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, words)
    next_text(service, caller, 2)
    return patient_id(service, caller)


def export(service: Service) -> list[dict[str, str]]:
    with service.db() as session:
        text = "".join(
            csv_lines(export_patients(session, ["glow-downtown"], service.clock()), EXPORT_COLUMNS)
        )
    return list(csv.DictReader(io.StringIO(text)))


def test_deletion_erases_the_person_and_keeps_the_counts(service: Service) -> None:
    caller, other = caller_number(401), caller_number(402)
    pid = talk(service, caller, "bottox pls, my name is Zelda Quixote")
    talk(service, other, "filler")
    textback = texts_to(service, caller)[0]
    receipt = service.post(
        "/twilio/sms/status",
        payload("sms_status_delivered", MessageSid=textback.sid, SmsSid=textback.sid, To=caller),
    )
    assert receipt.status_code in (200, 204), receipt.text
    wait_for(
        lambda: (
            service.scalar(select(Message.status).where(Message.provider_sid == textback.sid))
            == "delivered"
        ),
        what="the receipt",
    )
    now = service.clock()
    with service.db() as session:
        patient = session.get(Patient, pid)
        assert patient is not None
        patient.first_name, patient.last_name, patient.external_id = "Zelda", "Quixote", "EXT-9"
        conversation_id = session.scalar(
            select(Conversation.id).where(Conversation.patient_id == pid)
        )
        session.add(Note(patient_id=pid, conversation_id=conversation_id, body="Zelda prefers AM"))
        session.add(
            Appointment(
                location_id="glow-downtown",
                patient_id=pid,
                service="Botox",
                starts_at=datetime(2026, 12, 1, 18, tzinfo=UTC),
                ends_at=datetime(2026, 12, 1, 18, 30, tzinfo=UTC),
                external_id="EXT-APPT-1",
                value_cents=48000,
            )
        )
        session.commit()
    assert {row["phone"] for row in export(service)} == {caller, other}
    before = counts(service)

    with service.db() as session:
        report = delete_patient(session, pid, now)
        session.commit()
    assert (report.messages, report.notes, report.calls, report.appointments) == (3, 1, 1, 1)
    assert report.conversations_closed == 1
    assert report.events == 4  # the call's two webhooks, the text, the receipt
    assert not report.opt_out_kept

    assert counts(service) == before
    with service.db() as session:
        gone = session.get(Patient, pid)
        assert gone is not None
        assert (gone.phone, gone.first_name, gone.last_name, gone.external_id) == (
            f"deleted:{pid}",
            None,
            None,
            None,
        )
        assert gone.deleted_at is not None
        messages = session.scalars(select(Message).where(Message.patient_id == pid)).all()
        assert {m.body for m in messages} == {"[deleted]"}
        assert caller not in {m.from_number for m in messages} | {m.to_number for m in messages}
        call = session.scalars(select(Call).where(Call.patient_id == pid)).one()
        assert (call.from_raw, call.from_number, call.miss_reason) == (
            f"deleted:{pid}",
            f"deleted:{pid}",
            "no_answer",
        )
        conversation = session.scalars(
            select(Conversation).where(Conversation.patient_id == pid)
        ).one()
        assert (conversation.is_open, conversation.close_reason, conversation.treatment) == (
            False,
            "deleted",
            "Botox",
        )
        assert session.scalar(select(func.count()).select_from(Note)) == 0
        appointment = session.scalars(select(Appointment)).one()
        assert (appointment.external_id, appointment.value_cents) == (None, 48000)
        payloads = json.dumps([e.payload for e in session.scalars(select(ProviderEvent))])
        assert caller not in payloads
        assert "Zelda" not in payloads
        assert "bottox" not in payloads
        assert other in payloads  # the other patient's events are untouched
        assert patient_record(session, pid) is None
        assert session.scalar(select(func.count()).select_from(SuppressedNumber)) == 0
    assert [row["phone"] for row in export(service)] == [other]

    # They call again: a new, unknown caller with a fresh record and a fresh text-back.
    miss(service, caller)
    wait_for(lambda: len(texts_to(service, caller)) == 3, what="a new text-back")
    fresh = service.scalar(select(Patient).where(Patient.phone == caller))
    assert fresh.id != pid
    assert (fresh.status, fresh.opted_out_at, fresh.deleted_at) == (None, None, None)
    call = service.scalar(select(Call).order_by(Call.id.desc()))
    assert (call.patient_id, call.screening) == (fresh.id, "texted")


def test_an_opt_out_outlives_the_deletion(service: Service) -> None:
    caller = caller_number(403)
    miss(service, caller)
    next_text(service, caller, 1)
    text_in(service, caller, "STOP")
    wait_for(
        lambda: service.scalar(select(Patient.opted_out_at).where(Patient.phone == caller)),
        what="the opt-out",
    )
    pid = patient_id(service, caller)
    with service.db() as session:
        report = delete_patient(session, pid, service.clock())
        session.commit()
        kept = session.scalars(select(SuppressedNumber)).one()
    assert report.opt_out_kept
    assert kept.number_hash == patients.number_hash("glow-downtown", caller)
    assert caller[1:] not in kept.number_hash

    second = miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == second)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == second)) == "opted_out"
    fresh = service.scalar(select(Patient).where(Patient.phone == caller))
    assert fresh.id != pid
    assert fresh.opt_out_source == patients.KEPT_OPT_OUT
    settle()
    # The first text-back and the STOP confirmation only.
    assert [t.body.startswith("You're unsubscribed") for t in texts_to(service, caller)] == [
        False,
        True,
    ]


def test_stop_texts_suppresses_a_number_that_never_opted_out(service: Service) -> None:
    caller = caller_number(404)
    with service.db() as session:
        pid = patients.get_or_create(session, "glow-downtown", caller, service.clock()).id
        delete_patient(session, pid, service.clock(), stop_texts=True)
        session.commit()
    with service.db() as session:
        again = patients.get_or_create(session, "glow-downtown", caller, service.clock())
        assert again.id != pid
        assert patients.why_not_textable(again) == "opted_out"
        # At another location the number is a stranger: the hash includes the location.
        elsewhere = patients.get_or_create(session, "glow-westside", caller, service.clock())
        assert patients.why_not_textable(elsewhere) is None
        # Opted back in, then deleted again: nothing is kept any more.
        patients.opt_in(again, service.clock())
        delete_patient(session, again.id, service.clock())
        third = patients.get_or_create(session, "glow-downtown", caller, service.clock())
        assert patients.why_not_textable(third) is None
        session.commit()


def test_deleting_twice_or_nobody_is_refused(service: Service) -> None:
    with service.db() as session:
        pid = patients.get_or_create(
            session, "glow-downtown", caller_number(405), service.clock()
        ).id
        delete_patient(session, pid, service.clock())
        with pytest.raises(AlreadyDeleted, match=rf"patient {pid}: already deleted on 2026-11-24"):
            delete_patient(session, pid, service.clock())
        with pytest.raises(PatientNotFound, match=r"patient 999999: not found"):
            delete_patient(session, 999_999, service.clock())


def test_export_has_one_row_per_patient_with_counts_and_safe_cells(service: Service) -> None:
    caller = caller_number(406)
    pid = talk(service, caller, "botox")
    with service.db() as session:
        patient = session.get(Patient, pid)
        assert patient is not None
        patient.first_name = '=HYPERLINK("http://evil.example")'
        session.add(
            Appointment(
                location_id="glow-downtown",
                patient_id=pid,
                service="Botox",
                starts_at=datetime(2026, 11, 26, 18, tzinfo=UTC),
                ends_at=datetime(2026, 11, 26, 18, 30, tzinfo=UTC),
            )
        )
        session.add(Patient(location_id="glow-westside", phone=caller_number(407)))
        session.commit()
    (row,) = export(service)
    assert list(row) == list(EXPORT_COLUMNS)
    assert row["phone"] == caller
    assert row["first_name"] == '\'=HYPERLINK("http://evil.example")'
    assert (row["calls"], row["conversations"], row["appointments"]) == ("1", "1", "1")
    assert row["next_appointment_at"] == "2026-11-26T18:00:00+00:00"
    assert row["last_call_at"].startswith("2026-11-24T18:")
    assert row["not_textable_reason"] == ""
