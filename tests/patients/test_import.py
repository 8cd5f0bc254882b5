"""Importing patients and appointments from CSV exports: presets, mappings, bad rows by
line, upserts that never duplicate, and times read in the location's zone."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ringback.config import Location
from ringback.models import Appointment, Patient
from ringback.patients.importing import ColumnMapping, MappingError, read_csv
from tests.patients.conftest import csv_text, run_import

Sessions = sessionmaker[Session]


def all_patients(sessions: Sessions) -> list[Patient]:
    with sessions() as session:
        return list(session.scalars(select(Patient).order_by(Patient.id)))


def all_appointments(sessions: Sessions) -> list[Appointment]:
    with sessions() as session:
        return list(session.scalars(select(Appointment).order_by(Appointment.id)))


def test_generic_patients_are_created_as_returning_with_e164_numbers(
    sessions: Sessions, downtown: Location
) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,first_name,last_name,external_id",
            "(213) 555-0101,Ana,López,A-1",
            "+1 213 555 0102,Ben,,A-2",
        ),
    )
    assert (report.rows, report.created, report.updated, report.skipped) == (2, 2, 0, 0)
    ana, ben = all_patients(sessions)
    assert (ana.phone, ana.first_name, ana.last_name, ana.external_id, ana.status) == (
        "+12135550101",
        "Ana",
        "López",
        "A-1",
        "returning",
    )
    assert (ben.phone, ben.last_name, ben.location_id) == ("+12135550102", None, "glow-downtown")
    assert ben.opted_out_at is None


def test_bad_rows_are_reported_by_line_and_the_good_ones_imported(
    sessions: Sessions, downtown: Location
) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,first_name,last_name,status",
            "2135550111,Good,One,",
            "555-12,Bad,Phone,",
            "",  # a blank line is skipped but still counts for line numbers
            ",No,Phone,",
            '2135550112,"Multi',
            'line",Name,new',
            "2135550113,Odd,Status,vip",
            "2135550114,Too,Many,,extra",
            "2135550115,Good,Two,returning",
        ),
    )
    assert [str(p) for p in report.problems] == [
        "line 3: phone: not a valid phone number ('555-12')",
        "line 5: phone: missing",
        "line 8: status: expected new or returning ('vip')",
        "line 9: row: 1 more cell(s) than the header has columns (a comma in an unquoted value?)",
    ]
    assert (report.rows, report.created, report.skipped) == (7, 3, 4)
    phones = {p.phone: p for p in all_patients(sessions)}
    assert set(phones) == {"+12135550111", "+12135550112", "+12135550115"}
    assert phones["+12135550112"].first_name == "Multi\nline"
    assert phones["+12135550112"].status == "new"


def test_reimport_updates_and_never_duplicates(sessions: Sessions, downtown: Location) -> None:
    first = csv_text("phone,first_name,last_name", "2135550121,Ana,Lopez", "2135550122,Ben,Ng")
    assert run_import(sessions, downtown, first).created == 2
    again = run_import(sessions, downtown, first)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    changed = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,first_name,last_name",
            "+12135550121,Ana,Lopez-Reyes",  # same number, written differently
            "2135550122,,",  # empty cells keep what was known
            "2135550123,Cy,Ode",
        ),
    )
    assert (changed.created, changed.updated, changed.unchanged) == (1, 1, 1)
    people = all_patients(sessions)
    assert [(p.phone, p.first_name, p.last_name) for p in people] == [
        ("+12135550121", "Ana", "Lopez-Reyes"),
        ("+12135550122", "Ben", "Ng"),
        ("+12135550123", "Cy", "Ode"),
    ]


def test_import_does_not_touch_consent_and_stays_at_its_location(
    sessions: Sessions, downtown: Location, locations: object
) -> None:
    with sessions() as session:
        session.add(
            Patient(
                location_id="glow-downtown",
                phone="+12135550131",
                status="new",
                opted_out_at=datetime(2026, 1, 1, tzinfo=UTC),
                opt_out_source="keyword",
            )
        )
        session.add(Patient(location_id="glow-westside", phone="+12135550132"))
        session.commit()
    report = run_import(
        sessions, downtown, csv_text("phone,first_name", "2135550131,Ana", "2135550132,Ben")
    )
    assert (report.created, report.updated) == (1, 1)
    people = {(p.location_id, p.phone): p for p in all_patients(sessions)}
    ana = people[("glow-downtown", "+12135550131")]
    # A file without a status column does not overwrite what is known ("new", told to
    # the bot): new or returning is one fact the conversations share.
    assert (ana.first_name, ana.status, ana.opt_out_source) == ("Ana", "new", "keyword")
    assert ana.opted_out_at is not None
    assert people[("glow-westside", "+12135550132")].first_name is None
    assert people[("glow-downtown", "+12135550132")].first_name == "Ben"


def test_custom_mapping_overrides_the_preset(sessions: Sessions, downtown: Location) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "Cell;Given;Family;Status;Client #",
            "213-555-0141;Ana;Lopez;VIP;C1",
        ),
        overrides=("Cell=phone", "Given=first_name", "Family=last_name", "Status=-"),
    )
    assert report.created == 1, report.problems
    (ana,) = all_patients(sessions)
    assert (ana.phone, ana.first_name, ana.last_name, ana.status) == (
        "+12135550141",
        "Ana",
        "Lopez",
        "returning",
    )


def test_full_name_column_is_split_when_there_are_no_first_and_last(
    sessions: Sessions, downtown: Location
) -> None:
    run_import(
        sessions,
        downtown,
        csv_text("Customer Name,Cell Phone", "Mary Jane Watson,2135550151", "Cher,2135550152"),
        preset="vagaro",
    )
    assert [(p.first_name, p.last_name) for p in all_patients(sessions)] == [
        ("Mary", "Jane Watson"),
        ("Cher", None),
    ]


PATIENT_EXPORTS = {
    "boulevard": (
        "First Name,Last Name,Mobile Phone,Email,Client ID",
        "Ana,Lopez,{phone},a@x.example,B1",
    ),
    "mindbody": ("ID,Last Name,First Name,Home Phone,Mobile Phone", "M1,Lopez,Ana,,{phone}"),
    "vagaro": (
        "Customer First Name,Customer Last Name,Cell Phone,Customer ID",
        "Ana,Lopez,{phone},V1",
    ),
    "zenoti": ("Guest Code,First Name,Last Name,Mobile Number,Gender", "Z1,Ana,Lopez,{phone},F"),
}


@pytest.mark.parametrize("preset", sorted(PATIENT_EXPORTS))
def test_each_preset_reads_its_patient_export(
    sessions: Sessions, downtown: Location, preset: str
) -> None:
    header, row = PATIENT_EXPORTS[preset]
    report = run_import(
        sessions, downtown, csv_text(header, row.format(phone="(213) 555-0161")), preset=preset
    )
    assert report.created == 1, report.problems
    (ana,) = all_patients(sessions)
    assert (ana.phone, ana.first_name, ana.last_name, ana.status) == (
        "+12135550161",
        "Ana",
        "Lopez",
        "returning",
    )
    assert ana.external_id is not None
    assert ana.external_id[1:] == "1"


# One appointment per export, on Thursday Dec 3 2026 at 2:30 PM in Los Angeles (PST).
APPOINTMENT_EXPORTS = {
    "generic": (
        "phone,first_name,last_name,external_id,start,duration,service,provider,status,price",
        "{phone},Ana,Lopez,G1,2026-12-03 14:30,45,botox,Dr. Lee,booked,480",
    ),
    "boulevard": (
        "Appointment ID,Client First Name,Client Last Name,Client Mobile Phone,Start Time,"
        "End Time,Services,Staff,Status,Price",
        "B1,Ana,Lopez,{phone},12/03/2026 2:30 PM,3:15 PM,Botox,Dr. Lee,Confirmed,$480.00",
    ),
    "mindbody": (
        "Date,Start Time,End Time,Client,Mobile Phone,Appointment Type,Staff,Status,Appointment ID",
        "12/3/2026,2:30 PM,3:15 PM,Ana Lopez,{phone},Botox,Dr. Lee,Booked,M1",
    ),
    "vagaro": (
        "Appointment Date,Start Time,Duration,Customer First Name,Customer Last Name,Cell Phone,"
        "Service,Service Provider,Status,Appointment ID,Price",
        '"Dec 3, 2026",2:30pm,45 min,Ana,Lopez,{phone},Tox,Dr. Lee,Confirmed,V1,480',
    ),
    "zenoti": (
        "Appointment Id,Guest Code,Guest Name,Mobile Number,Service Name,Therapist,Start Time,"
        "End Time,Status",
        "Z1,G9,Ana Lopez,{phone},BOTOX,Dr. Lee,2026-12-03T14:30:00,2026-12-03T15:15:00,Open",
    ),
}


@pytest.mark.parametrize("preset", sorted(APPOINTMENT_EXPORTS))
def test_each_preset_reads_its_appointment_export(
    sessions: Sessions, downtown: Location, preset: str
) -> None:
    header, row = APPOINTMENT_EXPORTS[preset]
    report = run_import(
        sessions,
        downtown,
        csv_text(header, row.format(phone="213.555.0171")),
        kind="appointments",
        preset=preset,
    )
    assert (report.created, report.patients_created, report.skipped) == (1, 1, 0), report.problems
    (visit,) = all_appointments(sessions)
    assert visit.starts_at == datetime(2026, 12, 3, 22, 30, tzinfo=UTC)
    assert visit.ends_at == datetime(2026, 12, 3, 23, 15, tzinfo=UTC)
    assert (visit.service, visit.provider_name, visit.status, visit.source) == (
        "Botox",
        "Dr. Lee",
        "booked",
        "import",
    )
    assert visit.external_id is not None
    assert visit.external_id[1:] == "1"
    (ana,) = all_patients(sessions)
    assert (ana.phone, ana.first_name, ana.last_name, ana.status) == (
        "+12135550171",
        "Ana",
        "Lopez",
        "returning",
    )
    assert visit.patient_id == ana.id


def test_times_are_local_to_the_location_across_daylight_saving(
    sessions: Sessions, downtown: Location
) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,start,service,external_id",
            "2135550181,2026-12-03 14:30,Botox,w",  # PST, UTC-8
            "2135550181,07/09/2026 2:30 PM,Botox,s",  # PDT, UTC-7
            "2135550181,2026-12-03T14:30:00-05:00,Botox,ny",  # an explicit offset wins
            "2135550181,2026-12-03T14:30:00Z,Botox,z",
        ),
        kind="appointments",
    )
    assert report.created == 4, report.problems
    starts = {a.external_id: a.starts_at for a in all_appointments(sessions)}
    assert starts == {
        "w": datetime(2026, 12, 3, 22, 30, tzinfo=UTC),
        "s": datetime(2026, 7, 9, 21, 30, tzinfo=UTC),
        "ny": datetime(2026, 12, 3, 19, 30, tzinfo=UTC),
        "z": datetime(2026, 12, 3, 14, 30, tzinfo=UTC),
    }


def test_length_comes_from_end_duration_or_the_menu(sessions: Sessions, downtown: Location) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,date,time,end,duration,service,external_id",
            "2135550191,2026-12-03,14:30,16:00,,Filler,end",
            "2135550191,2026-12-04,14:30,,1h30,Filler,hours",
            "2135550191,2026-12-05,14:30,,1:15,Filler,clock",
            "2135550191,2026-12-06,14:30,,,lip filler,menu",  # Filler is 60 minutes
            "2135550191,2026-12-07,14:30,,,Cryo Facial,unknown",  # not on the menu: 30
        ),
        kind="appointments",
    )
    assert report.created == 5, report.problems
    found = {a.external_id: a for a in all_appointments(sessions)}
    minutes = {k: int((a.ends_at - a.starts_at).total_seconds() // 60) for k, a in found.items()}
    assert minutes == {"end": 90, "hours": 90, "clock": 75, "menu": 60, "unknown": 30}
    assert found["menu"].service == "Filler"
    assert found["unknown"].service == "Cryo Facial"


def test_bad_appointment_rows_name_every_problem(sessions: Sessions, downtown: Location) -> None:
    report = run_import(
        sessions,
        downtown,
        csv_text(
            "phone,start,end,service,status,price,external_id",
            "2135550201,2026-12-03 14:30,15:00,Botox,confirmed,480,ok",
            "2135550202,13/45/2026 2:30 PM,,,,abc,bad1",
            "2135550203,2026-12-03,,Botox,,,bad2",
            "2135550204,2026-12-03 14:30,14:00,Botox,rescheduled,,bad3",
            "x,,,Botox,,,bad4",
        ),
        kind="appointments",
    )
    assert [str(p) for p in report.problems] == [
        "line 3: start: expected a date and time like 2026-12-03 14:30 or 12/03/2026 2:30 PM "
        "('13/45/2026 2:30 PM')",
        "line 3: service: missing",
        "line 3: price: expected an amount like 480 or $480.00 ('abc')",
        "line 4: start: expected a date and time like 2026-12-03 14:30 or 12/03/2026 2:30 PM "
        "('2026-12-03')",
        "line 5: end: is not after the start ('14:00')",
        "line 5: status: expected booked or cancelled (or confirmed, checked in, completed, "
        "no show) ('rescheduled')",
        "line 6: phone: not a valid phone number ('x')",
        "line 6: start: missing",
    ]
    assert (report.created, report.skipped) == (1, 4)
    assert [a.external_id for a in all_appointments(sessions)] == ["ok"]


def test_appointments_upsert_by_id_or_by_patient_and_start(
    sessions: Sessions, downtown: Location
) -> None:
    header = "phone,start,service,status,external_id"
    first = run_import(
        sessions,
        downtown,
        csv_text(
            header, "2135550211,2026-12-03 14:30,Botox,,A1", "2135550212,2026-12-04 10:00,Filler,,"
        ),
        kind="appointments",
    )
    assert (first.created, first.patients_created) == (2, 2)
    second = run_import(
        sessions,
        downtown,
        csv_text(
            header,
            "2135550211,2026-12-03 16:00,Botox,,A1",  # moved: same id
            "2135550212,2026-12-04 10:00,Filler,cancelled,",  # no id: same patient and start
            "2135550212,2026-12-04 10:00,Filler,cancelled,",  # a repeat in the same file
        ),
        kind="appointments",
    )
    assert (second.created, second.updated, second.unchanged, second.patients_created) == (
        0,
        2,
        1,
        0,
    )
    moved, cancelled = all_appointments(sessions)
    assert moved.starts_at == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    assert cancelled.status == "cancelled"
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Appointment)) == 2
        assert session.scalar(select(func.count()).select_from(Patient)) == 2


def test_mapping_problems_name_the_field_and_the_columns() -> None:
    header = read_csv(csv_text("Mobile,First", "1,2")).header
    with pytest.raises(
        MappingError,
        match=r"phone: no column for it \(tried 'phone'\); the file's columns are 'Mobile', 'First'",
    ):
        ColumnMapping.preset("patients").resolve(header)
    with pytest.raises(MappingError, match=r"column 'Cell' \(for phone\): not in the file"):
        ColumnMapping.preset("patients").overridden(["Cell=phone"]).resolve(header)
    with pytest.raises(MappingError, match=r"unknown field 'fone'; fields for patients: phone"):
        ColumnMapping.preset("patients").overridden(["Mobile=fone"])
    with pytest.raises(MappingError, match=r"expected COLUMN=FIELD"):
        ColumnMapping.preset("patients").overridden(["Mobile"])
    with pytest.raises(MappingError, match=r"no preset 'acme'; expected one of boulevard"):
        ColumnMapping.preset("patients", "acme")
    appointments = ColumnMapping.preset("appointments").overridden(
        ["Mobile=phone", "First=service"]
    )
    with pytest.raises(MappingError, match=r"start: no column for the start"):
        appointments.resolve(header)
