"""What an import changes for callers, end to end: signed webhooks over HTTP, the real
queue and database. An imported upcoming appointment gets the appointment text-back; an
imported patient is never asked whether they are new."""

from __future__ import annotations

from sqlalchemy import select

from ringback.models import Call, Patient
from ringback.patients.importing import (
    ColumnMapping,
    import_appointments,
    import_patients,
    read_csv,
)
from tests.conftest import Service, wait_for
from tests.patients.conftest import csv_text
from tests.support.phone import miss, next_text, text_in, texts_to
from tests.twilio_payloads import caller_number


def _import(service: Service, text: str, kind: str, preset: str = "generic") -> None:
    location = service.locations.get("glow-downtown")
    assert location is not None
    table = read_csv(text)
    with service.db() as session:
        if kind == "patients":
            report = import_patients(
                session,
                location,
                table.rows,
                ColumnMapping.preset("patients", preset),
                service.clock(),
            )
        else:
            report = import_appointments(
                session,
                location,
                table.rows,
                ColumnMapping.preset("appointments", preset),
                service.clock(),
            )
        session.commit()
    assert report.skipped == 0, report.problems


def test_imported_appointment_in_48h_gets_the_appointment_text_back(service: Service) -> None:
    caller = caller_number(301)
    # The service's clock is Tuesday Nov 24 2026, 10:00 in Los Angeles.
    _import(
        service,
        csv_text(
            "Date,Start Time,Client,Mobile Phone,Appointment Type,Appointment ID",
            f"11/25/2026,12:00 PM,Ana Lopez,{caller[2:]},Botox,MB-1",
        ),
        "appointments",
        preset="mindbody",
    )
    miss(service, caller)
    text = wait_for(lambda: texts_to(service, caller), what="text-back")[0]
    assert "Are you calling about your appointment on Wed Nov 25 at 12:00pm?" in text.body
    call = service.scalar(select(Call).order_by(Call.id.desc()))
    assert call.screening == "appointment_textback"


def test_imported_cancelled_or_distant_appointment_gets_the_usual_text_back(
    service: Service,
) -> None:
    cancelled, distant = caller_number(302), caller_number(303)
    _import(
        service,
        csv_text(
            "phone,start,service,status",
            f"{cancelled},2026-11-25 12:00,Botox,cancelled",
            f"{distant},2026-12-15 12:00,Botox,booked",
        ),
        "appointments",
    )
    for caller in (cancelled, distant):
        miss(service, caller)
        text = next_text(service, caller, 1)
        assert "What treatment were you calling about?" in text


def test_imported_patient_is_recognised_as_returning(service: Service) -> None:
    caller = caller_number(304)
    _import(service, csv_text("phone,first_name", f"{caller},Ana"), "patients")
    miss(service, caller)
    assert "What treatment" in next_text(service, caller, 1)
    text_in(service, caller, "bottox pls")
    next_text(service, caller, 2)
    text_in(service, caller, "thursday morning")
    # A new caller is asked "is this your first time?" here; a known patient is not.
    link = next_text(service, caller, 3)
    assert "first time" not in link
    assert "https://glow.example/book?service=Botox" in link
    assert service.scalar(select(Patient.status).where(Patient.phone == caller)) == "returning"
