"""deploy/systemd: the units pass ``systemd-analyze verify``, and their ExecStart commands,
run as systemd would run them (the unit's command line, the example environment file with
this test's database, queue and fake Twilio), migrate, serve a signed missed call and send
its text-back, then stop on SIGTERM within the unit's TimeoutStopSec.

systemd itself does not run here (no PID 1 systemd in CI), so the sandboxing lines
(ProtectSystem=, PrivateTmp=, ...) are checked by ``verify`` only, not exercised."""

from __future__ import annotations

import shlex
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from twilio.request_validator import RequestValidator

from ringback.config import Settings
from tests.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    DEMO_LOCATIONS,
    QUEUE,
    REDIS_URL,
    free_port,
    wait_for,
)
from tests.support.deploy import (
    DEPLOY,
    INSTALLED_RINGBACK,
    UNITS,
    read_env_file,
    read_unit,
    unit_value,
)
from tests.support.phone import FRONT_DESK_TO
from tests.twilio_payloads import caller_number, new_call_sid, payload

UNIT_NAMES = ["ringback-migrate.service", "ringback-web@.service", "ringback-worker.service"]


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    ringback = Path(sys.executable).parent / "ringback"
    assert ringback.exists(), f"{ringback}: the ringback command is not installed"
    # verify checks that ExecStart's program exists: point it at this install's.
    for name in UNIT_NAMES:
        text = (UNITS / name).read_text()
        assert INSTALLED_RINGBACK in text
        (tmp_path / name).write_text(text.replace(INSTALLED_RINGBACK, str(ringback)))
    instances = ["ringback-migrate.service", "ringback-web@8000.service", "ringback-worker.service"]
    result = subprocess.run(
        [analyze, "verify", *instances],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings to systemd: none allowed here.
    assert result.stdout + result.stderr == ""


def test_units_order_migrations_before_web_and_workers() -> None:
    migrate = read_unit(UNITS / "ringback-migrate.service")
    assert unit_value(migrate, "Service", "Type") == "oneshot"
    for name in ("ringback-web@.service", "ringback-worker.service"):
        unit = read_unit(UNITS / name)
        assert "ringback-migrate.service" in unit_value(unit, "Unit", "Requires").split()
        assert "ringback-migrate.service" in unit_value(unit, "Unit", "After").split()
        assert unit_value(unit, "Service", "Restart") == "always"
        assert "--no-migrate" in unit_value(unit, "Service", "ExecStart") or (
            name == "ringback-worker.service"
        )
    for name in UNIT_NAMES:
        unit = read_unit(UNITS / name)
        assert unit_value(unit, "Service", "User") == "ringback"
        assert unit_value(unit, "Service", "EnvironmentFile") == "/etc/ringback/ringback.env"


def command_of(name: str, instance: str = "") -> list[str]:
    """The unit's ExecStart, with ``%i`` filled in and the installed program replaced by
    this checkout's ``python -m ringback.cli``."""
    argv = shlex.split(unit_value(read_unit(UNITS / name), "Service", "ExecStart"))
    assert argv[0] == INSTALLED_RINGBACK
    return [sys.executable, "-m", "ringback.cli", *(a.replace("%i", instance) for a in argv[1:])]


@pytest.fixture
def unit_environment(
    fresh_database: Callable[[], str], fake_twilio: object, tmp_path: Path
) -> dict[str, str]:
    """deploy/ringback.env.example with this test's database, queue, data and fake Twilio."""
    example = read_env_file(DEPLOY / "ringback.env.example")
    Settings.model_validate(example)  # the example itself is a valid environment
    queue = REDIS_URL if QUEUE == "redis" else f"sqlite:///{tmp_path / 'queue.db'}"
    fake_url = fake_twilio.url  # type: ignore[attr-defined]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"),
        **example,
        "RINGBACK_CONFIG": str(DEMO_LOCATIONS),
        "RINGBACK_DATA_DIR": str(tmp_path / "data"),
        "RINGBACK_DATABASE_URL": fresh_database(),
        "RINGBACK_QUEUE_URL": queue,
        "RINGBACK_QUEUE_NAME": f"rb-{uuid.uuid4().hex[:8]}",
        "RINGBACK_WORKERS": "2",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": fake_url,
        "TWILIO_LOOKUP_BASE_URL": fake_url,
    }
    return env


def test_unit_commands_migrate_serve_and_send_then_stop_on_sigterm(
    unit_environment: dict[str, str], fake_twilio: object, tmp_path: Path
) -> None:
    env = unit_environment
    port = free_port()
    env["RINGBACK_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    migrate = subprocess.run(
        command_of("ringback-migrate.service"),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert "database at revision" in migrate.stdout

    processes: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, instance in (
            ("ringback-web@.service", str(port)),
            ("ringback-worker.service", ""),
        ):
            log = (tmp_path / f"{name}.log").open("wb")
            processes.append(
                (
                    name,
                    subprocess.Popen(
                        command_of(name, instance), env=env, stdout=log, stderr=subprocess.STDOUT
                    ),
                )
            )
        base = env["RINGBACK_PUBLIC_URL"]

        def healthy() -> bool:
            try:
                return httpx.get(base + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout=30, what="the web unit's /healthz")

        caller = caller_number(42)
        call_sid = new_call_sid()
        for path, params in (
            ("/twilio/voice", payload("voice_incoming", CallSid=call_sid, From=caller)),
            (
                "/twilio/voice/dial-result",
                payload("dial_result_no_answer", CallSid=call_sid, From=caller, To=FRONT_DESK_TO),
            ),
        ):
            signature = RequestValidator(AUTH_TOKEN).compute_signature(base + path, params)
            answer = httpx.post(
                base + path, data=params, headers={"X-Twilio-Signature": signature}, timeout=10
            )
            assert answer.status_code == 200, answer.text
        state = fake_twilio.state  # type: ignore[attr-defined]
        wait_for(
            lambda: [m for m in state.messages if m.to == caller],
            timeout=20,
            what="the text-back sent by the units' processes",
        )
    finally:
        for _, process in processes:
            process.send_signal(signal.SIGTERM)  # systemd's default KillSignal
        timeout = float(
            unit_value(read_unit(UNITS / "ringback-worker.service"), "Service", "TimeoutStopSec")
        )
        for name, process in processes:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                raise AssertionError(f"{name}: still running {timeout} s after SIGTERM") from None
    # systemd counts an exit by SIGTERM as clean (uvicorn re-raises it after shutting down).
    for name, process in processes:
        log = (tmp_path / f"{name}.log").read_text()
        assert process.returncode in (0, -signal.SIGTERM), (name, log[-2000:])
        assert "Traceback" not in log, (name, log[-2000:])
