"""The webhooks page's management forms: add (the secret shown once), pause and resume
(events wait, then all arrive), rotate the secret (the receiver must take the new one),
remove. Owners only, CSRF on every form, bad input saves nothing."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import httpx
from sqlalchemy import func, select

from ringback.models import WebhookEndpoint
from tests.conftest import Service, settle, wait_for
from tests.outbound_webhooks.test_webhooks import Receiver, deliveries, receiver  # noqa: F401
from tests.staff.conftest import add_user, page_csrf, sign_in
from tests.support.phone import miss
from tests.twilio_payloads import caller_number

PAGE = "/staff/webhooks"


def post(client: httpx.Client, path: str, data: dict[str, object] | None = None) -> httpx.Response:
    return client.post(path, data={"csrf_token": page_csrf(client, PAGE), **(data or {})})


def shown_secret(response: httpx.Response) -> str:
    match = re.search(r'<code id="signing-secret">([^<]+)</code>', response.text)
    assert match, "no signing secret on the page"
    return match.group(1)


def endpoint_count(service: Service) -> int:
    return int(service.scalar(select(func.count()).select_from(WebhookEndpoint)))


def test_an_owner_adds_pauses_resumes_and_rotates(
    service: Service,
    receiver: tuple[Receiver, str],  # noqa: F811
) -> None:
    hooks, url = receiver
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    added = post(
        owner,
        PAGE + "/endpoints",
        {"url": url, "event": ["missed_call.detected"], "location": "glow-downtown"},
    )
    assert added.status_code == 200
    hooks.secret = shown_secret(added)
    assert hooks.secret.startswith("whsec_")
    page = owner.get(PAGE).text
    assert hooks.secret not in page  # shown once
    endpoint = service.scalar(select(WebhookEndpoint))
    assert (endpoint.events, endpoint.location_id) == (["missed_call.detected"], "glow-downtown")

    # Paused: the event is recorded and waits; nothing is posted.
    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/pause").status_code == 303
    assert "paused" in owner.get(PAGE + "?done=paused").text
    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/pause").status_code == 409
    miss(service, caller_number(951))
    wait_for(lambda: deliveries(service), what="the delivery recorded")
    wait_for(lambda: deliveries(service)[0].next_attempt_at is None, what="held")
    settle()
    assert hooks.requests == []
    assert deliveries(service)[0].status == "pending"
    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/resume").status_code == 303
    wait_for(lambda: len(hooks.delivered()) == 1, what="the held event delivered")
    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/resume").status_code == 409

    # A rotated secret signs from now on; a receiver with the old one refuses.
    rotated = post(owner, f"{PAGE}/endpoints/{endpoint.id}/rotate-secret")
    assert rotated.status_code == 200
    new_secret = shown_secret(rotated)
    assert new_secret != hooks.secret
    miss(service, caller_number(952))
    wait_for(lambda: hooks.bad_signatures >= 1, what="the old secret refused")
    hooks.secret = new_secret
    second = wait_for(lambda: len(deliveries(service)) == 2 and deliveries(service)[1], what="2nd")
    assert post(owner, f"{PAGE}/deliveries/{second.id}/replay").status_code == 303
    wait_for(lambda: len(hooks.delivered()) == 2, what="delivered with the new secret")

    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/remove").status_code == 303
    assert service.scalar(select(WebhookEndpoint.active)) is False
    assert post(owner, f"{PAGE}/endpoints/{endpoint.id}/pause").status_code == 404


def test_bad_endpoints_say_what_is_wrong_and_save_nothing(service: Service) -> None:
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    cases = [
        ({"url": "ftp://crm.example.com/x", "event": "missed_call.detected"}, "url"),
        ({"url": "not a url", "event": "missed_call.detected"}, "url"),
        ({"url": "https://crm.example.com/x"}, "event"),
        ({"url": "https://crm.example.com/x", "event": "call.ended"}, "event"),
        (
            {"url": "https://crm.example.com/x", "event": "missed_call.detected", "location": "x"},
            "location",
        ),
    ]
    for data, field in cases:
        refused = post(owner, PAGE + "/endpoints", data)
        assert refused.status_code == 400, data
        assert f'data-field="{field}"' in refused.text, data
        assert "signing-secret" not in refused.text
    assert "https://crm.example.com/x" in html.unescape(refused.text)  # the form keeps input
    no_csrf = owner.post(
        PAGE + "/endpoints", data={"url": "https://a.example/x", "event": "missed_call.detected"}
    )
    assert no_csrf.status_code == 403
    assert endpoint_count(service) == 0
    assert post(owner, f"{PAGE}/endpoints/77/rotate-secret").status_code == 404


def test_staff_cannot_manage_endpoints(service: Service) -> None:
    add_user(service, "desk@glow.example", role="staff", locations=["glow-downtown"])
    desk = sign_in(service, "desk@glow.example")
    csrf = page_csrf(desk, "/staff")
    refused = desk.post(
        PAGE + "/endpoints",
        data={"csrf_token": csrf, "url": "https://a.example/x", "event": "missed_call.detected"},
    )
    assert refused.status_code == 403
    assert desk.post(f"{PAGE}/endpoints/1/pause", data={"csrf_token": csrf}).status_code == 403
    assert endpoint_count(service) == 0


def test_the_cli_pauses_rotates_and_resumes(service: Service) -> None:
    settings = service.runtime.settings
    env = {
        **os.environ,
        "RINGBACK_CONFIG": str(service.config_path),
        "RINGBACK_DATABASE_URL": settings.resolved_database_url,
        "RINGBACK_QUEUE_URL": settings.resolved_queue_url,
        "RINGBACK_QUEUE_NAME": settings.queue_name,
        "RINGBACK_LOG_LEVEL": "WARNING",
        "RINGBACK_ALLOW_PRIVATE_WEBHOOKS": "1",  # the receiver is on 127.0.0.1
    }

    def ringback(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ringback.cli", "webhooks", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    added = ringback("add", "--url", "https://crm.example.com/x", "--event", "all")
    assert added.returncode == 0, added.stderr
    old = added.stdout.strip().splitlines()[-1]
    endpoint_id = str(service.scalar(select(WebhookEndpoint.id)))
    assert ringback("pause", endpoint_id).returncode == 0
    assert "\tpaused\t" in ringback("list").stdout
    rotated = ringback("rotate-secret", endpoint_id)
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("whsec_")
    assert new != old
    assert service.scalar(select(WebhookEndpoint.secret)) == new
    resumed = ringback("resume", endpoint_id)
    assert resumed.returncode == 0, resumed.stderr
    assert service.scalar(select(WebhookEndpoint.paused_at)) is None
