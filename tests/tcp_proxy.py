"""A TCP proxy in front of any database server, to cut or freeze its connections.

- :meth:`TcpProxy.freeze`: the proxy stops forwarding in both directions but keeps every
  connection open (and accepts new ones without connecting them upstream): a server or
  network that hangs, which no server-side timeout ends. :meth:`thaw` resumes.
- :meth:`TcpProxy.cut`: every connection is closed and new ones are closed at once (the
  server is gone). :meth:`restore` accepts and forwards again.

Protocol-agnostic (unlike :mod:`tests.slow_proxy`, which parses Redis commands).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

_POLL = 0.01  # how often a frozen forwarder looks whether it may go on


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._open = threading.Event()  # cleared while frozen
        self._open.set()
        self._refusing = False
        self._closed = False
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._open.clear()

    def thaw(self) -> None:
        self._open.set()

    def cut(self) -> None:
        self._refusing = True
        self._drop_all()

    def restore(self) -> None:
        self._refusing = False
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self._open.set()
        self._close(self._listener)
        self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            self._close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self._refusing:
                self._close(client)
                continue
            with self._lock:
                self._sockets.append(client)
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        while not self._open.is_set():  # frozen: accepted, never answered
            time.sleep(_POLL)
        if self._refusing or self._closed:
            self._close(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            self._close(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._sockets.append(upstream)
        for src, dst in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                while not self._open.is_set():  # frozen: hold what arrived
                    time.sleep(_POLL)
                dst.sendall(chunk)
        except OSError:
            pass
        self._close(src)
        self._close(dst)

    @staticmethod
    def _close(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
