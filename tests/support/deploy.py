"""Running the deployment files in deploy/ in tests: Caddy in front of a running service."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


@dataclass(frozen=True)
class Proxy:
    https_url: str
    http_url: str
    root_certificate: Path


def _serving_tls(port: int, root: Path) -> bool:
    """Caddy listens before its first certificate is issued: wait for a full handshake."""
    if not root.exists():
        return False
    context = ssl.create_default_context(cafile=str(root))
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
            context.wrap_socket(sock, server_hostname="localhost"),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


@contextmanager
def caddy_in_front(
    upstreams: list[str], workdir: Path, *, https_port: int | None = None
) -> Iterator[Proxy]:
    """deploy/Caddyfile as shipped, imported under test-only global options: Caddy's own
    CA (``local_certs``, the global form of ``tls internal``), free ports, storage in
    ``workdir``, no admin endpoint."""
    caddy = shutil.which("caddy")
    assert caddy, "caddy is not installed (scripts/test.sh installs Debian's caddy)"
    https_port = https_port or free_port()
    http_port = free_port()
    storage = workdir / "caddy-storage"
    wrapper = workdir / "Caddyfile"
    wrapper.write_text(
        "{\n"
        "\tlocal_certs\n"
        "\tskip_install_trust\n"
        "\tadmin off\n"
        f"\thttp_port {http_port}\n"
        f"\thttps_port {https_port}\n"
        f"\tstorage file_system {storage}\n"
        "}\n"
        f"import {DEPLOY / 'Caddyfile'}\n"
    )
    env = {
        **os.environ,
        "RINGBACK_SITE": "localhost",
        "RINGBACK_UPSTREAMS": " ".join(upstreams),
        "XDG_DATA_HOME": str(workdir / "data"),
        "XDG_CONFIG_HOME": str(workdir / "config"),
    }
    log = (workdir / "caddy.log").open("w")
    process = subprocess.Popen(
        [caddy, "run", "--config", str(wrapper), "--adapter", "caddyfile"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    root = storage / "pki" / "authorities" / "local" / "root.crt"
    try:
        deadline = time.monotonic() + 30
        while not _serving_tls(https_port, root):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"caddy did not start: {(workdir / 'caddy.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)
        yield Proxy(
            https_url=f"https://localhost:{https_port}",
            http_url=f"http://localhost:{http_port}",
            root_certificate=root,
        )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- systemd units ---------------------------------------------------------------------

UNITS = DEPLOY / "systemd"
INSTALLED_RINGBACK = "/opt/ringback/venv/bin/ringback"


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as systemd reads it: sections of (key, value) in order, keys may repeat,
    ``#``/``;`` comments, backslash continuation lines."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{path}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    values = [v for k, v in unit.get(section, []) if k == key]
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def read_env_file(path: Path) -> dict[str, str]:
    """An EnvironmentFile= (KEY=VALUE lines, comments)."""
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env
