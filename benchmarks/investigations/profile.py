"""Where the time of a pyramid_jeff request goes: py-spy profiles of the jeff variants.

Each case runs in a child process looping over in-process requests while ``py-spy``
samples it from outside (``--nonblocking``: the child is never paused). py-spy drops
samples of a thread it sees idle (waiting on Redis), imperfectly on a VM, so shares are
of *busy* time; the breakdown investigation gives microseconds. Per case: the share of
samples per library (of the innermost Python frame), the inclusive share of each
pyramid_jeff function, and the top functions by self time. Cases: jeff on memory and on
Redis (verify = ``GET /private`` with a cookie; login = ``POST /login``), and the Redis
floor for comparison.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from .. import variants
from ..measure import login, login_case, verify_case
from ..report import ROOT, Report
from . import main

MODULE = "benchmarks.investigations.profile"
CASES = {
    "jeff-memory-verify": ("jeff-memory", "verify"),
    "jeff-redis-verify": ("jeff-redis", "verify"),
    "floor-verify": ("floor", "verify"),
    "jeff-memory-login": ("jeff-memory", "login"),
    "jeff-redis-login": ("jeff-redis", "login"),
}
BUCKETS = (
    ("/pyramid_jeff/", "pyramid_jeff"),
    ("/site-packages/pyramid/", "pyramid"),
    ("/webob/", "webob"),
    ("/redis/", "redis-py"),
    ("/hiredis/", "redis-py"),
    ("/msgpack/", "msgpack"),
    ("/zope/", "zope.interface"),
    ("/benchmarks/", "harness + test app"),
)
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def bucket(path: str) -> str:
    for marker, name in BUCKETS:
        if marker in path:
            return name
    return "Python stdlib" if "/lib/python3" in path else "other"


# --------------------------------------------------------------------------------------------
# The child: one case, looping until its time is up.


def measured_loop(call: Callable[[], Any], seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            call()
        done += 100
    return done


def worker(case: str, redis_url: str, seconds: float) -> None:
    variant, kind = CASES[case]
    app = variants.build(variant, redis_url)
    if kind == "verify":
        call = verify_case(case, case, app, login(app, f"profile-{variant}@bench.example")).call
    else:
        call = login_case(case, case, app).call
    for _ in range(2000):  # warm up before py-spy's samples count (they are filtered below)
        call()
    t0 = time.perf_counter()
    done = measured_loop(call, seconds)
    print(f"{(time.perf_counter() - t0) / done * 1e6:.2f}")


# --------------------------------------------------------------------------------------------
# The parent: run py-spy over each child and digest its collapsed stacks.


def parse_frame(text: str) -> tuple[str, str, str]:
    match = _FRAME.match(text)
    if not match:
        return text, "", text
    func, path = match.group("func"), match.group("file")
    short = path.split("/site-packages/")[-1].removeprefix(f"{ROOT}/")
    return func, path, f"{func} ({short})"


def analyse(raw: str, top: int = 12) -> tuple[str, int]:
    by_bucket: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        frames = stack_text.split(";")
        starts = [i for i, f in enumerate(frames) if f.startswith("measured_loop ")]
        if not starts:
            continue  # imports, app setup, warm-up
        frames = frames[starts[0] + 1 :]
        while frames and frames[0].startswith(("call ", "wsgi_call ")):
            frames = frames[1:]  # the harness's WSGI call wrapper
        count = int(count_text)
        total += count
        if not frames:
            by_bucket["harness + test app"] += count
            continue
        _, path, label = parse_frame(frames[-1])
        by_bucket[bucket(path)] += count
        by_function[(bucket(path), label)] += count
        seen = set()
        for frame in frames:
            _, path, label = parse_frame(frame)
            if "/pyramid_jeff/" in path and label not in seen:
                seen.add(label)
                inclusive[label] += count
    if not total:
        return "(no samples)", 0

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}"

    lines = ["| library (innermost Python frame) | % of samples |", "|---|---|"]
    lines += [f"| {name} | {pct(n)} |" for name, n in by_bucket.most_common()]
    lines += ["", "| pyramid_jeff function | inclusive % |", "|---|---|"]
    lines += [f"| `{name}` | {pct(n)} |" for name, n in inclusive.most_common(top)]
    lines += ["", "| function (self time) | library | % |", "|---|---|---|"]
    lines += [
        f"| `{name}` | {lib} | {pct(n)} |" for (lib, name), n in by_function.most_common(top)
    ]
    return "\n".join(lines), total


def run_case(case: str, redis_url: str, seconds: float, rate: int) -> tuple[str, str, int]:
    pyspy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    with tempfile.TemporaryDirectory() as tmp:
        raw_path = os.path.join(tmp, "raw.txt")
        proc = subprocess.run(
            [
                pyspy, "record", "--format", "raw", "--nonblocking", "--function",
                "--full-filenames", "--rate", str(rate), "-o", raw_path, "--",
                sys.executable, "-m", MODULE, "--worker", case,
                "--redis-url", redis_url, "--seconds", str(seconds),
            ],
            capture_output=True, text=True, check=True, timeout=seconds + 120, cwd=ROOT,
        )  # fmt: skip
        with open(raw_path, encoding="utf-8") as fh:
            raw = fh.read()
    numbers = [line for line in proc.stdout.splitlines() if re.fullmatch(r"[\d.]+", line.strip())]
    per_request = numbers[-1].strip() if numbers else "?"
    table, samples = analyse(raw)
    return per_request, table, samples


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="profiled time per case")
    parser.add_argument("--rate", type=int, default=2000, help="py-spy samples per second")
    parser.add_argument("--cases", default=",".join(CASES))


def run(report: Report, args: argparse.Namespace, url: str) -> None:
    seconds = 2.0 if args.quick else args.seconds
    parts = [f"{args.made_by}\n\npy-spy {args.rate} Hz, `--nonblocking`, {seconds:g} s per case."]
    for case in args.cases.split(","):
        print(f"profiling {case} for {seconds:g}s", file=sys.stderr, flush=True)
        per_request, text, samples = run_case(case, url, seconds, args.rate)
        variant, kind = CASES[case]
        what = "authenticated GET" if kind == "verify" else kind
        parts += [
            f"### {variants.VARIANTS[variant].label}: {what}",
            f"{per_request} µs per request while sampled; {samples} samples.",
            text,
        ]
    report.section("Profiles (py-spy)", "", "\n\n".join(parts))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:  # the profiled child
        worker(sys.argv[2], sys.argv[4], float(sys.argv[6]))
    else:
        main(MODULE, __doc__, run, options)
