"""A TCP proxy in front of a real redis-server that delays every reply.

Each burst of bytes from the server waits ``delay`` seconds before it is forwarded (with
whatever else arrived meanwhile, so a pipelined batch of replies costs one delay, as one
slow round trip). What the clients send is forwarded at once and recorded, so a test can
count the commands and round trips of each connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class ProxiedConnection:
    sent: bytearray = field(default_factory=bytearray)  # everything the client sent
    bursts: int = 0  # reply bursts forwarded: round trips

    def commands(self) -> list[str]:
        """Names of the commands the client sent (``CLIENT SETINFO`` as ``CLIENT SETINFO``)."""
        names = []
        for args in parse_commands(bytes(self.sent)):
            name = args[0].upper().decode()
            if name in ("CLIENT", "SCRIPT", "CONFIG") and len(args) > 1:
                name += " " + args[1].upper().decode()
            names.append(name)
        return names


def parse_commands(data: bytes) -> list[list[bytes]]:
    """RESP arrays of bulk strings (what redis-py sends), as lists of arguments."""
    commands = []
    position = 0
    while position < len(data):
        assert data[position : position + 1] == b"*", data[position : position + 20]
        end = data.index(b"\r\n", position)
        count = int(data[position + 1 : end])
        position = end + 2
        args = []
        for _ in range(count):
            end = data.index(b"\r\n", position)
            length = int(data[position + 1 : end])
            args.append(data[end + 2 : end + 2 + length])
            position = end + 2 + length + 2
        commands.append(args)
    return commands


class SlowProxy:
    def __init__(self, upstream: tuple[str, int], delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.connections: list[ProxiedConnection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            record = ProxiedConnection()
            with self._lock:
                self.connections.append(record)
                self._sockets += [client, upstream]
            threading.Thread(target=self._up, args=(client, upstream, record), daemon=True).start()
            threading.Thread(
                target=self._down, args=(upstream, client, record), daemon=True
            ).start()

    def _up(
        self, client: socket.socket, upstream: socket.socket, record: ProxiedConnection
    ) -> None:
        try:
            while chunk := client.recv(65536):
                record.sent += chunk
                upstream.sendall(chunk)
        except OSError:
            pass
        self._close_pair(client, upstream)

    def _down(
        self, upstream: socket.socket, client: socket.socket, record: ProxiedConnection
    ) -> None:
        try:
            while chunk := upstream.recv(65536):
                if self.delay:
                    time.sleep(self.delay)
                upstream.setblocking(False)
                try:  # what arrived during the delay belongs to the same burst
                    while more := upstream.recv(65536):
                        chunk += more
                except BlockingIOError:
                    pass
                finally:
                    upstream.setblocking(True)
                record.bursts += 1
                client.sendall(chunk)
        except OSError:
            pass
        self._close_pair(client, upstream)

    @staticmethod
    def _close_pair(*sockets: socket.socket) -> None:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self._close_pair(self._listener)
        with self._lock:
            sockets = list(self._sockets)
        self._close_pair(*sockets)
