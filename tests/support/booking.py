"""A scheduling demo spa for booking tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


def scheduling(providers: list[dict[str, Any]] | None = None) -> Callable[[dict[str, Any]], None]:
    """Turn the demo spa into one that books itself (no outside booking URL)."""

    def edit(config: dict[str, Any]) -> None:
        glow = config["locations"][0]
        glow.pop("booking_url", None)
        glow["providers"] = providers or [
            {"id": "anna", "name": "Anna", "services": ["Botox", "Filler"]},
            {"id": "bea", "name": "Bea", "services": ["HydraFacial", "Filler"]},
        ]
        glow["booking"] = {"lead_minutes": 60}
        for service in glow["services"]:
            if service["name"] == "Botox":
                service["prep_note"] = "Please skip alcohol the day before."

    return edit


def offered_times(text: str) -> list[str]:
    return re.findall(r"\d\) ([^,]+?)(?=, \d\)|\. Reply)", text)
