"""HTTP run: each variant served by waitress (its own process), loaded by ``wrk`` on loopback.

Rounds are interleaved like the in-process ones: every round runs ``wrk`` once against each
server, in a shuffled order, and the throughput ratio is the median over rounds of
(variant req/s) / (bare req/s) in the same round.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from apps import USER_AGENT
from inprocess import DUMMY_COOKIE, cookie_header
from redis_server import free_port
from whatif import label

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class HttpResult:
    name: str
    label: str
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def ratio_to(self, ref: HttpResult) -> float:
        return statistics.median(a / b for a, b in zip(self.rps, ref.rps, strict=True))


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not start")


def _request(port: int, method: str, path: str, cookie: str | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"User-Agent": USER_AGENT}
    if cookie:
        headers["Cookie"] = cookie
    conn.request(method, path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    cookies = ""
    if any(k.lower() == "set-cookie" for k, _ in resp.getheaders()):
        cookies = cookie_header(resp.getheaders())
    conn.close()
    return resp.status, cookies


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_ERRORS = re.compile(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)")


def _ms(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _wrk(
    port: int, cookie: str, seconds: float, connections: int
) -> tuple[float, float, float, int]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Cookie: {cookie}",
            "-H",
            f"User-Agent: {USER_AGENT}",
            f"http://127.0.0.1:{port}/private",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 30,
    ).stdout
    rps = float(_RPS.search(out).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := _NON2XX.search(out):
        errors += int(m.group(1))
    if m := _ERRORS.search(out):
        errors += sum(int(g) for g in m.groups())
    return rps, _ms(out, "50"), _ms(out, "99"), errors


def run_http(
    names: list[str], redis_url: str, *, rounds: int, seconds: float, connections: int
) -> dict[str, HttpResult]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    results: dict[str, HttpResult] = {}
    try:
        for name in names:
            port = free_port()
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "serve.py"), name, str(port), redis_url],
                stdout=subprocess.DEVNULL,
            )
            procs[name] = (proc, port)
        cookies: dict[str, str] = {}
        for name, (proc, port) in procs.items():
            _wait_port(port, proc)
            if name in ("bare", "bare-props"):  # no policy: no login, a cookie of a usual size
                cookies[name] = DUMMY_COOKIE
            else:
                status, cookies[name] = _request(
                    port, "POST", f"/login?u=http-{name}%40bench.example"
                )
                assert status == 200, (name, status)
            status, _ = _request(port, "GET", "/private", cookies[name])
            if status != 200:
                raise RuntimeError(f"{name}: GET /private with the login cookie gave {status}")
            _wrk(port, cookies[name], 1, connections)  # warm-up, discarded
            results[name] = HttpResult(name, label(name))
        rng = random.Random(7)
        order = list(names)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                rps, p50, p99, errors = _wrk(procs[name][1], cookies[name], seconds, connections)
                res = results[name]
                res.rps.append(rps)
                res.p50_ms.append(p50)
                res.p99_ms.append(p99)
                res.errors += errors
    finally:
        for proc, _ in procs.values():
            proc.terminate()
        for proc, _ in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results
