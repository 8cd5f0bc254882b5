"""A webhook takes only the body its provider sends: anything else, a multipart file part
above all, is answered 415 before the signature check reads it, and nothing is written."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from ringback.models import Call, Message, ProviderEvent
from tests.conftest import Service, settle
from tests.twilio_payloads import payload

PROVIDER_WEBHOOKS = [
    f"/{provider}/{path}"
    for provider in ("twilio", "signalwire")
    for path in ("voice", "voice/dial-result", "voice/status", "sms", "sms/status")
]
JSON_WEBHOOKS = [
    "/booking-systems/square/glow-downtown",
    "/booking-systems/google/glow-downtown",
    "/api/v1/missed-calls",
]
FILE = {"MediaUrl0": ("x.txt", b"hello", "text/plain")}


def nothing_written(service: Service) -> bool:
    settle(0.3)
    with service.db() as session:
        return all(
            session.scalar(select(func.count()).select_from(model)) == 0
            for model in (ProviderEvent, Call, Message)
        )


@pytest.mark.parametrize("path", PROVIDER_WEBHOOKS + JSON_WEBHOOKS)
def test_a_file_part_on_any_webhook_is_415_and_writes_nothing(service: Service, path: str) -> None:
    params = payload("sms_inbound")
    # Signed over the fields as if they were a form: the body is still never read.
    response = service.http.post(
        service.url + path,
        data=params,
        files=FILE,
        headers={"X-Twilio-Signature": service.sign(path, params)},
    )
    assert response.status_code == 415, response.text
    assert "multipart/form-data" in response.json()["detail"]
    assert response.json()["detail"].startswith("Content-Type: expected")
    assert nothing_written(service)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/twilio/sms", "application/json"),
        ("/twilio/voice", "text/plain"),
        ("/signalwire/sms", "application/xml"),
        ("/booking-systems/square/glow-downtown", "application/x-www-form-urlencoded"),
        ("/api/v1/missed-calls", "text/plain"),
    ],
)
def test_other_content_types_are_415_naming_the_expected_one(
    service: Service, path: str, content_type: str
) -> None:
    response = service.http.post(
        service.url + path, content=b"{}", headers={"Content-Type": content_type}
    )
    assert response.status_code == 415
    detail = response.json()["detail"]
    assert content_type in detail
    provider = path.startswith(("/twilio/", "/signalwire/"))
    expected = "application/x-www-form-urlencoded" if provider else "application/json"
    assert f"expected {expected}" in detail
    assert nothing_written(service)


def test_a_google_push_with_no_body_or_type_still_reaches_its_check(service: Service) -> None:
    # Google's pushes carry only headers; without them the route answers its own 400.
    response = service.http.post(service.url + "/booking-systems/google/glow-downtown")
    assert response.status_code in (400, 404)


def test_the_right_content_type_with_a_charset_is_accepted(service: Service) -> None:
    path = "/twilio/sms"
    params = payload("sms_inbound")
    response = service.http.post(
        service.url + path,
        content=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "X-Twilio-Signature": service.sign(path, params),
        },
    )
    assert response.status_code == 200, response.text


def test_a_request_without_a_body_is_not_judged_by_its_type(service: Service) -> None:
    # No body, no type: the route's own checks answer (here: no API token).
    response = service.http.post(service.url + "/api/v1/missed-calls")
    assert response.status_code == 401
    unsigned = service.http.post(service.url + "/twilio/sms")
    assert unsigned.status_code == 403
    # API clients that name a type on every request, GETs too, are not refused for it.
    typed_get = service.http.get(
        service.url + "/api/v1/conversations", headers={"Content-Type": "text/plain"}
    )
    assert typed_get.status_code == 401
