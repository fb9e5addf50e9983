"""A private memcached for the tests, started from the binary on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote

from .redis_server import free_port, stop_process


class MemcachedServer:
    """One memcached process: loopback only, no UDP, killed at the end."""

    def __init__(self, workdir: Path, port: int, extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.port = port
        self.extra_args = extra_args
        self.url = f"memcached://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("memcached")

    @classmethod
    def start(
        cls,
        workdir: Path | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> MemcachedServer:
        """Start one; ``workdir`` (for its log) defaults to a new temporary directory."""
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="memcached-"))
        server = cls(workdir, free_port() if port is None else port, extra_args)
        server._spawn()
        return server

    def _spawn(self) -> None:
        binary = self.binary()
        if binary is None:
            raise RuntimeError("memcached is not installed (apt-get install memcached)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0", *self.extra_args]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without it
        log = open(self.workdir / f"memcached-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.command(b"version\r\n", timeout=1).startswith(b"VERSION"):
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"memcached exited: see {log.name}")
            time.sleep(0.02)
        raise RuntimeError("memcached did not answer within 10 s")

    def command(self, command: bytes, end: bytes = b"\r\n", timeout: float = 5) -> bytes:
        """Send one text-protocol command and read until ``end`` (b"" if unreachable)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(command)
                reply = b""
                while not reply.endswith(end):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
                return reply
        except OSError:
            return b""

    def items_metadata(self) -> dict[str, dict[str, str]]:
        """Every item's key and metadata (``exp``, ``size``, ...), by ``lru_crawler``."""
        dump = self.command(b"lru_crawler metadump all\r\n", end=b"END\r\n")
        items: dict[str, dict[str, str]] = {}
        for line in dump.decode("ascii").splitlines():
            if not line.startswith("key="):
                continue
            fields = dict(part.split("=", 1) for part in line.split())
            items[unquote(fields.pop("key"))] = fields
        return items

    def stats(self) -> dict[str, str]:
        reply = self.command(b"stats\r\n", end=b"END\r\n").decode("ascii")
        return {
            parts[1]: parts[2]
            for parts in (line.split() for line in reply.splitlines())
            if len(parts) == 3 and parts[0] == "STAT"
        }

    def flush(self) -> None:
        assert self.command(b"flush_all\r\n") == b"OK\r\n"

    def pause(self) -> None:
        assert self.process is not None
        stop_process(self.process.pid)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        """Kill it at once (its port refuses connections from then on)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    stop = kill

    def restart(self) -> None:
        self.kill()
        self._spawn()
