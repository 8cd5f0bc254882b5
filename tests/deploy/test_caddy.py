"""deploy/Caddyfile: HTTPS from Caddy in front of the real service, and Twilio's signature
check passing through it against the https public URL."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from tests.conftest import AUTH_TOKEN, Service, free_port, wait_for
from tests.support.deploy import caddy_in_front
from tests.support.phone import FRONT_DESK_TO, texts_to
from tests.twilio_payloads import caller_number, new_call_sid, payload


def test_signed_webhooks_pass_through_caddy_over_https(
    make_service: Callable[..., Service], tmp_path: Path
) -> None:
    https_port = free_port()
    # Twilio signs the URL it was given: RINGBACK_PUBLIC_URL, Caddy's https host and port.
    service = make_service(public_url=f"https://localhost:{https_port}")
    upstream = service.url.removeprefix("http://")
    # A second web process that is down: Caddy skips it (every request below succeeds).
    down = f"127.0.0.1:{free_port()}"
    with caddy_in_front([down, upstream], tmp_path, https_port=https_port) as proxy:
        assert proxy.https_url == service.public_url
        tls = ssl.create_default_context(cafile=str(proxy.root_certificate))
        with httpx.Client(verify=tls, timeout=10) as client:

            def post(path: str, params: dict[str, str], signature: str) -> httpx.Response:
                headers = {"X-Twilio-Signature": signature}
                return client.post(proxy.https_url + path, data=params, headers=headers)

            for _ in range(4):
                health = client.get(proxy.https_url + "/healthz")
                assert health.status_code == 200
                assert health.json()["status"] == "ok"
            # /metrics stays inside (Prometheus scrapes the web processes directly).
            assert client.get(proxy.https_url + "/metrics").status_code == 404

            caller = caller_number(7)
            call_sid = new_call_sid()
            voice = payload("voice_incoming", CallSid=call_sid, From=caller, To=FRONT_DESK_TO)
            answered = post("/twilio/voice", voice, service.sign("/twilio/voice", voice))
            assert answered.status_code == 200, answered.text
            # The callback Ringback hands Twilio is on the https public URL too.
            assert f'action="{proxy.https_url}/twilio/voice/dial-result"' in answered.text

            path = "/twilio/voice/dial-result"
            result = payload(
                "dial_result_no_answer", CallSid=call_sid, From=caller, To=FRONT_DESK_TO
            )
            # Signed for the address behind the proxy instead of the public one: refused.
            behind = RequestValidator(AUTH_TOKEN).compute_signature(service.url + path, result)
            assert post(path, result, behind).status_code == 403
            assert not texts_to(service, caller)
            accepted = post(path, result, service.sign(path, result))
            assert accepted.status_code == 200, accepted.text
            wait_for(lambda: texts_to(service, caller), what="the text-back")

        # Plain HTTP is redirected to HTTPS (on 443, where production listens), path and
        # query kept.
        redirect = httpx.get(proxy.http_url + "/twilio/voice?x=1", timeout=10)
        assert redirect.status_code in (301, 308)
        assert redirect.headers["location"] == "https://localhost/twilio/voice?x=1"
