"""A clinic's first run, end to end: a fresh install, ``ringback init``, ``ringback twilio
connect`` against a (fake) Twilio account, ``ringback serve``, sign in with the account
``init`` made, a signed missed call to the URL ``connect`` set, and the text-back in the
inbox. One test, through the real commands and a real browser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, expect
from twilio.request_validator import RequestValidator

from ringback.fakes.twilio import FakeTwilioServer
from tests.conftest import ACCOUNT_SID, AUTH_TOKEN, QUEUE, free_port
from tests.support.browser import Console, assert_accessible, open_context
from tests.support.cli import ringback
from tests.twilio_payloads import new_call_sid, payload

SPA_NUMBER = "+14155550142"
FRONT_DESK = "+14155550143"
CALLER = "+12135550188"
OWNER_EMAIL = "ana@bloom.example"
OWNER_PASSWORD = "first run password 1"
PUBLIC_URL = "https://bloom.example.com"


@pytest.fixture
def install(
    tmp_path: Path, database_url: str, queue_url: str, fake_twilio: FakeTwilioServer
) -> dict[str, str]:
    """The environment of a fresh install that talks to the fake Twilio account."""
    env = {
        "RINGBACK_CONFIG": str(tmp_path / "ringback.yaml"),
        "RINGBACK_DATA_DIR": str(tmp_path / "var"),
        "RINGBACK_DATABASE_URL": database_url,
        "RINGBACK_QUEUE_URL": queue_url,
        "RINGBACK_QUEUE_NAME": f"first-run-{os.getpid()}-{free_port()}",
        "RINGBACK_PUBLIC_URL": PUBLIC_URL,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": fake_twilio.url,
        "TWILIO_LOOKUP_BASE_URL": fake_twilio.url,
    }
    return env


def serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ringback.cli", "serve", "--port", str(port)]
    if QUEUE == "redis":
        command.append("--worker")  # one process runs the jobs, as a small install would
    process = subprocess.Popen(
        command,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"ringback serve exited with {process.returncode}")
        time.sleep(0.2)
    process.kill()
    raise AssertionError("ringback serve did not answer /healthz within 30 s")


def post_as_twilio(base: str, webhook_url: str, params: dict[str, str]) -> httpx.Response:
    """POST what Twilio would send to ``webhook_url`` (signed for that URL) to ``base``."""
    signature = RequestValidator(AUTH_TOKEN).compute_signature(webhook_url, params)
    path = urlsplit(webhook_url).path
    return httpx.post(
        base + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
    )


def test_first_run_from_init_to_the_text_back_in_the_inbox(
    install: dict[str, str], fake_twilio: FakeTwilioServer, browser: Browser
) -> None:
    number_sid = fake_twilio.state.add_number(SPA_NUMBER, friendly_name="Bloom main line")

    init = ringback(
        "init",
        "--no-input",
        "--name",
        "Bloom Aesthetics",
        "--number",
        SPA_NUMBER,
        "--timezone",
        "America/Los_Angeles",
        "--hours",
        "daily 00:00-24:00",
        "--front-desk",
        FRONT_DESK,
        "--owner-email",
        OWNER_EMAIL,
        "--owner-name",
        "Ana Ruiz",
        "--password-stdin",
        stdin=OWNER_PASSWORD + "\n",
        env=install,
    )
    assert init.returncode == 0, init.stderr
    checked = ringback("check-config", "--strict", env=install)
    assert checked.returncode == 0, checked.stderr

    connect = ringback("twilio", "connect", env=install)
    assert connect.returncode == 0, connect.stderr
    assert f"{SPA_NUMBER} (bloom-aesthetics): changed and verified" in connect.stdout
    configured = fake_twilio.state.number(number_sid)
    assert configured is not None
    voice_url = str(configured["voice_url"])
    assert voice_url == f"{PUBLIC_URL}/twilio/voice"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(install, port)
    try:
        context = open_context(browser, 1280, 900, device_scale_factor=1)
        page = context.new_page()
        console = Console()
        page.on("console", console.message)
        page.on("pageerror", console.page_error)
        page.goto(f"{base}/staff")
        page.get_by_label("Email").fill(OWNER_EMAIL)
        page.get_by_label("Password").fill(OWNER_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Inbox")

        # Twilio calls the voice URL `connect` set, then the Dial's action when nobody answers.
        call_sid = new_call_sid()
        call = {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "From": CALLER, "To": SPA_NUMBER}
        voice = post_as_twilio(base, voice_url, payload("voice_incoming", **call))
        assert voice.status_code == 200, voice.text
        assert FRONT_DESK in voice.text  # the front desk rings first
        result = post_as_twilio(
            base,
            f"{PUBLIC_URL}/twilio/voice/dial-result",
            payload("dial_result_no_answer", **call, DialCallStatus="no-answer"),
        )
        assert result.status_code == 200, result.text

        (sent,) = fake_twilio.state.wait_for_messages(1, timeout=20)
        assert sent.to == CALLER
        assert sent.from_ == SPA_NUMBER
        assert "Bloom Aesthetics" in sent.body

        page.reload()
        page.get_by_role("link", name="With the bot 1").click()
        card = page.get_by_text("(213) 555-0188").first
        expect(card).to_be_visible(timeout=15_000)
        card.click()
        expect(page.get_by_text(sent.body).first).to_be_visible()
        assert_accessible(page, "first conversation")
        icon = httpx.get(f"{base}/favicon.ico", follow_redirects=True, timeout=5)
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/svg+xml"
        assert console.errors == []
        context.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
