"""Reading the recovery figures in tests: the ``ringback`` command on a running service's
database, staff marking a thread booked, and ``/metrics`` samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from ringback.models import Conversation, Patient
from tests.conftest import Service
from tests.staff.conftest import page_csrf


def ringback(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """``ringback ARGS`` in a subprocess, on the service's database and locations file."""
    env = {
        **os.environ,
        "RINGBACK_DATABASE_URL": service.runtime.settings.resolved_database_url,
        "RINGBACK_CONFIG": str(service.config_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "ringback.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def cli_report(service: Service, since: str, until: str, *extra: str) -> dict[str, Any]:
    result = ringback(
        service, "report", "--format", "json", "--since", since, "--until", until, *extra
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def without_time(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "generated_at": None}


def conversation_for(service: Service, caller: str) -> int:
    """The id of the caller's first conversation (the one their missed call opened)."""
    return int(
        service.scalar(
            select(Conversation.id)
            .join(Patient, Patient.id == Conversation.patient_id)
            .where(Patient.phone == caller)
            .order_by(Conversation.id)
            .limit(1)
        )
    )


def staff_books(service: Service, client: httpx.Client, caller: str, dollars: str) -> None:
    """Staff press "Mark booked" on the caller's thread with a value in dollars."""
    conversation_id = conversation_for(service, caller)
    csrf = page_csrf(client, f"/staff/conversations/{conversation_id}")
    response = client.post(
        f"/staff/conversations/{conversation_id}/booked",
        data={"value": dollars, "csrf_token": csrf},
    )
    assert response.status_code == 303, response.text


def metric_total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in a Prometheus scrape with these labels."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )
