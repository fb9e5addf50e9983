"""Investigations: what a figure is made of (what-ifs, pieces, profiles, worst cases).

Each runs as ``python -m benchmarks.investigations.NAME [--quick] [--output FILE]`` and
prints markdown; ``--output benchmarks/RESULTS.md`` writes its own section there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..redis_work import private_redis
from ..report import Report, provenance

Body = Callable[[Report, argparse.Namespace, str], None]  # (report, args, redis_url)


def main(
    module: str,
    doc: str,
    body: Body,
    options: Callable[[argparse.ArgumentParser], None] | None = None,
    *,
    with_redis: bool = True,
) -> None:
    """Parse ``--quick``/``--output`` (and ``options``), run ``body`` beside a private Redis."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--output", help="markdown file whose section to write")
    if options is not None:
        options(parser)
    args = parser.parse_args()
    args.made_by = provenance(" ".join(["python -m", module, *sys.argv[1:]]))  # for the intro
    report = Report()
    if not with_redis:
        body(report, args, "")
    else:
        with private_redis() as server:
            body(report, args, server.url)
    if args.output:
        report.write(args.output)
