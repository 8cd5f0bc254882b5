"""A real Radicale CalDAV server in a subprocess, for tests of the calendar adapter.

Auth is on (htpasswd, plain passwords) and rights are ``owner_only``, so a wrong password
or a foreign collection is refused the way a hosted calendar would refuse it. Storage lives
in a temporary folder; every test gets its own fresh calendar collection.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

USERNAME = "anna"
PASSWORD = "correct horse battery"
OTHER_USERNAME = "bert"
OTHER_PASSWORD = "staple"

_MKCALENDAR = """<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>{name}</D:displayname>
    <C:supported-calendar-component-set><C:comp name="{component}"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""

_MKADDRESSBOOK = """<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
  </D:prop></D:set>
</D:mkcol>"""


@dataclass(frozen=True)
class RadicaleCalendar:
    """A calendar collection on the server, and the login that owns it."""

    url: str
    username: str
    password: str
    server: RadicaleServer

    def client(self) -> httpx.Client:
        """A plain client logged in as the owner, for what another calendar app would do."""
        return httpx.Client(auth=(self.username, self.password), timeout=5.0)


class RadicaleServer:
    """``python -m radicale`` on 127.0.0.1 with a config written to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._log = folder / "radicale.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, attempts: int = 3) -> None:
        users = self.folder / "users"
        users.write_text(f"{USERNAME}:{PASSWORD}\n{OTHER_USERNAME}:{OTHER_PASSWORD}\n")
        for attempt in range(attempts):
            self.port = free_port()
            config = self.folder / "config"
            config.write_text(
                "[server]\n"
                f"hosts = 127.0.0.1:{self.port}\n"
                "[auth]\n"
                "type = htpasswd\n"
                f"htpasswd_filename = {users}\n"
                "htpasswd_encryption = plain\n"
                # Radicale sleeps after a wrong password; keep that short for tests.
                "delay = 0.01\n"
                "[rights]\n"
                "type = owner_only\n"
                "[storage]\n"
                f"filesystem_folder = {self.folder / 'collections'}\n"
                "[web]\n"
                "type = none\n"
                "[logging]\n"
                "level = warning\n"
            )
            with self._log.open("wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "radicale", "--config", str(config)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            try:
                self._wait_until_up()
                return
            except RuntimeError:
                self.stop()
                if attempt == attempts - 1:
                    raise

    def _wait_until_up(self, timeout: float = 15.0) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"radicale exited early:\n{self._log.read_text()}")
            try:
                httpx.request("OPTIONS", self.base_url + "/", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"radicale did not answer within {timeout}s:\n{self._log.read_text()}")

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def new_calendar(
        self, username: str = USERNAME, password: str = PASSWORD, component: str = "VEVENT"
    ) -> RadicaleCalendar:
        """MKCALENDAR a fresh collection under ``username``'s home, holding ``component``s."""
        url = f"{self.base_url}/{username}/{uuid.uuid4().hex}/"
        response = httpx.request(
            "MKCALENDAR",
            url,
            content=_MKCALENDAR.format(name="Ringback test", component=component).encode(),
            headers={"Content-Type": "application/xml; charset=utf-8"},
            auth=(username, password),
            timeout=5.0,
        )
        assert response.status_code == 201, (response.status_code, response.text)
        return RadicaleCalendar(url=url, username=username, password=password, server=self)

    def new_address_book(self, username: str = USERNAME, password: str = PASSWORD) -> str:
        """A CardDAV address book (extended MKCOL): a collection, but not a calendar."""
        url = f"{self.base_url}/{username}/{uuid.uuid4().hex}/"
        response = httpx.request(
            "MKCOL",
            url,
            content=_MKADDRESSBOOK.encode(),
            headers={"Content-Type": "application/xml; charset=utf-8"},
            auth=(username, password),
            timeout=5.0,
        )
        assert response.status_code == 201, (response.status_code, response.text)
        return url
