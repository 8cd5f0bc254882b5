"""Real parts for every test: a migrated database (SQLite or PostgreSQL), a real huey queue
(SQLite or Redis), the real app over HTTP, webhooks signed the way Twilio signs them, and a
fake Twilio REST API that checks each request against Twilio's OpenAPI description.

Backends come from the environment, so CI runs the same suite on each pair:

* ``RINGBACK_TEST_DATABASE``: ``sqlite`` (default) or ``postgres``
* ``RINGBACK_TEST_QUEUE``: ``sqlite`` (default) or ``redis``
* ``RINGBACK_TEST_PG_URL`` / ``RINGBACK_TEST_REDIS_URL`` to point at other servers.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
import yaml
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from ringback.app import create_app
from ringback.config import Locations, Settings, load_locations
from ringback.db import Base, make_engine
from ringback.fakes.twilio import FakeTwilio, FakeTwilioServer
from ringback.runtime import Runtime, build_runtime
from ringback.schema import upgrade
from ringback.telephony.senders import build_telephony

REPO = Path(__file__).resolve().parents[1]
DEMO_LOCATIONS = REPO / "src" / "ringback" / "demo" / "locations.yaml"
ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
# A SignalWire project (Space URL points at the fake_signalwire server when asked for).
SIGNALWIRE_PROJECT_ID = "5f0c7a4e-1b2d-4c3e-8f9a-0b1c2d3e4f5a"
SIGNALWIRE_API_TOKEN = "PT-test-api-token-0123456789"
SIGNALWIRE_SIGNING_KEY = "PSK_test-signing-key-abcdef"
DATABASE = os.environ.get("RINGBACK_TEST_DATABASE", "sqlite")
QUEUE = os.environ.get("RINGBACK_TEST_QUEUE", "sqlite")
PG_URL = os.environ.get("RINGBACK_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("RINGBACK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

# A Tuesday at 10:00 in Los Angeles: the demo spa is open.
OPEN_HOURS = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
# The same Tuesday at 22:00 local: closed.
AFTER_HOURS = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


class TestClock:
    """Wall time that starts where a test says and runs at real speed (jobs need it to move)."""

    __test__ = False

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.offset = timedelta()
        self._t0 = time.monotonic()

    def __call__(self) -> datetime:
        return self.start + self.offset + timedelta(seconds=time.monotonic() - self._t0)

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


# --- database --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _template_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if DATABASE == "postgres":
        name = f"ringback_t_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = PG_URL.rsplit("/", 1)[0] + "/" + name
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    elif DATABASE == "sqlite":
        path = tmp_path_factory.mktemp("template") / "ringback.db"
        engine = make_engine(f"sqlite:///{path}")
        upgrade(engine)
        engine.dispose()
        yield str(path)
    else:
        raise pytest.UsageError(
            f"RINGBACK_TEST_DATABASE must be sqlite or postgres, not {DATABASE}"
        )


@pytest.fixture
def database_url(_template_database: str, tmp_path: Path) -> str:
    """A migrated, empty database for this test."""
    if DATABASE == "postgres":
        engine = sa.create_engine(_template_database)
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return _template_database
    path = tmp_path / "ringback.db"
    shutil.copy(_template_database, path)
    return f"sqlite:///{path}"


@pytest.fixture
def queue_url(tmp_path: Path) -> str:
    if QUEUE == "redis":
        return REDIS_URL
    if QUEUE == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    raise pytest.UsageError(f"RINGBACK_TEST_QUEUE must be sqlite or redis, not {QUEUE}")


# --- fake Twilio -----------------------------------------------------------------------


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilioServer]:
    state = FakeTwilio.checked_against_spec(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)
    with FakeTwilioServer(state) as server:
        yield server
    assert state.violations == [], f"requests Twilio would refuse: {state.violations}"


@pytest.fixture
def fake_signalwire() -> Iterator[FakeTwilioServer]:
    """The fake playing a SignalWire Space; ``make_service(signalwire=True)`` uses it."""
    state = FakeTwilio.signalwire(
        project_id=SIGNALWIRE_PROJECT_ID,
        api_token=SIGNALWIRE_API_TOKEN,
        signing_key=SIGNALWIRE_SIGNING_KEY,
    )
    with FakeTwilioServer(state) as server:
        yield server
    assert state.violations == [], f"requests SignalWire would refuse: {state.violations}"


# --- the service -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any, port: int) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="on",
                # As `ringback serve`: forwarded headers are ringback.guards' to judge.
                proxy_headers=False,
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@dataclass
class Service:
    """The running service, and what a test needs to drive and inspect it."""

    url: str
    public_url: str
    runtime: Runtime
    config_path: Path
    twilio: FakeTwilio
    clock: TestClock
    http: httpx.Client
    locations: Locations
    sent: list[str] = field(default_factory=list)
    # The fake SignalWire Space, when started with ``signalwire=True``.
    signalwire: FakeTwilio | None = None

    def sign(self, path: str, params: dict[str, str]) -> str:
        return str(RequestValidator(AUTH_TOKEN).compute_signature(self.public_url + path, params))

    def post(
        self,
        path: str,
        params: dict[str, str],
        *,
        signature: str | None = None,
        signed: bool = True,
    ) -> httpx.Response:
        headers = {}
        if signed:
            headers["X-Twilio-Signature"] = signature or self.sign(path, params)
        return self.http.post(self.url + path, data=params, headers=headers)

    @contextmanager
    def db(self) -> Iterator[Session]:
        with self.runtime.deps.sessions() as session:
            yield session

    def scalar(self, statement: Any) -> Any:
        with self.db() as session:
            return session.scalar(statement)

    def rows(self, statement: Any) -> list[Any]:
        with self.db() as session:
            return list(session.scalars(statement).all())


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def settle(seconds: float = 0.6) -> None:
    """Give the workers time to do something they must NOT do (a second text, say)."""
    time.sleep(seconds)


@pytest.fixture
def make_service(
    database_url: str,
    queue_url: str,
    fake_twilio: FakeTwilioServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Service]]:
    started: list[tuple[ServerThread, Runtime, httpx.Client]] = []

    def start(
        *,
        edit: Callable[[dict[str, Any]], None] | None = None,
        now: datetime = OPEN_HOURS,
        public_url: str | None = None,
        run_worker: bool = True,
        settings_overrides: dict[str, Any] | None = None,
        signalwire: bool = False,
        sweeper: bool = False,
    ) -> Service:
        config = yaml.safe_load(DEMO_LOCATIONS.read_text())
        if edit is not None:
            edit(config)
        config_path = tmp_path / f"locations-{len(started)}.yaml"
        config_path.write_text(yaml.safe_dump(config))
        locations = load_locations(config_path)
        port = free_port()
        settings = Settings(
            RINGBACK_DATABASE_URL=database_url,
            RINGBACK_QUEUE_URL=queue_url,
            RINGBACK_CONFIG=config_path,
            RINGBACK_PUBLIC_URL=public_url or f"http://127.0.0.1:{port}",
            RINGBACK_WORKERS=4,
            RINGBACK_QUEUE_NAME=f"rb-{uuid.uuid4().hex[:8]}",
            RINGBACK_SEND_TIMEOUT=2,
            TWILIO_ACCOUNT_SID=ACCOUNT_SID,
            TWILIO_AUTH_TOKEN=AUTH_TOKEN,
            TWILIO_API_BASE_URL=fake_twilio.url,
            TWILIO_LOOKUP_BASE_URL=fake_twilio.url,
            # One webhook spool per test, shared by the services it starts.
            **{"RINGBACK_SPOOL_DIR": tmp_path / "spool", **(settings_overrides or {})},
        )
        clock = TestClock(now)
        fake_sw: FakeTwilioServer | None = None
        if signalwire:
            fake_sw = request.getfixturevalue("fake_signalwire")
            settings = settings.model_copy(
                update={
                    "signalwire_project_id": SIGNALWIRE_PROJECT_ID,
                    "signalwire_api_token": SIGNALWIRE_API_TOKEN,
                    "signalwire_space_url": fake_sw.url,
                    "signalwire_signing_key": SIGNALWIRE_SIGNING_KEY,
                }
            )
            # Texts go through the provider of the location they are from.
            telephony = build_telephony(settings, locations)
            runtime = build_runtime(
                settings, locations, clock=clock, sms=telephony.sms, lookup=telephony.lookup
            )
            runtime.closers.append(telephony.close)
        else:
            runtime = build_runtime(settings, locations, clock=clock)
        # The recovery sweeper off unless asked for: most tests sweep by hand, when they mean to.
        app = create_app(runtime, run_worker=run_worker, run_sweeper=sweeper)
        server = ServerThread(app, port).__enter__()
        http = httpx.Client(timeout=10)
        started.append((server, runtime, http))
        return Service(
            url=f"http://127.0.0.1:{port}",
            public_url=settings.public_url,
            config_path=config_path,
            runtime=runtime,
            twilio=fake_twilio.state,
            clock=clock,
            http=http,
            locations=locations,
            signalwire=fake_sw.state if fake_sw is not None else None,
        )

    yield start
    for server, runtime, http in started:
        http.close()
        server.__exit__(None, None, None)
        if QUEUE == "redis":
            runtime.huey.flush()
        runtime.close()


@pytest.fixture
def service(make_service: Callable[..., Service]) -> Service:
    return make_service()
