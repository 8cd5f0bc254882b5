"""The settings document is a fixed point: what is stored, exported as YAML and read back
is the same settings, whatever the owner typed (within what the models accept)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ringback.config import WEEKDAYS, load_locations, parse_locations
from ringback.settings.cli import dump
from ringback.settings.store import document_of
from tests.conftest import DEMO_LOCATIONS

ranges = st.sampled_from(["closed", "09:00-18:00", "10:00-14:00", "08:30-12:00,13:00-19:30"])
names = st.text(
    alphabet=st.characters(codec="utf-8", categories=("L", "N", "Zs")), min_size=1, max_size=30
).filter(lambda s: s.strip() == s and s)
prices = st.decimals(min_value=0, max_value=5000, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def locations(draw: st.DrawFn) -> dict[str, Any]:
    services = draw(st.lists(names, min_size=0, max_size=4, unique_by=str.casefold))
    return {
        "locations": [
            {
                "id": "spa",
                "name": draw(names),
                "phone_number": "+13105550100",
                "ring_seconds": draw(st.integers(5, 120)),
                "hours": {day: draw(ranges) for day in WEEKDAYS},
                "cooldown_hours": draw(st.sampled_from([0, 0.5, 24, 72])),
                "after_hours_skip_ring": draw(st.booleans()),
                "services": [
                    {
                        "name": name,
                        "minutes": draw(st.integers(5, 600)),
                        "price": draw(prices),
                        "consult": draw(st.booleans()),
                    }
                    for name in services
                ],
            }
        ]
    }


@settings(max_examples=60, deadline=None)
@given(locations())
def test_a_document_survives_storing_and_yaml(data: dict[str, Any]) -> None:
    first = parse_locations(data, "settings")
    stored = document_of(first)
    again = parse_locations(yaml.safe_load(dump(stored)), "settings")
    assert list(again) == list(first)
    assert document_of(again) == stored
    for service in next(iter(again)).services:
        assert isinstance(service.price, Decimal)


def test_the_demo_file_round_trips() -> None:
    demo = load_locations(DEMO_LOCATIONS)
    stored = document_of(demo)
    assert list(parse_locations(yaml.safe_load(dump(stored)), "settings")) == list(demo)
