"""SignalWire beside Twilio: a location on SignalWire is served end to end by SignalWire's
webhooks (signed with the project's signing key) and SignalWire's REST API (the fake
Space, checked against Twilio's contract), while a Twilio location in the same config
keeps going through Twilio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from ringback.models import Call, Conversation, Message, Patient, ProviderEvent
from ringback.telephony.signatures import signalwire_signature
from tests.conftest import (
    AUTH_TOKEN,
    SIGNALWIRE_PROJECT_ID,
    SIGNALWIRE_SIGNING_KEY,
    Service,
    settle,
    wait_for,
)
from tests.support.phone import miss
from tests.twilio_payloads import caller_number, new_call_sid, payload, signalwire_payload

TWILIO_SPA = "+13105550100"  # glow-downtown: rings the front desk, stays on Twilio
SIGNALWIRE_SPA = "+13105550200"  # glow-westside: forwarded-only, moved to SignalWire

WEBHOOKS = [
    ("/signalwire/voice", "voice_incoming", "To"),
    ("/signalwire/voice/dial-result", "dial_result_no_answer", "To"),
    ("/signalwire/voice/status", "call_status_completed", "To"),
    ("/signalwire/sms", "sms_inbound", "To"),
    ("/signalwire/sms/status", "sms_status_delivered", "From"),
]


def on_signalwire(*location_ids: str) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        for location in config["locations"]:
            if location["id"] in location_ids:
                location["provider"] = "signalwire"

    return edit


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    return make_service(edit=on_signalwire("glow-westside"), signalwire=True)


def sw_payload(name: str, **overrides: str) -> dict[str, str]:
    return signalwire_payload(name, SIGNALWIRE_PROJECT_ID, **overrides)


def sw_post(
    service: Service,
    path: str,
    params: dict[str, str],
    *,
    signature: str | None = None,
    header: str = "X-SignalWire-Signature",
    signed: bool = True,
) -> Any:
    headers = {}
    if signed:
        url = service.public_url + path
        headers[header] = signature or signalwire_signature(SIGNALWIRE_SIGNING_KEY, url, params)
    return service.http.post(service.url + path, data=params, headers=headers)


def signalwire_texts(service: Service, number: str) -> list[Any]:
    assert service.signalwire is not None
    return [m for m in service.signalwire.messages if m.to == number]


def twilio_texts(service: Service, number: str) -> list[Any]:
    return [m for m in service.twilio.messages if m.to == number]


def sw_miss(service: Service, caller: str) -> str:
    params = sw_payload("voice_incoming", From=caller, To=SIGNALWIRE_SPA)
    response = sw_post(service, "/signalwire/voice", params)
    assert response.status_code == 200, response.text
    return params["CallSid"]


def nothing_written(service: Service) -> bool:
    settle(0.3)
    with service.db() as session:
        return all(
            session.scalar(select(func.count()).select_from(model)) == 0
            for model in (ProviderEvent, Call, Message)
        )


def test_each_location_texts_back_through_its_own_provider(service: Service) -> None:
    sw_caller, tw_caller = caller_number(301), caller_number(302)
    call_sid = sw_miss(service, sw_caller)
    miss(service, tw_caller, to=TWILIO_SPA)

    text = wait_for(lambda: signalwire_texts(service, sw_caller), what="SignalWire text")[0]
    assert text.from_ == SIGNALWIRE_SPA
    assert text.account_sid == SIGNALWIRE_PROJECT_ID
    assert text.body.startswith("Hi, this is Glow Med Spa")
    # Receipts for a SignalWire text come back to SignalWire's route.
    assert text.status_callback == service.url + "/signalwire/sms/status"
    tw_text = wait_for(lambda: twilio_texts(service, tw_caller), what="Twilio text")[0]
    assert tw_text.from_ == TWILIO_SPA
    assert tw_text.status_callback == service.url + "/twilio/sms/status"
    settle()
    assert twilio_texts(service, sw_caller) == []
    assert signalwire_texts(service, tw_caller) == []
    assert len(signalwire_texts(service, sw_caller)) == 1

    message = wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid == text.sid)),
        what="SignalWire sid recorded",
    )
    assert (message.kind, message.to_number) == ("textback", sw_caller)
    assert message.provider == "signalwire"
    call = service.scalar(select(Call).where(Call.call_sid == call_sid))
    assert (call.outcome, call.mode, call.screening) == ("missed", "forwarded", "texted")
    assert call.provider == "signalwire"
    tw_call = service.scalar(select(Call).where(Call.from_number == tw_caller))
    assert tw_call.provider == "twilio"
    providers = service.rows(select(ProviderEvent.provider).order_by(ProviderEvent.id))
    assert sorted(providers) == ["signalwire", "twilio", "twilio"]


def test_ringing_location_on_signalwire_dials_back_to_signalwire(
    make_service: Callable[..., Service],
) -> None:
    service = make_service(edit=on_signalwire("glow-downtown"), signalwire=True)
    caller = caller_number(303)
    params = sw_payload("voice_incoming", From=caller, To=TWILIO_SPA)
    voice = sw_post(service, "/signalwire/voice", params)
    assert voice.status_code == 200
    assert voice.headers["content-type"].startswith("application/xml")
    assert f'<Dial action="{service.url}/signalwire/voice/dial-result"' in voice.text
    result = sw_post(
        service,
        "/signalwire/voice/dial-result",
        sw_payload("dial_result_no_answer", CallSid=params["CallSid"], From=caller, To=TWILIO_SPA),
    )
    assert result.status_code == 200
    assert "<Say>" in result.text
    wait_for(lambda: signalwire_texts(service, caller), what="text-back via SignalWire")
    settle()
    assert twilio_texts(service, caller) == []


@pytest.mark.parametrize(("path", "fixture", "number_field"), WEBHOOKS)
def test_absent_or_bad_signalwire_signature_is_403_and_writes_nothing(
    service: Service, path: str, fixture: str, number_field: str
) -> None:
    params = sw_payload(fixture, **{number_field: SIGNALWIRE_SPA})
    absent = sw_post(service, path, params, signed=False)
    assert absent.status_code == 403
    assert "X-SignalWire-Signature is missing or invalid" in absent.text
    good = signalwire_signature(SIGNALWIRE_SIGNING_KEY, service.public_url + path, params)
    bad = ("A" if good[0] != "A" else "B") + good[1:]
    assert sw_post(service, path, params, signature=bad).status_code == 403
    tampered = dict(params, Body="tampered")
    assert sw_post(service, path, tampered, signature=good).status_code == 403
    # Signed with the API token's sibling secrets is no better than unsigned.
    for secret in (AUTH_TOKEN, "PT-test-api-token-0123456789"):
        wrong_key = RequestValidator(secret).compute_signature(service.public_url + path, params)
        assert sw_post(service, path, params, signature=wrong_key).status_code == 403
    assert nothing_written(service)


@pytest.mark.parametrize(("path", "fixture", "number_field"), WEBHOOKS)
def test_twilio_signed_request_to_signalwire_route_is_refused(
    service: Service, path: str, fixture: str, number_field: str
) -> None:
    params = sw_payload(fixture, **{number_field: SIGNALWIRE_SPA})
    twilio_signed = RequestValidator(AUTH_TOKEN).compute_signature(
        service.public_url + path, params
    )
    response = sw_post(service, path, params, signature=twilio_signed, header="X-Twilio-Signature")
    assert response.status_code == 403
    assert nothing_written(service)


def test_signalwire_signed_request_to_twilio_route_is_refused(service: Service) -> None:
    params = payload("voice_incoming", CallSid=new_call_sid(), To=TWILIO_SPA)
    signature = signalwire_signature(
        SIGNALWIRE_SIGNING_KEY, service.public_url + "/twilio/voice", params
    )
    response = service.post("/twilio/voice", params, signature=signature)
    assert response.status_code == 403
    assert nothing_written(service)


def test_legacy_x_twilio_signature_header_with_the_signing_key_is_accepted(
    service: Service,
) -> None:
    params = sw_payload("voice_incoming", From=caller_number(304), To=SIGNALWIRE_SPA)
    response = sw_post(service, "/signalwire/voice", params, header="X-Twilio-Signature")
    assert response.status_code == 200
    assert "<Say>" in response.text


def test_number_on_the_other_provider_is_404_and_writes_nothing(service: Service) -> None:
    # SignalWire-signed, for the Twilio location's number.
    voice = sw_post(service, "/signalwire/voice", sw_payload("voice_incoming", To=TWILIO_SPA))
    assert voice.status_code == 404
    assert voice.headers["content-type"].startswith("application/xml")
    assert (
        f"no location is configured for {TWILIO_SPA} (glow-downtown uses twilio, not signalwire)"
        in voice.text
    )
    sms = sw_post(service, "/signalwire/sms", sw_payload("sms_inbound", To=TWILIO_SPA))
    assert sms.status_code == 404
    assert sms.text.endswith("<Response/>")
    # Twilio-signed, for the SignalWire location's number.
    twilio = service.post(
        "/twilio/voice", payload("voice_incoming", CallSid=new_call_sid(), To=SIGNALWIRE_SPA)
    )
    assert twilio.status_code == 404
    assert "glow-westside uses signalwire, not twilio" in twilio.text
    assert nothing_written(service)


def test_twilio_shaped_ids_are_400_on_signalwire(service: Service) -> None:
    params = sw_payload("voice_incoming", To=SIGNALWIRE_SPA, CallSid=new_call_sid())
    response = sw_post(service, "/signalwire/voice", params)
    assert response.status_code == 400
    assert "CallSid:" in response.text
    assert nothing_written(service)


def test_inbound_stop_on_signalwire_opts_out(service: Service) -> None:
    caller = caller_number(305)
    sw_miss(service, caller)
    wait_for(lambda: signalwire_texts(service, caller), what="text-back")
    stop = sw_payload("sms_inbound", From=caller, To=SIGNALWIRE_SPA, Body=" STOP ")
    response = sw_post(service, "/signalwire/sms", stop)
    assert response.status_code == 200
    assert response.text.endswith("<Response />")

    def opted_out() -> bool:
        found = service.scalar(select(Patient).where(Patient.phone == caller))
        return found is not None and found.opted_out_at is not None

    wait_for(opted_out, what="opt-out")
    conversation = service.scalar(select(Conversation))
    assert (conversation.is_open, conversation.close_reason) == (False, "opted_out")
    stored = service.scalar(
        select(ProviderEvent).where(
            ProviderEvent.kind == "sms", ProviderEvent.external_id == stop["MessageSid"]
        )
    )
    assert stored.provider == "signalwire"
    # A new miss from the same caller is screened out, and nothing more is sent.
    call_sid = sw_miss(service, caller)
    wait_for(
        lambda: service.scalar(select(Call.screening).where(Call.call_sid == call_sid)),
        what="screened",
    )
    assert service.scalar(select(Call.screening).where(Call.call_sid == call_sid)) == "opted_out"
    settle()
    texts = signalwire_texts(service, caller)
    assert len(texts) == 2  # the text-back, then the one STOP confirmation
    assert "unsubscribed" in texts[1].body


def test_signed_status_callbacks_from_signalwire_update_the_message(service: Service) -> None:
    assert service.signalwire is not None
    # The fake Space moves the text to sent, then delivered, POSTing a receipt signed with
    # the signing key in X-SignalWire-Signature at each step.
    service.signalwire.simulate_delivery = True
    caller = caller_number(306)
    sw_miss(service, caller)
    sent = wait_for(lambda: signalwire_texts(service, caller), what="text-back")[0]
    callbacks = service.signalwire.wait_for_status_callbacks(2, timeout=10)
    assert [c.status for c in callbacks] == ["sent", "delivered"]
    assert all(c.response_status == 204 for c in callbacks), callbacks
    wait_for(
        lambda: (
            service.scalar(select(Message.status).where(Message.provider_sid == sent.sid))
            == "delivered"
        ),
        what="delivered",
    )
    receipts = service.rows(
        select(ProviderEvent.provider).where(ProviderEvent.kind == "sms_status")
    )
    assert receipts == ["signalwire", "signalwire"]


def test_undelivered_receipt_with_an_error_code_is_recorded(service: Service) -> None:
    caller = caller_number(307)
    sw_miss(service, caller)
    sent = wait_for(lambda: signalwire_texts(service, caller), what="text-back")[0]
    wait_for(
        lambda: service.scalar(select(Message).where(Message.provider_sid == sent.sid)),
        what="sid recorded",
    )
    receipt = sw_payload(
        "sms_status_delivered",
        MessageSid=sent.sid,
        SmsSid=sent.sid,
        MessageStatus="undelivered",
        ErrorCode="30006",
        From=SIGNALWIRE_SPA,
        To=caller,
    )
    assert sw_post(service, "/signalwire/sms/status", receipt).status_code == 204
    wait_for(
        lambda: (
            service.scalar(select(Message.status).where(Message.provider_sid == sent.sid))
            == "undelivered"
        ),
        what="undelivered",
    )
    message = service.scalar(select(Message).where(Message.provider_sid == sent.sid))
    assert message.error_code == 30006
