"""What ``pjeff`` prints: tables of sessions, durations, JSON, and the escaping of text
that browsers sent."""

from __future__ import annotations

from collections.abc import Sequence

from ..session import Session, from_ms


def printable(text: str | None) -> str:
    """``text`` safe for a terminal: a user agent or an ip is what a browser sent, and
    must not move the cursor or recolour an operator's screen."""
    if text is None:
        return "-"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def utc(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M:%SZ")


def duration(seconds: int) -> str:
    """``seconds`` in the largest unit that divides it: ``"1d"``, ``"2h"``, ``"90s"``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def json_default(value: object) -> object:
    # meta is msgpack: it may hold bytes, which JSON has no type for.
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def session_table(sessions: Sequence[Session]) -> list[str]:
    """The lines of a table of ``sessions``: id, times (UTC), ip, user agent."""
    header = ("ID", "CREATED", "LAST SEEN", "EXPIRES", "IP", "USER AGENT")
    rows = [
        (
            s.id,
            utc(s.created_ms),
            utc(s.last_seen_ms),
            utc(s.expires_ms),
            printable(s.ip),
            printable(s.user_agent),
        )
        for s in sessions
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in [header, *rows]
    ]
