"""X-Forwarded-For / -Proto are believed only from RINGBACK_TRUSTED_PROXIES: rotating the
header from any other peer does not get round the per-address sign-in throttle."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from ringback.config import Settings
from ringback.staff.auth import MAX_FAILURES_PER_ADDRESS
from tests.conftest import Service
from tests.staff.conftest import add_user, login_form


def failed_sign_in(service: Service, client: httpx.Client, n: int, forwarded: str) -> int:
    csrf = login_form(client, service)
    response = client.post(
        "/staff/login",
        # A new email each time: only the per-address limit can stop this.
        data={"email": f"guess{n}@glow.example", "password": "nope", "csrf_token": csrf},
        headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"},
    )
    return response.status_code


def test_rotating_x_forwarded_for_from_an_untrusted_peer_is_still_throttled(
    service: Service,
) -> None:
    add_user(service, "owner@glow.example")
    with httpx.Client(base_url=service.url, timeout=10) as client:
        codes = [
            failed_sign_in(service, client, n, f"198.51.100.{n}")
            for n in range(MAX_FAILURES_PER_ADDRESS + 1)
        ]
    assert codes == [401] * MAX_FAILURES_PER_ADDRESS + [429]


def test_from_a_trusted_proxy_the_forwarded_address_is_the_client(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(settings_overrides={"RINGBACK_TRUSTED_PROXIES": "127.0.0.0/8, ::1"})
    add_user(service, "owner@glow.example")
    with httpx.Client(base_url=service.url, timeout=10) as client:
        # The attacker's own X-Forwarded-For entry is to the left of what the proxy added.
        codes = [
            failed_sign_in(service, client, n, f"10.9.9.{n}, 203.0.113.7")
            for n in range(MAX_FAILURES_PER_ADDRESS + 1)
        ]
        assert codes == [401] * MAX_FAILURES_PER_ADDRESS + [429]
        # Another client behind the same proxy is not held up by the first one's failures.
        assert failed_sign_in(service, client, 99, "203.0.113.8") == 401
        # A trusted proxy's own address in the chain is skipped over.
        assert failed_sign_in(service, client, 100, "203.0.113.7, 127.0.0.1") == 429


def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(
    make_service: Callable[..., Service],
) -> None:
    # A redirect the framework builds from the request's own URL shows the scheme it saw.
    def scheme_seen(service: Service) -> str:
        response = service.http.get(
            service.url + "/api/v1/conversations/",
            headers={"X-Forwarded-Proto": "https"},
            follow_redirects=False,
        )
        assert response.status_code in (307, 308), response.text
        return str(response.headers["location"]).split(":", 1)[0]

    assert scheme_seen(make_service()) == "http"
    trusting = make_service(settings_overrides={"RINGBACK_TRUSTED_PROXIES": "127.0.0.1"})
    assert scheme_seen(trusting) == "https"


def test_the_trusted_proxies_setting_names_a_bad_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().trusted_proxy_networks == ()
    monkeypatch.setenv("RINGBACK_TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    assert [str(n) for n in Settings().trusted_proxy_networks] == ["127.0.0.1/32", "10.0.0.0/8"]
    monkeypatch.setenv("RINGBACK_TRUSTED_PROXIES", "127.0.0.1, caddy")
    with pytest.raises(ValueError, match="RINGBACK_TRUSTED_PROXIES") as raised:
        Settings()
    assert "'caddy' is not an IP address" in str(raised.value)
