"""Outbound webhooks never go to this server or the network behind it: a URL at a
loopback, private, link-local, unspecified or multicast address, written as a literal or
as a name that resolves to one, is refused on the webhooks page and by the CLI, and
checked again when each delivery is sent (DNS may have changed), unless the operator sets
RINGBACK_ALLOW_PRIVATE_WEBHOOKS=1."""

from __future__ import annotations

import html
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ringback.fakes.twilio import BackgroundServer
from ringback.integrations.http_post import post_json
from ringback.models import WebhookDelivery, WebhookEndpoint
from tests.conftest import Service, settle, wait_for
from tests.outbound_webhooks.test_webhooks import Receiver
from tests.outbound_webhooks.test_webhooks_page import PAGE, post, shown_secret
from tests.staff.conftest import add_user, sign_in
from tests.support.phone import miss
from tests.twilio_payloads import caller_number

REFUSED = [
    ("http://127.0.0.1:8080/hooks", "127.0.0.1 is a loopback address"),
    ("http://localhost:8080/hooks", "localhost resolves to 127.0.0.1, which is a loopback address"),
    ("http://2130706433/hooks", "is a loopback address"),  # 127.0.0.1 as one number
    ("http://[::1]/hooks", "::1 is a loopback address"),
    ("http://[::ffff:127.0.0.1]/hooks", "loopback address"),
    ("https://10.1.2.3/hooks", "10.1.2.3 is a private address"),
    ("https://192.168.0.10/hooks", "192.168.0.10 is a private address"),
    ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
    ("http://[fe80::1]/hooks", "fe80::1 is a link-local address"),
    ("http://0.0.0.0:8000/hooks", "0.0.0.0 is an unspecified address"),
    ("http://224.0.0.1/hooks", "224.0.0.1 is a multicast address"),
]
ALLOWED = ["https://93.184.215.14/hooks", "https://crm.example.com/ringback"]


def count(service: Service) -> int:
    return int(service.scalar(select(func.count()).select_from(WebhookEndpoint)))


@pytest.fixture
def owner(service: Service) -> httpx.Client:
    add_user(service, "owner@glow.example")
    return sign_in(service, "owner@glow.example")


def cli(service: Service, *args: str, allow: bool = False) -> subprocess.CompletedProcess[str]:
    settings = service.runtime.settings
    env = {
        **os.environ,
        "RINGBACK_CONFIG": str(service.config_path),
        "RINGBACK_DATABASE_URL": settings.resolved_database_url,
        "RINGBACK_QUEUE_URL": settings.resolved_queue_url,
        "RINGBACK_QUEUE_NAME": settings.queue_name,
        "RINGBACK_LOG_LEVEL": "WARNING",
    }
    env.pop("RINGBACK_ALLOW_PRIVATE_WEBHOOKS", None)
    if allow:
        env["RINGBACK_ALLOW_PRIVATE_WEBHOOKS"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "ringback.cli", "webhooks", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(("url", "says"), REFUSED)
def test_the_page_refuses_a_private_address_naming_it(
    service: Service, owner: httpx.Client, url: str, says: str
) -> None:
    refused = post(owner, PAGE + "/endpoints", {"url": url, "event": "missed_call.detected"})
    assert refused.status_code == 400, refused.text[:300]
    shown = html.unescape(refused.text)
    assert 'data-field="url"' in refused.text
    assert says in shown
    assert "RINGBACK_ALLOW_PRIVATE_WEBHOOKS=1" in shown
    assert "signing-secret" not in refused.text
    assert count(service) == 0


def test_the_page_takes_public_addresses_and_names_that_do_not_resolve_yet(
    service: Service, owner: httpx.Client
) -> None:
    for url in ALLOWED:
        added = post(owner, PAGE + "/endpoints", {"url": url, "event": "missed_call.detected"})
        assert added.status_code == 200, added.text[:300]
        assert shown_secret(added).startswith("whsec_")
    assert count(service) == len(ALLOWED)


def test_the_cli_refuses_a_private_address_unless_the_operator_allows_it(
    service: Service,
) -> None:
    refused = cli(service, "add", "--url", "http://localhost:9/hooks", "--event", "all")
    assert refused.returncode == 2
    assert "--url: localhost resolves to 127.0.0.1, which is a loopback address" in refused.stderr
    metadata = cli(service, "add", "--url", "http://169.254.169.254/", "--event", "all")
    assert metadata.returncode == 2
    assert "169.254.169.254 is a link-local address" in metadata.stderr
    assert count(service) == 0
    allowed = cli(service, "add", "--url", "http://localhost:9/hooks", "--event", "all", allow=True)
    assert allowed.returncode == 0, allowed.stderr
    assert count(service) == 1


def test_an_operator_who_allows_private_addresses_can_use_the_page(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(settings_overrides={"RINGBACK_ALLOW_PRIVATE_WEBHOOKS": True})
    add_user(service, "owner@glow.example")
    owner = sign_in(service, "owner@glow.example")
    added = post(
        owner,
        PAGE + "/endpoints",
        {"url": "http://10.1.2.3/hooks", "event": "missed_call.detected"},
    )
    assert added.status_code == 200, added.text[:300]


# --- at delivery time ----------------------------------------------------------------------


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, str | list[str]]:
    """Names this test points where it likes (the service runs in this process): an
    address, or a list answered in turn (the last one from then on); every other name
    resolves as usual."""
    names: dict[str, str | list[str]] = {}
    real = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host in names:
            answer = names[host]
            if isinstance(answer, list):
                answer = answer.pop(0) if len(answer) > 1 else answer[0]
            return real(answer, *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    return names


def test_a_name_repointed_at_a_private_address_is_not_posted_to_and_the_failure_says_why(
    service: Service, owner: httpx.Client, dns: dict[str, str | list[str]]
) -> None:
    hooks = Receiver()
    with BackgroundServer(hooks.app()) as server:
        port = server.url.rsplit(":", 1)[1]
        url = f"http://hooks.clinic.example:{port}/hooks"
        dns["hooks.clinic.example"] = "93.184.215.14"  # public when it is registered
        added = post(owner, PAGE + "/endpoints", {"url": url, "event": "missed_call.detected"})
        assert added.status_code == 200, added.text[:300]
        hooks.secret = shown_secret(added)
        dns["hooks.clinic.example"] = "127.0.0.1"  # then pointed at this server
        miss(service, caller_number(931))
        delivery = wait_for(
            lambda: service.scalar(
                select(WebhookDelivery).where(WebhookDelivery.status == "failed")
            ),
            what="the delivery refused",
        )
        settle()
        assert hooks.requests == []  # nothing reached the private address
    assert delivery.last_error == (
        "not sent: hooks.clinic.example resolves to 127.0.0.1, which is a loopback address; "
        "webhooks go to the clinic's systems on the internet (an operator can set "
        "RINGBACK_ALLOW_PRIVATE_WEBHOOKS=1 to allow private addresses)"
    )
    assert delivery.next_attempt_at is None
    assert "hooks.clinic.example resolves to 127.0.0.1" in html.unescape(owner.get(PAGE).text)
    listed = cli(service, "deliveries", "--failed")
    assert "not sent: hooks.clinic.example resolves to 127.0.0.1" in listed.stdout


def test_a_name_that_answers_public_then_private_is_connected_to_at_the_address_checked(
    service: Service, owner: httpx.Client, dns: dict[str, str | list[str]]
) -> None:
    """DNS rebinding: the lookup the check makes says public, the next one would say
    127.0.0.1. The POST goes to the address that was checked, never to this server."""
    hooks = Receiver()
    with BackgroundServer(hooks.app()) as server:
        port = server.url.rsplit(":", 1)[1]
        url = f"http://rebind.clinic.example:{port}/hooks"
        dns["rebind.clinic.example"] = ["192.0.0.9"]  # public (a test address, unrouted)
        added = post(owner, PAGE + "/endpoints", {"url": url, "event": "missed_call.detected"})
        assert added.status_code == 200, added.text[:300]
        hooks.secret = shown_secret(added)
        # The delivery's check sees the public address; any lookup after it, 127.0.0.1.
        dns["rebind.clinic.example"] = ["192.0.0.9", "127.0.0.1"]
        miss(service, caller_number(932))
        delivery = wait_for(
            lambda: service.scalar(
                select(WebhookDelivery).where(WebhookDelivery.last_error.is_not(None))
            ),
            timeout=15,
            what="the attempt at the public address to fail",
        )
        settle()
        assert hooks.requests == []
    assert delivery.status == "pending"  # an ordinary failed attempt: retried later
    assert not delivery.last_error.startswith("not sent")


# --- connecting to the checked address over TLS ---------------------------------------------------


@pytest.fixture
def tls_receiver(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[int, list[str]]]:
    """An HTTPS receiver on 127.0.0.1 whose certificate names hooks.clinic.example only,
    trusted through SSL_CERT_FILE. Yields its port and the Host headers it was sent."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.clinic.example",
            "-addext", "subjectAltName=DNS:hooks.clinic.example",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers["Host"])
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hosts
    server.shutdown()
    server.server_close()


def test_a_pinned_https_post_still_checks_the_certificate_against_the_urls_host(
    tls_receiver: tuple[int, list[str]],
) -> None:
    port, hosts = tls_receiver
    url = f"https://hooks.clinic.example:{port}/hooks"
    loopback = ipaddress.ip_address("127.0.0.1")
    status, _, error = post_json(url, b"{}", {}, 5.0, 100, connect_to=loopback)
    assert (status, error) == (200, None)
    assert hosts == [f"hooks.clinic.example:{port}"]
    # A certificate for another name is refused, even at the same address.
    wrong = f"https://other.clinic.example:{port}/hooks"
    status, _, error = post_json(wrong, b"{}", {}, 5.0, 100, connect_to=loopback)
    assert status is None
    assert error is not None
    assert "certificate" in error.lower() or "hostname" in error.lower()
    assert len(hosts) == 1
