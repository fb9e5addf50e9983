"""A private redis-server for the tests, started from the binary on a free port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port(below: int = 65536) -> int:
    """A free loopback port under ``below`` (cluster nodes need port + 10000 free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port < below:
            return port
    raise RuntimeError(f"no free port below {below}")


def stop_process(pid: int) -> None:
    """SIGSTOP ``pid`` and return once it is really stopped: the signal is delivered
    asynchronously, and a server that is still running answers the next command."""
    os.kill(pid, signal.SIGSTOP)
    ends = time.monotonic() + 5
    while time.monotonic() < ends:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            if stat.read().rpartition(")")[2].split()[0] in ("T", "t"):
                return
        time.sleep(0.001)
    raise RuntimeError(f"process {pid} did not stop")


class RedisServer:
    """One redis-server process: no persistence, loopback only, killed at the end."""

    def __init__(self, workdir: Path, port: int, extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.port = port
        self.extra_args = extra_args
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("redis-server")

    @classmethod
    def start(
        cls, workdir: Path, port: int | None = None, extra_args: tuple[str, ...] = ()
    ) -> RedisServer:
        if port is None:
            port = free_port(55536 if "--cluster-enabled" in extra_args else 65536)
        server = cls(workdir, port, extra_args)
        server._spawn()
        return server

    def _spawn(self) -> None:
        binary = self.binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "no"]
        args += self.extra_args
        log = open(self.workdir / f"redis-{self.port}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited: see {log.name}") from None
                time.sleep(0.02)
        raise RuntimeError("redis-server did not answer within 10 s")

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)

    def pause(self) -> None:
        assert self.process is not None
        stop_process(self.process.pid)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self._spawn()
