"""Interleaved in-process timing: round-robin batches, per-call nanoseconds, medians.

The machine is shared and noisy, so no variant is timed on its own: every round runs one batch
of each case, in a fresh random order, and a ratio is the median over rounds of the ratio of
the two cases' batch medians *in that round*. A slow spell then hits both sides of a ratio.
"""

from __future__ import annotations

import io
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any


@dataclass
class Case:
    name: str
    label: str
    call: Callable[[], Any]
    rounds: list[list[int]] = field(default_factory=list)  # per round, per call, in ns

    def samples(self) -> list[int]:
        return [t for batch in self.rounds for t in batch]

    def median_us(self) -> float:
        return statistics.median(self.samples()) / 1000

    def round_medians(self) -> list[float]:
        return [statistics.median(batch) for batch in self.rounds]


def run_interleaved(
    cases: Sequence[Case], *, rounds: int, batch: int, warmup: int, seed: int = 5
) -> None:
    """Fill ``case.rounds`` for every case (round-robin batches in shuffled order)."""
    rng = random.Random(seed)
    for case in cases:  # warm caches, connection pools, lazily compiled things
        for _ in range(warmup):
            case.call()
    order = list(cases)
    for _ in range(rounds):
        rng.shuffle(order)
        for case in order:
            call = case.call
            times = [0] * batch
            for i in range(batch):
                t0 = perf_counter_ns()
                call()
                times[i] = perf_counter_ns() - t0
            case.rounds.append(times)


def ratio(case: Case, ref: Case) -> tuple[float, float, float]:
    """Median, 25th and 75th percentile over rounds of case/ref (same-round batch medians)."""
    per_round = [a / b for a, b in zip(case.round_medians(), ref.round_medians(), strict=True)]
    if len(per_round) == 1:
        return per_round[0], per_round[0], per_round[0]
    q = statistics.quantiles(per_round, n=4, method="inclusive")
    return statistics.median(per_round), q[0], q[2]


# --------------------------------------------------------------------------------------------
# WSGI plumbing: call an app in-process, as a server would, and check every status.


class StatusError(AssertionError):
    pass


def wsgi_caller(
    app: Any,
    environ: dict[str, Any],
    expect: str,
    vary: Callable[[dict[str, Any]], None] | None = None,
) -> Callable[[], None]:
    """A zero-argument callable that runs one request; ``vary`` may edit each request's environ.

    Any status other than ``expect`` (e.g. "200") raises: a benchmark of 403s measures nothing.
    """
    template = dict(environ)
    template.pop("wsgi.input", None)
    seen: list[str] = [""]

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen[0] = status
        return None

    def call() -> None:
        env = template.copy()
        env["wsgi.input"] = io.BytesIO()
        if vary is not None:
            vary(env)
        result = app(env, start_response)
        try:
            for _ in result:
                pass
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not seen[0].startswith(expect):
            raise StatusError(f"expected {expect}, got {seen[0]}")

    return call


def wsgi_request(app: Any, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """One request, returning status, headers and body (for setup and sanity checks)."""
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO()
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        captured["status"], captured["headers"] = status, list(headers)
        return None

    result = app(env, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], body
