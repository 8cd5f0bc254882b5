"""Every webhook is verified and validated before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from ringback.app import create_app
from ringback.models import Call, Message, ProviderEvent
from ringback.runtime import build_runtime
from tests.conftest import AUTH_TOKEN, ServerThread, Service, free_port, settle
from tests.twilio_payloads import new_call_sid, new_message_sid, payload

WEBHOOKS = [
    ("/twilio/voice", "voice_incoming"),
    ("/twilio/voice/dial-result", "dial_result_no_answer"),
    ("/twilio/voice/status", "call_status_completed"),
    ("/twilio/sms", "sms_inbound"),
    ("/twilio/sms/status", "sms_status_delivered"),
]


def nothing_written(service: Service) -> bool:
    settle(0.3)
    with service.db() as session:
        return all(
            session.scalar(select(func.count()).select_from(model)) == 0
            for model in (ProviderEvent, Call, Message)
        )


@pytest.mark.parametrize(("path", "fixture"), WEBHOOKS)
def test_missing_signature_is_403_and_writes_nothing(
    service: Service, path: str, fixture: str
) -> None:
    response = service.post(path, payload(fixture), signed=False)
    assert response.status_code == 403
    assert "X-Twilio-Signature" in response.text
    assert nothing_written(service)


@pytest.mark.parametrize(("path", "fixture"), WEBHOOKS)
def test_wrong_signature_is_403(service: Service, path: str, fixture: str) -> None:
    params = payload(fixture)
    good = service.sign(path, params)
    bad = ("A" if good[0] != "A" else "B") + good[1:]
    assert service.post(path, params, signature=bad).status_code == 403
    # A valid signature over different parameters (tampered body) is refused too.
    tampered = dict(params, From="+12135559999")
    assert service.post(path, tampered, signature=good).status_code == 403
    assert nothing_written(service)


@pytest.mark.parametrize(
    "signed_url",
    ["https://rb.example/twilio/voice", "https://rb.example:443/twilio/voice"],
)
def test_signature_port_variants_are_accepted(
    make_service: Callable[..., Service], signed_url: str
) -> None:
    # Twilio may sign https://host/path or https://host:443/path for the same URL.
    service = make_service(public_url="https://rb.example")
    params = payload("voice_incoming", CallSid=new_call_sid())
    signature = RequestValidator(AUTH_TOKEN).compute_signature(signed_url, params)
    assert service.post("/twilio/voice", params, signature=signature).status_code == 200


def test_signature_for_another_host_or_port_is_refused(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(public_url="https://rb.example")
    params = payload("voice_incoming", CallSid=new_call_sid())
    for url in (
        "https://rb.example:8443/twilio/voice",
        "https://evil.example/twilio/voice",
        "http://rb.example/twilio/voice",
    ):
        signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params)
        assert service.post("/twilio/voice", params, signature=signature).status_code == 403
    assert nothing_written(service)


def test_sha256_signature_setting_is_honoured(service: Service) -> None:
    params = payload("voice_incoming", CallSid=new_call_sid())
    url = service.url + "/twilio/voice"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, params, "HMAC_SHA256")
    response = service.http.post(
        url,
        data=params,
        headers={
            "X-Twilio-Signature": signature,
            "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_SHA256",
        },
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("path", "fixture", "changes", "field"),
    [
        ("/twilio/voice", "voice_incoming", {"CallSid": "nope"}, "CallSid"),
        ("/twilio/voice", "voice_incoming", {"To": "not-a-number"}, "To"),
        ("/twilio/voice", "voice_incoming", {"AccountSid": "AC123"}, "AccountSid"),
        (
            "/twilio/voice/dial-result",
            "dial_result_no_answer",
            {"DialCallStatus": "maybe"},
            "DialCallStatus",
        ),
        ("/twilio/voice/status", "call_status_completed", {"CallStatus": "exploded"}, "CallStatus"),
        ("/twilio/sms", "sms_inbound", {"MessageSid": "SM1"}, "MessageSid"),
        ("/twilio/sms", "sms_inbound", {"Body": "x" * 1601}, "Body"),
        ("/twilio/sms/status", "sms_status_delivered", {"ErrorCode": "abc"}, "ErrorCode"),
        ("/twilio/sms/status", "sms_status_delivered", {"MessageStatus": "lost"}, "MessageStatus"),
    ],
)
def test_malformed_field_is_400_naming_the_field(
    service: Service, path: str, fixture: str, changes: dict[str, str], field: str
) -> None:
    response = service.post(path, payload(fixture, **changes))
    assert response.status_code == 400
    assert f"{field}:" in response.text
    assert nothing_written(service)


@pytest.mark.parametrize(("path", "fixture"), WEBHOOKS[:2] + WEBHOOKS[3:4])
def test_missing_required_field_is_400(service: Service, path: str, fixture: str) -> None:
    params = payload(fixture)
    params.pop("To")
    response = service.post(path, params)
    assert response.status_code == 400
    assert "To: is required" in response.text
    assert nothing_written(service)


def test_unknown_number_is_404_with_twiml_and_writes_nothing(service: Service) -> None:
    response = service.post("/twilio/voice", payload("voice_incoming", To="+14155550199"))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/xml")
    assert "<Response><Say>" in response.text
    assert "no location is configured for +14155550199" in response.text
    sms = service.post("/twilio/sms", payload("sms_inbound", To="+14155550199"))
    assert sms.status_code == 404
    assert sms.text.endswith("<Response/>")
    assert nothing_written(service)


def test_unknown_extra_fields_are_accepted(service: Service) -> None:
    params = payload("voice_incoming", CallSid=new_call_sid(), SomeFutureTwilioField="x")
    assert service.post("/twilio/voice", params).status_code == 200
    params = payload("sms_inbound", MessageSid=new_message_sid(), AnotherNewField="y")
    assert service.post("/twilio/sms", params).status_code == 200


def test_healthz_reports_database_and_queue(service: Service) -> None:
    response = service.http.get(service.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "spool": {"depth": 0, "oldest_age_seconds": None},
    }


def test_healthz_names_the_failing_part(service: Service, tmp_path: Path) -> None:
    settings = service.runtime.settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/nothing"}
    )
    runtime = build_runtime(settings, service.locations)
    port = free_port()
    with ServerThread(create_app(runtime, run_worker=False), port):
        response = service.http.get(f"http://127.0.0.1:{port}/healthz")
    runtime.close()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert set(body["failing"]) == {"database"}
    assert "OperationalError" in body["failing"]["database"]
