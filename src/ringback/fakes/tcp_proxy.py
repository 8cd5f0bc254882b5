"""A TCP forwarder to cut a connection on purpose: a database outage for tests and benches.

``TcpProxy(host, port)`` listens on a free loopback port and forwards every connection to
``host:port``. :meth:`refuse` closes every open connection and closes new ones as they
arrive (PostgreSQL down or restarting); :meth:`pause` holds every byte in both directions
and keeps new connections waiting (a network partition: only timeouts help);
:meth:`restore` forwards again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Literal

Mode = Literal["forward", "refuse", "pause"]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._mode: Mode = "forward"
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mode(self) -> Mode:
        return self._mode

    def refuse(self) -> None:
        with self._lock:
            self._mode = "refuse"
            self._flowing.set()
            sockets, self._open = self._open, set()
        for sock in sockets:
            _close(sock)

    def pause(self) -> None:
        with self._lock:
            self._mode = "pause"
            self._flowing.clear()

    def restore(self) -> None:
        with self._lock:
            self._mode = "forward"
            self._flowing.set()

    def close(self) -> None:
        self._closed = True
        self.refuse()
        _close(self._listener)
        self._flowing.set()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._mode == "refuse":
                _close(client)
                continue
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        self._flowing.wait()
        if self._mode == "refuse" or self._closed:
            _close(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _close(client)
            return
        with self._lock:
            self._open.update((client, upstream))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                if self._mode == "refuse":
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
            _close(source)
            _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
