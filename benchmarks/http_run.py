"""The HTTP run: each variant served by waitress in its own process, loaded by ``wrk``.

Rounds are interleaved like the in-process ones: each round runs ``wrk`` once against every
server, in a shuffled order; a throughput ratio is the median over rounds of the two
servers' req/s in the same round. ``python -m benchmarks.http_run MODULE NAME PORT REDIS_URL``
serves ``MODULE.build(NAME, REDIS_URL)`` (how the run starts each server).
"""

from __future__ import annotations

import http.client
import importlib
import logging
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from tests.redis_server import free_port

from .measure import DUMMY_COOKIE, USER_AGENT, cookie_header

ROOT = Path(__file__).resolve().parent.parent  # where `python -m benchmarks...` runs


@dataclass
class HttpResult:
    label: str
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def ratio_to(self, ref: HttpResult) -> float:
        return statistics.median(a / b for a, b in zip(self.rps, ref.rps, strict=True))


def _request(port: int, method: str, path: str, cookie: str = "") -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, headers={"User-Agent": USER_AGENT, "Cookie": cookie})
    resp = conn.getresponse()
    resp.read()
    headers = resp.getheaders()
    conn.close()
    has_cookie = any(k.lower() == "set-cookie" for k, _ in headers)
    return resp.status, cookie_header(headers) if has_cookie else ""


def _ready(name: str, port: int, proc: subprocess.Popen[bytes]) -> str:
    """Wait for the server; log in (the bare apps get a cookie of a usual size)."""
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name}: the server on port {port} did not start")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    cookie = DUMMY_COOKIE
    if not name.startswith("bare"):
        cookie = _request(port, "POST", f"/login?u=http-{name}%40bench.example")[1]
    if _request(port, "GET", "/private", cookie)[0] != 200:
        raise RuntimeError(f"{name}: GET /private with the login cookie was refused")
    return cookie


def _ms(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not match:
        return float("nan")
    return float(match.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[match.group(2)]


def _wrk(port: int, cookie: str, seconds: float, connections: int, res: HttpResult) -> None:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
         "-H", f"Cookie: {cookie}", "-H", f"User-Agent: {USER_AGENT}",
         f"http://127.0.0.1:{port}/private"],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    res.rps.append(float(re.findall(r"Requests/sec:\s+([\d.]+)", out)[0]))
    res.p50_ms.append(_ms(out, "50"))
    res.p99_ms.append(_ms(out, "99"))
    res.errors += sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    for errors in re.findall(r"Socket errors:(.*)", out):
        res.errors += sum(int(n) for n in re.findall(r"\d+", errors))


def run_http(
    labels: dict[str, str], module: str, redis_url: str, *, rounds: int, seconds: float,
    connections: int,
) -> dict[str, HttpResult]:  # fmt: skip
    """req/s of ``module.build(name)`` for each name of ``labels``, interleaved."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: apt-get install -y wrk")
    procs: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    with ExitStack() as stack:
        for name in labels:
            port = free_port()
            argv = [sys.executable, "-m", "benchmarks.http_run", module, name, str(port)]
            proc = stack.enter_context(subprocess.Popen([*argv, redis_url], cwd=ROOT))
            stack.callback(proc.terminate)  # runs before the Popen's own wait
            procs[name] = (port, proc)
        servers = {name: (port, _ready(name, port, proc)) for name, (port, proc) in procs.items()}
        results = {name: HttpResult(label) for name, label in labels.items()}
        for port, cookie in servers.values():
            _wrk(port, cookie, 1, connections, HttpResult(""))  # warm-up, discarded
        order, rng = list(labels), random.Random(7)
        for _ in range(rounds):
            rng.shuffle(order)
            for name in order:
                _wrk(*servers[name], seconds, connections, results[name])
    return results


def serve(module: str, name: str, port: int, redis_url: str) -> None:
    import waitress

    app = importlib.import_module(module).build(name, redis_url)
    # "Task queue depth is N" is expected under wrk's load: not worth a line per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    waitress.serve(app, host="127.0.0.1", port=port, _quiet=True)  # defaults: 4 threads


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
