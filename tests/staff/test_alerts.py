"""Staff alerts by email and team chat, end to end: signed webhooks drive an urgent message
or a handoff through the real app, queue and database; the email arrives at a real local
SMTP server (aiosmtpd) and the chat post at a real HTTP receiver."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ringback.config import ConfigError, load_locations, load_settings
from ringback.fakes.twilio import BackgroundServer
from ringback.integrations.chat import HttpChatWebhook
from ringback.integrations.email import SmtpEmailer
from ringback.logs import JsonFormatter
from ringback.models import Conversation
from ringback.phones import display
from ringback.ports import AlertDeliveryFailed
from tests.conftest import Service, free_port, settle, wait_for
from tests.support.phone import miss, text_in, texts_to
from tests.twilio_payloads import caller_number

STAFF_SMS = "+13105550102"
STAFF_EMAILS = ["frontdesk@glow.example", "owner@glow.example"]
HOOK_PATH = "/services/T000/B000/not-a-real-secret"
URGENT_TEXT = "my lip is really swollen and turning white after filler yesterday"


# --- a real SMTP server and a real webhook receiver ---------------------------------------


@dataclass
class LocalSmtp:
    """aiosmtpd on 127.0.0.1, recording what it accepts.

    ``defer_first`` RCPTs are answered ``451`` (try again later), as a greylisting server
    would; ``logins`` records AUTH attempts when ``credentials`` are required.
    """

    defer_first: int = 0
    credentials: tuple[str, str] | None = None
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    rcpt_calls: int = 0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        with self._lock:
            self.rcpt_calls += 1
            if self.rcpt_calls <= self.defer_first:
                return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append((envelope, parsed))
        return "250 Message accepted"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == self.credentials, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., LocalSmtp]]:
    controllers: list[Controller] = []

    def start(*, defer_first: int = 0, credentials: tuple[str, str] | None = None) -> LocalSmtp:
        inbox = LocalSmtp(defer_first=defer_first, credentials=credentials, port=free_port())
        extra: dict[str, Any] = {}
        if credentials is not None:
            # AUTH over plain SMTP on loopback, for the test only.
            extra = {"authenticator": inbox.authenticate, "auth_require_tls": False}
        controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **extra)
        controller.start()
        controllers.append(controller)
        return inbox

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Receiver:
    """A team chat's incoming webhook: answers 500 to the first ``fail_first`` posts."""

    fail_first: int = 0
    status: int = 200
    hits: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    url: str = ""

    async def hook(self, request: Request) -> Response:
        self.hits += 1
        if self.hits <= self.fail_first:
            return PlainTextResponse("upstream trouble", status_code=500)
        if self.status != 200:
            return PlainTextResponse("no_such_hook", status_code=self.status)
        self.content_types.append(request.headers.get("content-type", ""))
        self.posts.append(await request.json())
        return PlainTextResponse("ok")


@pytest.fixture
def chat_receiver() -> Iterator[Callable[..., Receiver]]:
    servers: list[BackgroundServer] = []

    def start(*, fail_first: int = 0, status: int = 200) -> Receiver:
        receiver = Receiver(fail_first=fail_first, status=status)
        app = Starlette(routes=[Route(HOOK_PATH, receiver.hook, methods=["POST"])])
        server = BackgroundServer(app).start()
        servers.append(server)
        receiver.url = server.url + HOOK_PATH
        return receiver

    yield start
    for server in servers:
        server.stop()


def alerting(
    *, emails: list[str] | None = None, webhook: str | None = None
) -> Callable[[dict[str, Any]], None]:
    def edit(config: dict[str, Any]) -> None:
        location = config["locations"][0]
        if emails is not None:
            location["staff_alert_emails"] = emails
        if webhook is not None:
            location["slack_webhook_url"] = webhook

    return edit


def latest_conversation(service: Service) -> Conversation:
    return service.scalar(select(Conversation).order_by(Conversation.id.desc()))


def start_thread(service: Service, caller: str) -> None:
    miss(service, caller)
    wait_for(lambda: texts_to(service, caller), what="text-back")


def ringback_log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    formatter = JsonFormatter()
    return [formatter.format(r) for r in caplog.records if r.name.startswith("ringback")]


# --- end to end ------------------------------------------------------------------------


def test_urgent_message_emails_the_thread_and_posts_to_chat_at_once(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],
    chat_receiver: Callable[..., Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    smtp, chat = smtp_server(), chat_receiver()
    service = make_service(
        edit=alerting(emails=STAFF_EMAILS, webhook=chat.url),
        settings_overrides={
            "RINGBACK_SMTP_URL": smtp.url,
            "RINGBACK_ALERT_FROM": "alerts@glow.example",
        },
    )
    caller = caller_number(300)
    start_thread(service, caller)
    text_in(service, caller, URGENT_TEXT)

    envelope, mail = wait_for(lambda: smtp.messages, what="alert email")[0]
    conv = latest_conversation(service)
    # Staff are authorised: the full number, written the way the nurse dials it.
    shown = display(caller)
    link = f"{service.public_url}/staff/conversations/{conv.id}"
    assert str(mail["Subject"]).startswith("URGENT")
    assert shown in str(mail["Subject"])
    assert "Glow Med Spa" in str(mail["Subject"])
    assert "swollen" not in str(mail["Subject"])
    assert sorted(envelope.rcpt_tos) == sorted(STAFF_EMAILS)
    assert [a.addr_spec for a in mail["To"].addresses] == STAFF_EMAILS
    assert envelope.mail_from == "alerts@glow.example"
    assert mail["Auto-Submitted"] == "auto-generated"
    body = mail.get_content()
    # The whole thread: the text-back, the patient's message and the safety reply.
    assert "What treatment" in body
    assert f"Patient: {URGENT_TEXT}" in body
    assert "911" in body
    assert body.index("What treatment") < body.index(URGENT_TEXT) < body.index("911")
    assert shown in body
    assert link in body

    post = wait_for(lambda: chat.posts, what="chat post")[0]
    assert chat.content_types == ["application/json"]
    assert set(post) == {"text"}
    assert post["text"].startswith("URGENT")
    assert shown in post["text"]
    assert link in post["text"]
    assert "swollen" not in post["text"]  # no message bodies in a third party's chat

    # SMS alerts still go, and nothing goes twice.
    wait_for(lambda: texts_to(service, STAFF_SMS), what="staff SMS alert")
    settle()
    assert len(smtp.messages) == 1
    assert chat.hits == 1

    lines = ringback_log_lines(caplog)
    assert any('"event": "staff_alert.emailed"' in line for line in lines)
    assert any('"event": "staff_alert.posted"' in line for line in lines)
    for line in lines:
        assert "swollen" not in line
        assert "frontdesk@glow.example" not in line
        assert HOOK_PATH not in line
        assert caller.removeprefix("+1") not in line


def test_handoff_email_carries_what_the_bot_captured_and_logs_in(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],
    chat_receiver: Callable[..., Receiver],
) -> None:
    # A password with the characters that must be percent-encoded in a URL.
    smtp = smtp_server(credentials=("alerts@glow.example", "p@ss:w/rd"))
    chat = chat_receiver()
    service = make_service(
        edit=alerting(emails=STAFF_EMAILS[:1], webhook=chat.url),
        settings_overrides={
            "RINGBACK_SMTP_URL": f"smtp://alerts%40glow.example:p%40ss%3Aw%2Frd@127.0.0.1:{smtp.port}"
        },
    )
    assert "p@ss" not in repr(service.runtime.settings)
    caller = caller_number(301)
    start_thread(service, caller)
    text_in(service, caller, "botox thursday morning, first time here. can someone call me though?")

    _, mail = wait_for(lambda: smtp.messages, what="handoff email")[0]
    assert smtp.logins == [("alerts@glow.example", "p@ss:w/rd")]
    subject = str(mail["Subject"])
    assert subject.startswith("Handoff (asked for person)")
    assert not subject.upper().startswith("URGENT")
    assert str(mail["From"]) == "ringback@localhost"
    body = mail.get_content()
    assert "Treatment: Botox" in body
    assert "Time: Thu Nov 26, 9:00 AM-12:00 PM" in body
    assert "New or returning: new" in body
    assert "can someone call me though?" in body
    assert "Someone from our team" in body  # the bot's handoff reply is in the thread

    text = wait_for(lambda: chat.posts, what="chat post")[0]["text"]
    assert text.startswith("Handoff (asked for person)")
    assert "Treatment: Botox" in text
    assert "Time: Thu Nov 26, 9:00 AM-12:00 PM" in text
    assert "New or returning: new" in text
    assert "call me" not in text
    conv = latest_conversation(service)
    assert (conv.status, conv.handoff_reason) == ("needs_staff", "asked_for_person")


def test_failing_receivers_are_retried_and_deliver_once(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],
    chat_receiver: Callable[..., Receiver],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    smtp = smtp_server(defer_first=2)  # greylisted twice
    chat = chat_receiver(fail_first=2)  # 500 twice
    service = make_service(
        edit=alerting(emails=STAFF_EMAILS[:1], webhook=chat.url),
        settings_overrides={"RINGBACK_SMTP_URL": smtp.url},
    )
    caller = caller_number(302)
    start_thread(service, caller)
    text_in(service, caller, URGENT_TEXT)
    # The patient's safety reply does not wait for the failing alerts.
    wait_for(lambda: len(texts_to(service, caller)) >= 2, what="urgent reply", timeout=5)

    # Retried after 1 s, then 2 s (plus the scheduler's tick).
    wait_for(lambda: chat.posts, what="chat post after retries", timeout=20)
    wait_for(lambda: smtp.messages, what="email after retries", timeout=20)
    settle(1.5)
    assert chat.hits == 3
    assert len(chat.posts) == 1
    assert smtp.rcpt_calls == 3
    assert len(smtp.messages) == 1
    assert str(smtp.messages[0][1]["Subject"]).startswith("URGENT")
    retrying = [line for line in ringback_log_lines(caplog) if "staff_alert.retrying" in line]
    assert len(retrying) == 4
    assert all(HOOK_PATH not in line for line in retrying)


def test_no_email_or_chat_alert_when_none_is_configured(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],
    chat_receiver: Callable[..., Receiver],
) -> None:
    smtp, chat = smtp_server(), chat_receiver()
    # The server knows an SMTP server, but the location names no addresses and no webhook.
    service = make_service(settings_overrides={"RINGBACK_SMTP_URL": smtp.url})
    assert service.runtime.deps.chat is None
    caller = caller_number(303)
    start_thread(service, caller)
    text_in(service, caller, URGENT_TEXT)
    wait_for(lambda: texts_to(service, STAFF_SMS), what="staff SMS alert")
    settle()
    assert smtp.messages == []
    assert smtp.rcpt_calls == 0
    assert chat.hits == 0


def test_addresses_without_an_smtp_server_are_skipped_with_a_warning(
    make_service: Callable[..., Service],
    smtp_server: Callable[..., LocalSmtp],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    smtp = smtp_server()
    service = make_service(edit=alerting(emails=STAFF_EMAILS))  # no RINGBACK_SMTP_URL
    assert service.runtime.deps.emailer is None
    caller = caller_number(304)
    start_thread(service, caller)
    text_in(service, caller, URGENT_TEXT)
    wait_for(lambda: texts_to(service, STAFF_SMS), what="staff SMS alert")
    settle()
    assert smtp.rcpt_calls == 0
    assert any(
        '"event": "staff_alert.email_not_configured"' in line for line in ringback_log_lines(caplog)
    )


# --- the adapters against real servers --------------------------------------------------


def test_chat_webhook_sorts_failures_into_retry_and_refused(
    chat_receiver: Callable[..., Receiver],
) -> None:
    webhook = HttpChatWebhook(timeout=2)
    try:
        failing = chat_receiver(fail_first=1)
        with pytest.raises(AlertDeliveryFailed) as retry:
            webhook.post(failing.url, "hello")
        assert retry.value.retry
        assert retry.value.detail == "webhook answered 500"
        webhook.post(failing.url, "hello")
        assert failing.posts == [{"text": "hello"}]

        busy = chat_receiver(status=429)
        with pytest.raises(AlertDeliveryFailed) as limited:
            webhook.post(busy.url, "hello")
        assert limited.value.retry  # rate limited: slow down and try again

        gone = chat_receiver(status=404)
        with pytest.raises(AlertDeliveryFailed) as refused:
            webhook.post(gone.url, "hello")
        assert not refused.value.retry

        with pytest.raises(AlertDeliveryFailed) as unreachable:
            webhook.post(f"http://127.0.0.1:{free_port()}{HOOK_PATH}", "hello")
        assert unreachable.value.retry
        assert HOOK_PATH not in str(unreachable.value)
    finally:
        webhook.close()


def test_smtp_emailer_failures_are_typed_and_keep_the_password_out(
    smtp_server: Callable[..., LocalSmtp],
) -> None:
    down = load_settings(RINGBACK_SMTP_URL=f"smtp://u:hunter2@127.0.0.1:{free_port()}")
    assert down.smtp_server is not None
    with pytest.raises(AlertDeliveryFailed) as unreachable:
        SmtpEmailer(down.smtp_server, "ringback@localhost", timeout=2).send(
            ["a@b.example"], "s", "b"
        )
    assert unreachable.value.retry
    assert "hunter2" not in str(unreachable.value)

    smtp = smtp_server(credentials=("u", "right"))
    wrong = load_settings(RINGBACK_SMTP_URL=f"smtp://u:wrong@127.0.0.1:{smtp.port}")
    assert wrong.smtp_server is not None
    with pytest.raises(AlertDeliveryFailed) as refused:
        SmtpEmailer(wrong.smtp_server, "ringback@localhost", timeout=2).send(
            ["a@b.example"], "s", "b"
        )
    assert not refused.value.retry
    assert "wrong" not in str(refused.value)
    assert smtp.messages == []


# --- configuration ------------------------------------------------------------------------


def locations_with(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "locations.yaml"
    path.write_text(
        'locations:\n  - id: glow\n    name: Glow\n    phone_number: "+13105550100"\n' + extra
    )
    return path


def test_location_alert_keys_load_and_keep_the_webhook_out_of_reprs(tmp_path: Path) -> None:
    path = locations_with(
        tmp_path,
        '    staff_alert_emails: [frontdesk@glow.example, " owner@glow.example "]\n'
        f"    slack_webhook_url: https://hooks.slack.com{HOOK_PATH}\n",
    )
    location = load_locations(path).get("glow")
    assert location is not None
    assert location.staff_alert_emails == ("frontdesk@glow.example", "owner@glow.example")
    assert location.slack_webhook_url == f"https://hooks.slack.com{HOOK_PATH}"
    assert HOOK_PATH not in repr(location)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            "    staff_alert_emails: [frontdesk@glow.example, front desk]\n",
            "locations[0](glow).staff_alert_emails[1]: expected an email address like "
            "frontdesk@example.com, got 'front desk'",
        ),
        (
            "    staff_alert_emails: frontdesk@glow.example\n",
            "locations[0](glow).staff_alert_emails: Input should be a valid tuple",
        ),
        (
            "    slack_webhook_url: hooks.slack.com/services/T0/B0/x\n",
            "locations[0](glow).slack_webhook_url: expected an http(s) URL",
        ),
    ],
)
def test_bad_alert_keys_name_the_key(tmp_path: Path, extra: str, expected: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_locations(locations_with(tmp_path, extra))
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://alerts.example:587", ("alerts.example", 587, "none", None)),
        (
            "smtp+starttls://me%40x.example:pw@mail.example",
            ("mail.example", 587, "starttls", "me@x.example"),
        ),
        ("smtps://me:pw@mail.example", ("mail.example", 465, "tls", "me")),
        ("smtp://relay", ("relay", 25, "none", None)),
    ],
)
def test_smtp_url_schemes(url: str, expected: tuple[str, int, str, str | None]) -> None:
    server = load_settings(RINGBACK_SMTP_URL=url).smtp_server
    assert server is not None
    assert (server.host, server.port, server.security, server.username) == expected
    assert "pw" not in repr(server)
    assert "pw" not in str(server)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"RINGBACK_SMTP_URL": "http://user:hunter2@mail.example"},
            "RINGBACK_SMTP_URL: expected smtp://, smtp+starttls:// or smtps://",
        ),
        (
            {"RINGBACK_SMTP_URL": "smtp://user:hunter2@mail.example?starttls=true"},
            "RINGBACK_SMTP_URL: expected smtp://",
        ),
        ({"RINGBACK_SMTP_URL": "smtp://user:hunter2@mail.example:0x1"}, "RINGBACK_SMTP_URL"),
        ({"RINGBACK_ALERT_FROM": "Ringback"}, "RINGBACK_ALERT_FROM: expected an email address"),
    ],
)
def test_bad_alert_settings_name_the_variable_and_hide_the_password(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(**env)
    assert expected in str(error.value)
    assert "hunter2" not in str(error.value)
