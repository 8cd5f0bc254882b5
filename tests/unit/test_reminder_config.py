"""Reminder settings: offsets, wording in English and Spanish (GSM-7, one or two
segments), no treatment named unless the location allows health details, clear errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from ringback.config import Location
from ringback.messaging.segments import message_segments, prefer_gsm7
from ringback.readable import when

BASE: dict[str, Any] = {"id": "x", "name": "Glow Med Spa", "phone_number": "+13105550100"}
VISIT = datetime(2026, 11, 26, 23, 0, tzinfo=UTC)


def location(**extra: Any) -> Location:
    return Location.model_validate(BASE | extra)


def test_defaults_are_48_and_2_hours_with_one_a_day() -> None:
    glow = location()
    assert [r.offset_minutes for r in glow.reminders] == [2880, 120]
    assert glow.automated_texts_per_day == 1
    assert glow.no_show_text is True
    assert glow.health_details_in_texts is False
    assert location(reminders=[]).reminders == ()


@pytest.mark.parametrize("language", ["en", "es"])
@pytest.mark.parametrize("health", [False, True])
def test_default_wording_names_the_spa_and_time_in_gsm7(language: str, health: bool) -> None:
    glow = location(health_details_in_texts=health)
    for reminder in glow.reminders:
        template = reminder.template(language, health_details=health)
        body = prefer_gsm7(
            template.format(
                location=glow.name,
                when=when(VISIT, glow.zone, language),
                treatment="Lip Filler",
                phone="(310) 555-0100",
            )
        )
        assert body.startswith("Glow Med Spa: ")
        assert when(VISIT, glow.zone, language).replace("é", "e") in body.replace("é", "e")
        assert ("Lip Filler" in body) is health
        encoding, segments = message_segments(body)
        assert encoding == "GSM-7", body
        assert segments == 1, (len(body), body)


def test_custom_wording_per_reminder_and_language() -> None:
    glow = location(
        reminders=[
            {"hours_before": 24, "text": "{location}: tomorrow {when}!", "text_es": "{when}"}
        ]
    )
    (reminder,) = glow.reminders
    assert reminder.offset_minutes == 1440
    assert reminder.template("en", health_details=False) == "{location}: tomorrow {when}!"
    assert reminder.template("es", health_details=False) == "{when}"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"reminders": [{"hours_before": 2, "text": "{treatment} at {when}"}]}, "health_details"),
        ({"reminders": [{"hours_before": 2, "text": "{price}"}]}, "unknown placeholder {price}"),
        ({"reminders": [{"hours_before": 2}, {"hours_before": 2.0}]}, "same time"),
        ({"reminders": [{"hours_before": 0}]}, "greater than 0"),
        ({"automated_texts_per_day": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_say_what_is_wrong(extra: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        location(**extra)
    assert problem in str(error.value)


def test_treatment_allowed_with_health_details() -> None:
    glow = location(
        health_details_in_texts=True, reminders=[{"hours_before": 2, "text": "{treatment} {when}"}]
    )
    assert glow.reminders[0].text == "{treatment} {when}"


def test_last_texting_time_moves_back_never_forward() -> None:
    glow = location(timezone="America/Los_Angeles", texting_hours="08:00-21:00")
    inside = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)  # 12:00 local
    assert glow.last_texting_time(inside) == inside
    early = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)  # 06:00 local: 20:59 the day before
    assert glow.last_texting_time(early) == datetime(2026, 11, 26, 4, 59, tzinfo=UTC)
    late = datetime(2026, 11, 27, 6, 30, tzinfo=UTC)  # 22:30 local: 20:59 that day
    assert glow.last_texting_time(late) == datetime(2026, 11, 27, 4, 59, tzinfo=UTC)
