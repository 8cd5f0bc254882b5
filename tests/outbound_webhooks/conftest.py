"""These tests deliver to receivers on this machine (127.0.0.1), which Ringback refuses
unless the operator allows private addresses: every service here allows them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Service

ALLOW = {"RINGBACK_ALLOW_PRIVATE_WEBHOOKS": True}


@pytest.fixture
def make_service(make_service: Callable[..., Service]) -> Callable[..., Service]:
    def start(**options: Any) -> Service:
        options["settings_overrides"] = {**ALLOW, **(options.get("settings_overrides") or {})}
        return make_service(**options)

    return start
