"""The fake Twilio, over real HTTP, holding requests to Twilio's published OpenAPI contract."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from ringback.fakes.twilio import (
    BackgroundServer,
    FakeTwilio,
    FakeTwilioServer,
    FinalDeliveryStatus,
    RecordedMessage,
    create_fake_twilio_app,
    message_segments,
)
from ringback.fakes.twilio_contract import (
    API_V2010_SPEC,
    OPENAPI_DIR_ENV,
    TwilioContract,
    TwilioSpecNotFoundError,
    default_openapi_dir,
)

CALLER = "+13105550100"
CLINIC = "+13105550199"
OTHER_CALLER = "+14155552671"


@pytest.fixture
def server() -> Iterator[FakeTwilioServer]:
    with FakeTwilioServer(FakeTwilio.checked_against_spec()) as running:
        yield running


@pytest.fixture
def state(server: FakeTwilioServer) -> FakeTwilio:
    return server.state


@pytest.fixture
def client(server: FakeTwilioServer) -> Iterator[httpx.Client]:
    credentials = (server.state.account_sid, server.state.auth_token)
    with httpx.Client(base_url=server.url, auth=credentials, timeout=5.0) as http:
        yield http


def messages_path(state: FakeTwilio, account_sid: str | None = None) -> str:
    return f"/2010-04-01/Accounts/{account_sid or state.account_sid}/Messages.json"


def send(client: httpx.Client, state: FakeTwilio, **form: str) -> httpx.Response:
    fields = {"To": CALLER, "From": CLINIC, "Body": "Sorry we missed you!"} | form
    return client.post(messages_path(state), data={k: v for k, v in fields.items() if v})


def assert_twilio_error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "more_info", "status"}
    assert body["code"] == code
    assert body["status"] == status
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"
    return body


# --- Messages create ---------------------------------------------------------------------


def test_a_valid_message_is_accepted_and_recorded(client: httpx.Client, state: FakeTwilio) -> None:
    before = time.monotonic()
    response = send(client, state, StatusCallback="https://ringback.example/twilio/status")
    after = time.monotonic()

    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["sid"].startswith("SM")
    assert len(answer["sid"]) == 34
    assert answer["account_sid"] == state.account_sid
    assert (answer["to"], answer["from"]) == (CALLER, CLINIC)
    assert answer["body"] == "Sorry we missed you!"
    assert answer["status"] == "queued"
    assert answer["direction"] == "outbound-api"
    assert answer["num_segments"] == "1"
    assert answer["uri"] == f"{messages_path(state)[:-5]}/{answer['sid']}.json"
    created = datetime.strptime(answer["date_created"], "%a, %d %b %Y %H:%M:%S %z")
    assert abs(created - datetime.now(UTC)) < timedelta(seconds=5)

    [recorded] = state.messages
    assert recorded.sid == answer["sid"]
    assert recorded.status_callback == "https://ringback.example/twilio/status"
    assert before <= recorded.received_monotonic <= after
    assert state.violations == []


def test_the_message_resource_has_exactly_the_fields_of_the_spec(
    client: httpx.Client, state: FakeTwilio
) -> None:
    spec = json.loads((default_openapi_dir() / API_V2010_SPEC).read_text())
    schema = spec["components"]["schemas"]["api.v2010.account.message"]

    answer = send(client, state).json()

    assert set(answer) == set(schema["properties"])
    assert answer["status"] in spec["components"]["schemas"]["message_enum_status"]["enum"]


def test_a_messaging_service_can_stand_in_for_from(client: httpx.Client, state: FakeTwilio) -> None:
    response = send(client, state, From="", MessagingServiceSid="MG" + "ab" * 16)

    assert response.status_code == 201, response.text
    assert response.json()["from"] is None
    assert state.violations == []


@pytest.mark.parametrize(
    ("form", "field", "code"),
    [
        pytest.param({"Frm": CLINIC}, "'Frm'", 20001, id="unknown field"),
        pytest.param({"To": ""}, "'To'", 21604, id="missing To"),
        pytest.param({"Body": ""}, "'Body'", 21602, id="missing Body"),
        pytest.param({"From": ""}, "'From'", 21603, id="missing From"),
        pytest.param({"To": "3105550100"}, "'To'", 21211, id="To without +"),
        pytest.param({"To": "(310) 555-0100"}, "'To'", 21211, id="To in national format"),
        pytest.param({"From": "+1 310 555 0199"}, "'From'", 21212, id="From with spaces"),
        pytest.param({"Body": "x" * 1601}, "'Body'", 21617, id="Body over 1600"),
        pytest.param(
            {"StatusCallback": "/twilio/status"}, "'StatusCallback'", 21609, id="relative"
        ),
        pytest.param({"StatusCallback": "ftp://x.example/s"}, "'StatusCallback'", 21609, id="ftp"),
        pytest.param(
            {"StatusCallback": "https://ring_back.example/s"}, "'StatusCallback'", 21609, id="_"
        ),
        pytest.param({"ProvideFeedback": "yes"}, "'ProvideFeedback'", 70002, id="boolean"),
        pytest.param({"ValidityPeriod": "ten"}, "'ValidityPeriod'", 70002, id="integer"),
        pytest.param({"ContentRetention": "keep"}, "'ContentRetention'", 70002, id="enum $ref"),
        pytest.param({"MessagingServiceSid": "MG123"}, "'MessagingServiceSid'", 70002, id="sid"),
    ],
)
def test_a_message_breaking_the_contract_is_refused_naming_the_field(
    client: httpx.Client, state: FakeTwilio, form: dict[str, str], field: str, code: int
) -> None:
    response = send(client, state, **form)

    body = assert_twilio_error(response, 400, code)
    assert field in body["message"]
    assert state.violations
    assert any(field in violation for violation in state.violations)
    assert state.messages == []


def test_repeating_a_single_valued_field_is_a_violation(
    client: httpx.Client, state: FakeTwilio
) -> None:
    form = {"To": [CALLER, OTHER_CALLER], "From": CLINIC, "Body": "hi"}

    response = client.post(messages_path(state), data=form)

    assert response.status_code == 400
    assert any("'To' sent 2 times" in violation for violation in state.violations)


def test_a_json_body_is_refused(client: httpx.Client, state: FakeTwilio) -> None:
    response = client.post(messages_path(state), json={"To": CALLER, "From": CLINIC, "Body": "x"})

    assert response.status_code == 400
    assert any("application/json" in violation for violation in state.violations)


@pytest.mark.parametrize("credentials", ["none", "other account", "wrong token"])
def test_wrong_credentials_are_refused_as_twilio_does(
    server: FakeTwilioServer, credentials: str
) -> None:
    state = server.state
    auth = {
        "none": None,
        "other account": ("AC" + "0" * 32, state.auth_token),
        "wrong token": (state.account_sid, "0" * 32),
    }[credentials]
    with httpx.Client(base_url=server.url, auth=auth) as stranger:
        response = send(stranger, state)

    body = assert_twilio_error(response, 401, 20003)
    assert "Authorization" in body["message"] or "AccountSid" in body["message"]
    assert state.auth_token not in body["message"]
    assert state.messages == []
    assert state.violations


@pytest.mark.parametrize(
    "account_sid",
    [
        pytest.param("ACnot-a-sid", id="malformed"),
        pytest.param("AC" + "f" * 32, id="another account"),
    ],
)
def test_a_bad_account_sid_in_the_path_is_refused(
    client: httpx.Client, state: FakeTwilio, account_sid: str
) -> None:
    response = client.post(
        messages_path(state, account_sid), data={"To": CALLER, "From": CLINIC, "Body": "x"}
    )

    assert response.status_code in (401, 404)
    assert any("'AccountSid'" in violation for violation in state.violations)
    assert state.messages == []


def test_unknown_paths_and_methods_are_refused(client: httpx.Client, state: FakeTwilio) -> None:
    assert_twilio_error(client.get("/2010-04-01/Nothing.json"), 404, 20404)
    assert_twilio_error(client.put(messages_path(state)), 405, 20004)
    # In the spec, but not something the fake serves: flagged so a test cannot miss it.
    calls = f"/2010-04-01/Accounts/{state.account_sid}/Calls.json"
    assert_twilio_error(client.get(calls), 404, 20404)

    assert len(state.violations) == 3
    assert "does not implement" in state.violations[-1]


# --- Messages list and fetch ---------------------------------------------------------------


def test_messages_are_listed_newest_first_and_filtered(
    client: httpx.Client, state: FakeTwilio
) -> None:
    first = send(client, state, Body="one").json()["sid"]
    second = send(client, state, Body="two").json()["sid"]
    other = send(client, state, To=OTHER_CALLER, Body="three").json()["sid"]
    today = datetime.now(UTC).date().isoformat()
    a_minute_ago = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def listed(**query: str) -> list[str]:
        response = client.get(messages_path(state), params=query)
        assert response.status_code == 200, response.text
        return [message["sid"] for message in response.json()["messages"]]

    assert listed() == [other, second, first]
    assert listed(To=CALLER) == [second, first]
    assert listed(To=OTHER_CALLER, From=CLINIC) == [other]
    assert listed(From=OTHER_CALLER) == []
    assert listed(**{"DateSent>": a_minute_ago, "To": CALLER}) == [second, first]
    assert listed(**{"DateSent<": a_minute_ago}) == []
    assert listed(DateSent=today) == [other, second, first]
    assert listed(**{"DateSent>": "2999-01-01"}) == []
    assert state.violations == []


def test_the_list_pages_like_twilio(client: httpx.Client, state: FakeTwilio) -> None:
    sids = [send(client, state, Body=f"n{index}").json()["sid"] for index in range(3)]

    page = client.get(messages_path(state), params={"PageSize": "2"}).json()
    assert [m["sid"] for m in page["messages"]] == [sids[2], sids[1]]
    assert (page["page"], page["page_size"], page["start"], page["end"]) == (0, 2, 0, 1)
    assert page["previous_page_uri"] is None
    assert page["next_page_uri"] is not None

    following = client.get(page["next_page_uri"]).json()
    assert [m["sid"] for m in following["messages"]] == [sids[0]]
    assert following["next_page_uri"] is None
    assert state.violations == []


def test_a_bad_list_filter_is_refused(client: httpx.Client, state: FakeTwilio) -> None:
    response = client.get(messages_path(state), params={"Status": "queued", "PageSize": "0"})

    assert response.status_code == 400
    assert any("'Status'" in violation for violation in state.violations)
    assert any("'PageSize'" in violation for violation in state.violations)


def test_a_message_is_fetched_by_sid(client: httpx.Client, state: FakeTwilio) -> None:
    sid = send(client, state).json()["sid"]
    base = messages_path(state)[: -len(".json")]

    assert client.get(f"{base}/{sid}.json").json()["sid"] == sid
    assert_twilio_error(client.get(f"{base}/SM{'0' * 32}.json"), 404, 20404)
    assert state.violations == []
    client.get(f"{base}/XX{'0' * 32}.json")
    assert any("'Sid'" in violation for violation in state.violations)


# --- Lookup v2 ---------------------------------------------------------------------------


def test_lookup_answers_the_configured_line_type(client: httpx.Client, state: FakeTwilio) -> None:
    state.line_types[OTHER_CALLER] = "landline"

    def line_type(number: str) -> dict[str, Any]:
        response = client.get(
            f"/v2/PhoneNumbers/{number}", params={"Fields": "line_type_intelligence"}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    mobile = line_type(CALLER)
    assert mobile["valid"] is True
    assert mobile["phone_number"] == CALLER
    assert (mobile["country_code"], mobile["calling_country_code"]) == ("US", "1")
    assert mobile["national_format"] == "(310) 555-0100"
    assert mobile["line_type_intelligence"]["type"] == "mobile"
    assert mobile["line_type_intelligence"]["error_code"] is None
    assert mobile["url"].endswith(f"/v2/PhoneNumbers/{CALLER}")
    assert line_type(OTHER_CALLER)["line_type_intelligence"]["type"] == "landline"
    # %2B is how a careful client escapes the '+'; it is the same number.
    assert line_type("%2B14155552671")["line_type_intelligence"]["type"] == "landline"
    assert state.violations == []


def test_lookup_of_a_number_that_cannot_exist(client: httpx.Client, state: FakeTwilio) -> None:
    answer = client.get("/v2/PhoneNumbers/+1999555010", params={"Fields": "validation"}).json()

    assert answer["valid"] is False
    assert answer["validation_errors"]
    assert answer["line_type_intelligence"] is None


def test_lookup_refuses_an_unknown_data_package(client: httpx.Client, state: FakeTwilio) -> None:
    response = client.get(f"/v2/PhoneNumbers/{CALLER}", params={"Fields": "line_type"})

    assert response.status_code == 400
    assert any("'Fields'" in violation for violation in state.violations)


# --- scripted failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [(500, 20500), (503, 20503), (429, 20429)],
)
def test_fail_next_answers_twilio_errors_then_recovers(
    client: httpx.Client, state: FakeTwilio, status: int, code: int
) -> None:
    state.fail_next(2, status=status, code=code)

    assert_twilio_error(send(client, state), status, code)
    assert_twilio_error(send(client, state), status, code)
    assert send(client, state).status_code == 201
    assert len(state.messages) == 1
    assert [request.status_code for request in state.requests] == [status, status, 201]


def test_rate_limiting_can_say_when_to_retry(client: httpx.Client, state: FakeTwilio) -> None:
    state.rate_limit_next(retry_after_seconds=3)

    response = send(client, state)

    body = assert_twilio_error(response, 429, 20429)
    assert body["message"] == "Too Many Requests"
    assert response.headers["Retry-After"] == "3"


def test_fail_next_can_target_lookups(client: httpx.Client, state: FakeTwilio) -> None:
    state.fail_next(status=503, code=20503, operation="lookup")

    assert send(client, state).status_code == 201
    lookup = client.get(f"/v2/PhoneNumbers/{CALLER}")
    assert_twilio_error(lookup, 503, 20503)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (21610, "Attempt to send to unsubscribed recipient"),
        (21211, "The 'To' number is not a valid phone number."),
        (21614, "'To' number is not a valid mobile number"),
    ],
)
def test_fail_for_refuses_one_number_permanently(
    client: httpx.Client, state: FakeTwilio, code: int, message: str
) -> None:
    state.fail_for(CALLER, code)

    for _ in range(2):
        body = assert_twilio_error(send(client, state), 400, code)
        assert body["message"] == message
    assert send(client, state, To=OTHER_CALLER).status_code == 201


def test_a_slow_twilio_that_the_client_gives_up_on_sends_nothing(
    server: FakeTwilioServer, client: httpx.Client, state: FakeTwilio
) -> None:
    state.delay_seconds = 0.3
    started = time.monotonic()
    assert send(client, state).status_code == 201
    assert time.monotonic() - started >= 0.3

    impatient = httpx.Client(base_url=server.url, auth=client.auth, timeout=0.1)
    with impatient, pytest.raises(httpx.ReadTimeout):
        send(impatient, state)
    time.sleep(0.4)

    assert len(state.messages) == 1
    assert state.requests[-1].status_code is None


def test_an_accepted_message_whose_answer_never_comes_can_be_found_again(
    server: FakeTwilioServer, client: httpx.Client, state: FakeTwilio
) -> None:
    state.hang_after_accepting()

    impatient = httpx.Client(base_url=server.url, auth=client.auth, timeout=0.2)
    with impatient, pytest.raises(httpx.ReadTimeout):
        send(impatient, state, Body="Did this go out?")

    [held] = state.wait_for_messages(1)
    listed = client.get(messages_path(state), params={"To": CALLER}).json()["messages"]
    assert [message["sid"] for message in listed] == [held.sid]
    assert send(client, state).status_code == 201  # only the next one was held


def test_on_message_sees_each_accepted_message(server: FakeTwilioServer) -> None:
    seen: list[RecordedMessage] = []
    server.state.on_message = seen.append
    with httpx.Client(
        base_url=server.url, auth=(server.state.account_sid, server.state.auth_token)
    ) as http:
        sid = send(http, server.state).json()["sid"]

    assert [message.sid for message in seen] == [sid]


def test_the_fake_can_be_mounted_under_a_prefix() -> None:
    state = FakeTwilio.checked_against_spec()
    app = Starlette(routes=[Mount("/demo/network", app=create_fake_twilio_app(state))])
    with BackgroundServer(app) as host:
        base = f"{host.url}/demo/network"
        auth = (state.account_sid, state.auth_token)
        with httpx.Client(base_url=base, auth=auth) as http:
            sid = send(http, state).json()["sid"]
            send(http, state)
            page = http.get(messages_path(state), params={"PageSize": "1"}).json()
            following = http.get(page["next_page_uri"]).json()
            lookup = http.get(f"/v2/PhoneNumbers/{CALLER}").json()

    assert page["messages"][0]["sid"] != sid
    assert following["messages"][0]["sid"] == sid
    assert lookup["url"] == f"{base}/v2/PhoneNumbers/{CALLER}"
    assert state.violations == []


# --- status callbacks --------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedCallback:
    url: str
    params: dict[str, str]
    signature: str


@pytest.fixture
def callback_receiver() -> Iterator[tuple[str, list[ReceivedCallback]]]:
    received: list[ReceivedCallback] = []
    lock = threading.Lock()

    async def status(request: Request) -> Response:
        form = await request.form()
        params = {name: str(value) for name, value in form.items()}
        with lock:
            received.append(
                ReceivedCallback(
                    str(request.url), params, request.headers.get("X-Twilio-Signature", "")
                )
            )
        return PlainTextResponse("", status_code=204)

    app = Starlette(routes=[Route("/twilio/status", status, methods=["POST"])])
    with BackgroundServer(app) as receiver:
        yield f"{receiver.url}/twilio/status?location=downtown", received


def test_status_callbacks_arrive_signed_and_in_order(
    callback_receiver: tuple[str, list[ReceivedCallback]],
) -> None:
    callback_url, received = callback_receiver
    state = FakeTwilio.checked_against_spec(simulate_delivery=True)
    state.delivery_step_seconds = 0.01
    with (
        FakeTwilioServer(state) as server,
        httpx.Client(base_url=server.url, auth=(state.account_sid, state.auth_token)) as http,
    ):
        sid = send(http, state, StatusCallback=callback_url).json()["sid"]
        attempts = state.wait_for_status_callbacks(2)

    assert [attempt.response_status for attempt in attempts] == [204, 204]
    assert [callback.params["MessageStatus"] for callback in received] == ["sent", "delivered"]
    validator = RequestValidator(state.auth_token)
    for callback in received:
        assert callback.url == callback_url
        assert validator.validate(callback.url, callback.params, callback.signature)
        assert callback.params["MessageSid"] == callback.params["SmsSid"] == sid
        assert callback.params["SmsStatus"] == callback.params["MessageStatus"]
        assert callback.params["AccountSid"] == state.account_sid
        assert (callback.params["From"], callback.params["To"]) == (CLINIC, CALLER)
        assert callback.params["ApiVersion"] == "2010-04-01"
        assert "ErrorCode" not in callback.params
    delivered = state.message(sid)
    assert delivered is not None
    assert delivered.status == "delivered"
    assert not RequestValidator("another token").validate(
        received[0].url, received[0].params, received[0].signature
    )


@pytest.mark.parametrize(
    ("outcome", "statuses"),
    [("undelivered", ["sent", "undelivered"]), ("failed", ["failed"])],
)
def test_a_scripted_delivery_failure_reports_its_error_code(
    callback_receiver: tuple[str, list[ReceivedCallback]],
    outcome: FinalDeliveryStatus,
    statuses: list[str],
) -> None:
    callback_url, received = callback_receiver
    state = FakeTwilio.checked_against_spec(simulate_delivery=True)
    state.delivery_step_seconds = 0.01
    state.set_delivery_outcome(CALLER, outcome, error_code=30006)
    with (
        FakeTwilioServer(state) as server,
        httpx.Client(base_url=server.url, auth=(state.account_sid, state.auth_token)) as http,
    ):
        send(http, state, StatusCallback=callback_url)
        state.wait_for_status_callbacks(len(statuses))

    assert [callback.params["MessageStatus"] for callback in received] == statuses
    assert received[-1].params["ErrorCode"] == "30006"
    assert state.messages[0].error_code == 30006


def test_without_simulated_delivery_no_callbacks_are_sent(
    client: httpx.Client, state: FakeTwilio, callback_receiver: tuple[str, list[ReceivedCallback]]
) -> None:
    callback_url, received = callback_receiver

    send(client, state, StatusCallback=callback_url)
    time.sleep(0.2)

    assert received == []
    assert state.messages[0].status == "queued"


# --- the official SDK --------------------------------------------------------------------


def test_the_official_twilio_sdk_passes_the_contract(
    server: FakeTwilioServer, state: FakeTwilio
) -> None:
    sdk = Client(state.account_sid, state.auth_token)
    sdk.api.base_url = server.url
    sdk.lookups.base_url = server.url

    sent = sdk.messages.create(to=CALLER, from_=CLINIC, body="Hi from the SDK")
    found = sdk.messages.list(
        to=CALLER, date_sent_after=datetime.now(UTC) - timedelta(minutes=5), limit=10
    )
    fetched = sdk.messages(sent.sid).fetch()
    number = sdk.lookups.v2.phone_numbers(CALLER).fetch(fields="line_type_intelligence")
    state.fail_for(OTHER_CALLER, 21610)
    with pytest.raises(TwilioRestException) as refused:
        sdk.messages.create(to=OTHER_CALLER, from_=CLINIC, body="x")

    assert [message.sid for message in found] == [sent.sid]
    assert fetched.body == "Hi from the SDK"
    assert number.line_type_intelligence["type"] == "mobile"
    assert (refused.value.status, refused.value.code) == (400, 21610)
    assert state.violations == []


# --- the contract on its own, on another endpoint ------------------------------------------

ACCOUNT = "AC" + "1" * 32
TOKEN = "secret-token"
AUTH = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"


@pytest.fixture(scope="module")
def api() -> TwilioContract:
    return TwilioContract.api_v2010()


def check(
    contract: TwilioContract,
    method: str,
    path: str,
    form: dict[str, list[str]] | None = None,
    query: dict[str, str] | None = None,
    authorization: str | None = AUTH,
) -> list[str]:
    return contract.check(method, path, query or {}, form, authorization, ACCOUNT, TOKEN)


def test_a_valid_call_passes(api: TwilioContract) -> None:
    form = {
        "To": ["+13105550100"],
        "From": ["+13105550199"],
        "Url": ["https://ringback.example/twiml"],
        "Method": ["POST"],
        "Timeout": ["20"],
        "Record": ["false"],
        "StatusCallbackEvent": ["initiated", "answered"],
    }

    assert check(api, "POST", CALLS, form) == []
    assert check(api, "POST", CALLS, {**form, "To": ["client:front-desk"]}) == []
    assert check(api, "POST", CALLS, {**form, "To": ["sip:desk@clinic.example"]}) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"From": []}, "'From'"),
        ({"Url": []}, "'Url'"),
        ({"Url": ["not a url"]}, "'Url'"),
        ({"Method": ["PUT"]}, "'Method'"),
        ({"Timeout": ["soon"]}, "'Timeout'"),
        ({"Record": ["yes"]}, "'Record'"),
        ({"Byoc": ["BYnothex"]}, "'Byoc'"),
        ({"Twiml": ["Say hello"]}, "'Twiml'"),
        ({"RingTimeout": ["5"]}, "'RingTimeout'"),
    ],
)
def test_a_call_breaking_the_contract_is_named(
    api: TwilioContract, change: dict[str, list[str]], field: str
) -> None:
    form = {"To": ["+13105550100"], "From": ["+13105550199"], "Url": ["https://x.example/t"]}
    form.update(change)
    form = {name: values for name, values in form.items() if values}

    violations = check(api, "POST", CALLS, form)

    assert violations
    assert any(field in violation for violation in violations), violations


def test_call_paths_queries_and_auth_are_checked(api: TwilioContract) -> None:
    call = f"/2010-04-01/Accounts/{ACCOUNT}/Calls/CA{'a' * 32}.json"

    assert check(api, "GET", call) == []
    assert check(api, "DELETE", call) == []
    assert any("'Sid'" in v for v in check(api, "GET", call.replace("CAa", "XXa")))
    assert check(api, "GET", CALLS, query={"Status": "completed", "PageSize": "20"}) == []
    assert any("'Status'" in v for v in check(api, "GET", CALLS, query={"Status": "done"}))
    assert any("'Sort'" in v for v in check(api, "GET", CALLS, query={"Sort": "asc"}))
    assert any("Authorization" in v for v in check(api, "GET", CALLS, authorization=None))
    assert any("Basic" in v for v in check(api, "GET", CALLS, authorization="Bearer abc"))
    assert check(api, "PATCH", CALLS) == [
        "PATCH /2010-04-01/Accounts/{AccountSid}/Calls.json: the spec allows only GET, POST"
    ]


def test_a_literal_path_wins_over_a_template(api: TwilioContract) -> None:
    local_numbers = f"/2010-04-01/Accounts/{ACCOUNT}/IncomingPhoneNumbers/Local.json"

    # ``.../{Sid}.json`` would reject "Local" as a SID; the literal path must match instead.
    assert check(api, "GET", local_numbers) == []


def test_every_example_in_the_spec_satisfies_the_spec() -> None:
    for spec_name in ("twilio_api_v2010.json", "twilio_lookups_v2.json"):
        path = default_openapi_dir() / spec_name
        document = json.loads(path.read_text())
        contract = TwilioContract.load(path)
        for template, item in document["paths"].items():
            for method, operation in item.items():
                if method not in ("get", "post", "put", "delete"):
                    continue
                for parameter in operation.get("parameters", []):
                    if parameter["in"] != "query":
                        continue
                    for example in parameter.get("examples", {}).values():
                        value = example["value"]
                        text = str(value).lower() if isinstance(value, bool) else str(value)
                        concrete = template.replace("{AccountSid}", ACCOUNT)
                        violations = [
                            v
                            for v in check(
                                contract, method.upper(), concrete, query={parameter["name"]: text}
                            )
                            if f"{parameter['name']!r}" in v
                        ]
                        assert violations == [], (template, parameter["name"], text)


def test_the_spec_is_loaded_once(api: TwilioContract) -> None:
    assert TwilioContract.api_v2010() is api
    assert TwilioContract.load(default_openapi_dir() / API_V2010_SPEC) is api


def test_the_spec_folder_can_be_moved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(OPENAPI_DIR_ENV, str(tmp_path))
    assert default_openapi_dir() == tmp_path

    monkeypatch.setenv(OPENAPI_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(TwilioSpecNotFoundError, match=OPENAPI_DIR_ENV):
        default_openapi_dir()


# --- segments ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("a" * 160, ("GSM-7", 1)),
        ("a" * 161, ("GSM-7", 2)),
        ("a" * 306, ("GSM-7", 2)),
        ("a" * 307, ("GSM-7", 3)),
        ("€" * 80, ("GSM-7", 1)),
        ("€" * 81, ("GSM-7", 2)),
        ("Café à 5 €", ("GSM-7", 1)),
        ("é" * 160, ("GSM-7", 1)),
        ("ç" * 70, ("UCS-2", 1)),
        ("ç" * 71, ("UCS-2", 2)),
        ("👍" * 35, ("UCS-2", 1)),
        ("👍" * 36, ("UCS-2", 2)),
        ("a" * 66 + "👍", ("UCS-2", 1)),
    ],
)
def test_segments_follow_the_encoding(body: str, expected: tuple[str, int]) -> None:
    assert message_segments(body) == expected
