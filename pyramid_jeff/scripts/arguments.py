"""``pjeff``'s command line: its parser, its help, and the types of its arguments."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Sequence
from typing import Any

from ..credentials import is_session_id, normalize_key

DESCRIPTION = """\
List and revoke the login sessions of a Pyramid application that uses pyramid_jeff.

CONFIG_URI is the application's PasteDeploy file, optionally with a section:
"app.ini" or "app.ini#main". KEY is the session key the application gave to
remember(): always text here, so an application that calls remember(request, 42)
manages that user as "42".

exit codes:
  0  done
  1  revoke: there was no live session to end
  2  usage error; an application that cannot be loaded or does not include
     pyramid_jeff; the memory store (it lives inside the application process)
  3  the session store is unavailable (connection refused, timeout, ...), also
     when the application cannot start for it
"""

# argv cannot hold a NUL: it marks a word as a value (see shield_ids).
_SHIELD = "\0"


def shield_ids(args: Sequence[str]) -> list[str]:
    """Session ids are base64url: one in 64 starts with "-", which argparse would take
    for an unknown option. No option of pjeff looks like a session id, so such a word
    is shielded here as a value, and the argument types unshield it."""
    return [_SHIELD + a if a.startswith("-") and is_session_id(a) else a for a in args]


def _value(text: str) -> str:
    return text.removeprefix(_SHIELD)


def _key(text: str) -> str:
    """A KEY argument: checked as ``remember()`` would, so a bad one is a usage error."""
    try:
        return normalize_key(_value(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a session key: {exc}") from None


def _config_var(text: str) -> str:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return text


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The parser of ``pjeff``'s arguments (after :func:`shield_ids`); the command's name
    is ``command`` in what it parses."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config_uri", metavar="CONFIG_URI", type=_value, help="e.g. app.ini#main")
    parser.add_argument(
        "--var",
        dest="config_vars",
        metavar="NAME=VALUE",
        type=_config_var,
        action="append",
        default=[],
        help="a variable the config file uses as %%(NAME)s (repeatable), as pserve's",
    )
    commands = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest="command", required=True
    )
    _add_commands(commands)
    return parser


def _add_commands(commands: Any) -> None:
    def add(name: str, summary: str, details: str = "") -> Any:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\n{textwrap.dedent(details)}".rstrip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    sub = add("list", "list the live sessions of KEY, newest first")
    sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
    sub.add_argument(
        "--json", action="store_true", help="a JSON array of Session.__json__() instead"
    )
    sub = add(
        "revoke",
        "end one session of KEY",
        "Exit 0 if it ended a live session, 1 if there was none.",
    )
    sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
    sub.add_argument(
        "session_id", metavar="SESSION_ID", type=_value, help="as `pjeff list` shows it"
    )
    sub = add("revoke-all", "end every session of KEY")
    sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
    sub.add_argument(
        "--keep", metavar="SESSION_ID", type=_value, help="end all sessions but this one"
    )
    sub = add(
        "revoke-everyone",
        "end every session of every key: everyone must log in again",
        """\
        No store scan: sessions created until now are dead everywhere at once;
        logins after it work as usual.""",
    )
    sub.add_argument("--yes", action="store_true", help="really do it")
    add(
        "sweep",
        "drop dead (expired or idle) sessions from the store",
        """\
        Only stores that keep dead sessions until swept need it (SQL); Redis and
        memcached drop them by themselves.""",
    )
    sub = add("stats", "what the session store holds, as name: value lines")
    sub.add_argument("--json", action="store_true", help="a JSON object instead")
