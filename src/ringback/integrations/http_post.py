"""One HTTP POST to a clinic's system (outbound webhooks), with bounded time and bytes."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping

import httpx

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def post_json(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    max_response_bytes: int,
    *,
    connect_to: IpAddress | None = None,
) -> tuple[int | None, str | None, str | None]:
    """POST ``body``; return (status code, the response's first bytes as text, error).

    Redirects are not followed (a receiver that moved must be re-registered), and a body
    that trickles in is not waited for: the status is what counts. ``connect_to``: the
    address to connect to instead of looking the host up again (the URL's host still names
    the site: the Host header, TLS's server name and its certificate check).
    """
    started = time.monotonic()
    sent = dict(headers)
    extensions: dict[str, str] = {}
    target = httpx.URL(url)
    if connect_to is not None:
        sent["Host"] = target.netloc.decode("ascii")
        if target.scheme == "https":
            extensions["sni_hostname"] = target.raw_host.decode("ascii")
        target = target.copy_with(host=str(connect_to))
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=False) as client,
            client.stream(
                "POST", target, content=body, headers=sent, extensions=extensions
            ) as response,
        ):
            received = b""
            for chunk in response.iter_bytes():
                received += chunk
                if len(received) >= max_response_bytes or time.monotonic() - started > timeout:
                    break
            text = received[:max_response_bytes].decode("utf-8", "ignore")
            return response.status_code, text, None
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None, None, error[:300]


def addresses_of(host: str) -> list[IpAddress]:
    """Every address ``host`` names (a literal, in any form ``inet_aton`` takes, or a name
    looked up now). Raises OSError when it names none."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except UnicodeError as exc:  # a label IDNA cannot encode
        raise OSError(str(exc)) from exc
    found: list[IpAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])  # fe80::1%eth0
        if address not in found:
            found.append(address)
    return found
