"""Markdown out: tables, the run's provenance, and one helper for every timed table.

Every figure lives in ``benchmarks/RESULTS.md``. A run writes the ``## `` sections it made
and keeps the others, so the harness and each investigation update their own part.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .measure import Case, fmt_ratio, ratio, run_interleaved

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def table(header: list[str], rows: Iterable[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def provenance(command: str, note: str = "") -> str:
    """Who made the figures below: the command, date, commit, load and versions."""
    git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "?"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"Made by `{command}`{note}.\n\n"
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; repo commit {commit}"
        " (plus uncommitted changes, if any)\n"
        f"- machine: {os.cpu_count()} CPUs, load average at start {load} (shared machine: "
        "only same-run ratios mean anything)\n"
        f"- Python {platform.python_version()}, pyramid {version('pyramid')}, WebOb "
        f"{version('WebOb')}, redis-py {version('redis')} (hiredis {version('hiredis')}), "
        f"msgpack {version('msgpack')}, pyramid_session_redis "
        f"{version('pyramid_session_redis')}, waitress {version('waitress')}"
    )


class Report:
    def __init__(self) -> None:
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        print(text, flush=True)
        self.parts.append(text)

    def section(self, title: str, intro: str, body: str) -> None:
        self.add(f"\n## {title}\n" + (f"\n{intro}\n" if intro else ""))
        self.add(body)

    def write(self, path: str | Path) -> None:
        """Write the report into ``path``, keeping the sections of it this run did not make."""
        path = Path(path)
        old = _sections(path.read_text(encoding="utf-8")) if path.exists() else {}
        new = _sections("\n".join(self.parts))
        if not new.get("", "").strip():
            new.pop("", None)  # an investigation: the file's preamble stays
        merged = {**old, **new}
        path.write_text("\n".join(merged.values()).strip() + "\n", encoding="utf-8")
        log(f"wrote {path}")


def _sections(text: str) -> dict[str, str]:
    """``## `` sections by title (up to its first parenthesis), the preamble under ""."""
    out: dict[str, str] = {}
    for chunk in re.split(r"\n(?=## )", "\n" + text):
        key = chunk.partition("\n")[0].removeprefix("## ").split(" (")[0] if chunk else ""
        out[key if chunk.startswith("## ") else ""] = chunk.strip("\n") + "\n"
    return out


@dataclass
class Column:
    title: str
    cell: Callable[[str, Case], str]  # (case name, case) -> text


def ratio_column(title: str, ref: Callable[[str], Case | None]) -> Column:
    """``case / ref(name)``, or "-" when ``ref`` gives no case for that row."""

    def cell(name: str, case: Case) -> str:
        other = ref(name)
        return "-" if other is None else fmt_ratio(ratio(case, other))

    return Column(title, cell)


MEDIAN = Column("median µs", lambda name, case: f"{case.median_us():.1f}")


@dataclass
class Timing:
    rounds: int
    batch: int
    warmup: int


def timed_table(
    report: Report, title: str, intro: str, cases: dict[str, Case], timing: Timing,
    columns: list[Column], *, first: str = "variant", hide: tuple[str, ...] = (),
) -> dict[str, Case]:  # fmt: skip
    """Run ``cases`` interleaved, then report one row per case (but those of ``hide``)."""
    log(f"{title.split(' (')[0]}: {len(cases)} cases x {timing.rounds} rounds x {timing.batch}")
    run_interleaved(list(cases.values()), **vars(timing))
    rows = [
        [c.label, *(col.cell(n, c) for col in columns)] for n, c in cases.items() if n not in hide
    ]
    report.section(title, intro, table([first, *(c.title for c in columns)], rows))
    return cases
