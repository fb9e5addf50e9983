"""``pjeff``: list and revoke the login sessions of a Pyramid application.

``pjeff CONFIG_URI COMMAND ...`` loads the application as ``ptweens`` and ``proutes``
do (:func:`pyramid.paster.bootstrap`, after :func:`pyramid.paster.setup_logging`) and
works on the session store its ``jeff.*`` settings name. Exit codes:

- ``0``: done;
- ``1``: ``revoke`` found no live session to end;
- ``2``: a usage error (unknown command, missing argument, ``revoke-everyone`` without
  ``--yes``), an application that cannot be loaded or does not include pyramid_jeff,
  or the memory store (it lives inside the application's own process);
- ``3``: the session store is unavailable (:class:`pyramid_jeff.StoreUnavailable`), or
  the application could not start because its store did not answer (Redis Cluster);
- ``141``: standard output was closed before the output was written (``| head``); the
  command itself was carried out.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import redis
from plaster.exceptions import PlasterError  # type: ignore[import-untyped]
from pyramid.exceptions import ConfigurationError
from pyramid.paster import bootstrap, setup_logging
from pyramid.scripts.common import parse_vars

from .credentials import is_session_id, normalize_key
from .errors import StoreUnavailable
from .manager import SessionManager
from .memory_store import MemoryStore
from .policy import jeff_policy
from .session import Session, from_ms

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as shells report it

MEMORY_STORE_REFUSAL = (
    "the memory store lives inside the application process: pjeff, another process, "
    "can neither see nor revoke its sessions (jeff.store = memory://, the default); "
    "use Redis, memcached or SQL (jeff.store) to manage sessions from the command line"
)

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

Handler = Callable[["PJeffCommand", SessionManager], int]


def main(argv: Sequence[str] = sys.argv, quiet: bool = False) -> int:
    """The ``pjeff`` console script; ``argv[0]`` is the program name."""
    try:
        command = PJeffCommand(argv, quiet)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return command.run()
    except BrokenPipeError:
        # The reader went away (pjeff ... | head): what was asked is done; say so as
        # a shell does for SIGPIPE, without a traceback at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


# argv cannot hold a NUL: it marks a word as a value (see _shield_ids).
_SHIELD = "\0"


def _shield_ids(args: Sequence[str]) -> list[str]:
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


def printable(text: str | None) -> str:
    """``text`` safe for a terminal: a user agent or an ip is what a browser sent, and
    must not move the cursor or recolour an operator's screen."""
    if text is None:
        return "-"
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _utc(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%d %H:%M:%SZ")


def _json_default(value: object) -> object:
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
            _utc(s.created_ms),
            _utc(s.last_seen_ms),
            _utc(s.expires_ms),
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


def _seconds(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _store_name(manager: SessionManager) -> str:
    return type(manager.store).__name__


# What loading an application raises for a bad CONFIG_URI or configuration, or an
# unreachable store (anything else is a bug of the application: it keeps its traceback).
LOAD_ERRORS = (
    configparser.Error,  # e.g. a %(name)s that no --var gave
    OSError,
    LookupError,
    ImportError,
    PlasterError,
    ConfigurationError,
    StoreUnavailable,
)
OUTAGES = (
    StoreUnavailable,
    redis.ConnectionError,
    redis.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def _is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` comes of a store that did not answer: a Redis Cluster is
    connected at start-up, and its failure arrives as a ``ConfigurationError``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OUTAGES):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _is_memory_store(store: object) -> bool:
    # pyramid_jeff.testing.CountingStore wraps a store as .store.
    return isinstance(store, MemoryStore) or isinstance(getattr(store, "store", None), MemoryStore)


class PJeffCommand:
    """One run of ``pjeff``: parse the arguments, load the application, run a command."""

    script_name = "pjeff"
    bootstrap = staticmethod(bootstrap)  # testing
    setup_logging = staticmethod(setup_logging)  # testing

    def __init__(self, argv: Sequence[str], quiet: bool = False) -> None:
        self.quiet = quiet
        self.args = self.build_parser().parse_args(_shield_ids(argv[1:]))

    @classmethod
    def build_parser(cls) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(
            prog=cls.script_name,
            description=DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument(
            "config_uri", metavar="CONFIG_URI", type=_value, help="e.g. app.ini#main"
        )
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
        cls._add_commands(commands)
        return parser

    @classmethod
    def _add_commands(cls, commands: Any) -> None:
        def add(name: str, handler: Handler, summary: str, details: str = "") -> Any:
            sub = commands.add_parser(
                name,
                help=summary,
                description=f"{summary}.\n\n{textwrap.dedent(details)}".rstrip(),
                formatter_class=argparse.RawDescriptionHelpFormatter,
            )
            sub.set_defaults(handler=handler)
            return sub

        sub = add("list", cls.cmd_list, "list the live sessions of KEY, newest first")
        sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
        sub.add_argument(
            "--json", action="store_true", help="a JSON array of Session.__json__() instead"
        )
        sub = add(
            "revoke",
            cls.cmd_revoke,
            "end one session of KEY",
            "Exit 0 if it ended a live session, 1 if there was none.",
        )
        sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
        sub.add_argument(
            "session_id", metavar="SESSION_ID", type=_value, help="as `pjeff list` shows it"
        )
        sub = add("revoke-all", cls.cmd_revoke_all, "end every session of KEY")
        sub.add_argument("key", metavar="KEY", type=_key, help="the session key")
        sub.add_argument(
            "--keep", metavar="SESSION_ID", type=_value, help="end all sessions but this one"
        )
        sub = add(
            "revoke-everyone",
            cls.cmd_revoke_everyone,
            "end every session of every key: everyone must log in again",
            """\
            No store scan: sessions created until now are dead everywhere at once;
            logins after it work as usual.""",
        )
        sub.add_argument("--yes", action="store_true", help="really do it")
        add(
            "sweep",
            cls.cmd_sweep,
            "drop dead (expired or idle) sessions from the store",
            """\
            Only stores that keep dead sessions until swept need it (SQL); Redis and
            memcached drop them by themselves.""",
        )
        sub = add("stats", cls.cmd_stats, "what the session store holds, as name: value lines")
        sub.add_argument("--json", action="store_true", help="a JSON object instead")

    def out(self, line: str) -> None:
        if not self.quiet:
            print(line, file=sys.stdout)

    def err(self, line: str) -> None:
        print(f"{self.script_name}: {line}", file=sys.stderr)

    def run(self) -> int:
        config_uri: str = self.args.config_uri
        config_vars = parse_vars(self.args.config_vars)
        config_vars.setdefault("__script__", self.script_name)
        try:
            self.setup_logging(config_uri, global_conf=config_vars)
            env = self.bootstrap(config_uri, options=config_vars)
        except LOAD_ERRORS as exc:
            if _is_outage(exc):
                self.err(f"the session store is unavailable (at start-up): {exc}")
                return EXIT_UNAVAILABLE
            self.err(f"cannot load the application from {config_uri}: {exc}")
            return EXIT_USAGE
        try:
            return self._run_command(config_uri, env["registry"])
        finally:
            env["closer"]()

    def _run_command(self, config_uri: str, registry: Any) -> int:
        try:
            manager = jeff_policy(registry).manager
        except LookupError as exc:
            self.err(f"{config_uri}: {exc}")
            return EXIT_USAGE
        if _is_memory_store(manager.store):
            self.err(MEMORY_STORE_REFUSAL)
            return EXIT_USAGE
        handler: Handler = self.args.handler
        try:
            return handler(self, manager)
        except StoreUnavailable as exc:
            self.err(f"the session store is unavailable: {exc}")
            return EXIT_UNAVAILABLE
        finally:
            # This run loaded the application, so its store (pools, engine) is ours.
            manager.store.close()

    # -- the commands -------------------------------------------------------------------

    def cmd_list(self, manager: SessionManager) -> int:
        key: str = self.args.key
        sessions = manager.sessions(key)
        if self.args.json:
            docs = [session.__json__() for session in sessions]
            self.out(json.dumps(docs, indent=2, default=_json_default))
            return EXIT_OK
        if not sessions:
            self.out(f"{printable(key)} has no live sessions")
            return EXIT_OK
        idle = ""
        if manager.idle_timeout:
            idle = f"; unused for {_seconds(manager.idle_timeout)}, a session ends before EXPIRES"
        self.out(f"{len(sessions)} live session(s) of {printable(key)}, newest first (UTC{idle})")
        for line in session_table(sessions):
            self.out(line)
        return EXIT_OK

    def cmd_revoke(self, manager: SessionManager) -> int:
        key: str = self.args.key
        session_id: str = self.args.session_id
        shown = f"{printable(session_id)} of {printable(key)}"
        if manager.revoke(key, session_id):
            self.out(f"revoked session {shown}")
            return EXIT_OK
        why = "" if is_session_id(session_id) else " (that is not a session id)"
        self.out(f"no live session {shown}{why}: nothing revoked")
        return EXIT_NOT_FOUND

    def cmd_revoke_all(self, manager: SessionManager) -> int:
        key: str = self.args.key
        keep: str | None = self.args.keep
        # The manager keeps nothing for a malformed id: a typo must not end the
        # operator's own session too.
        if keep is not None and not is_session_id(keep):
            self.err(f"--keep {printable(keep)}: not a session id; nothing revoked")
            return EXIT_USAGE
        ended = manager.revoke_all(key, keep=keep)
        kept = f" (kept {keep})" if keep else ""
        self.out(f"revoked {ended} live session(s) of {printable(key)}{kept}")
        return EXIT_OK

    def cmd_revoke_everyone(self, manager: SessionManager) -> int:
        if not self.args.yes:
            self.err(
                "revoke-everyone ends every live session of every key in "
                f"{_store_name(manager)}: every user must log in again. "
                "Run it again with --yes to do it."
            )
            return EXIT_USAGE
        cutoff = manager.revoke_everyone()
        self.out(
            f"revoked every session created until {_utc(cutoff)} ({cutoff} ms): "
            "everyone must log in again"
        )
        return EXIT_OK

    def cmd_sweep(self, manager: SessionManager) -> int:
        sweep = getattr(manager.store, "sweep", None)
        if sweep is None:
            self.out(f"{_store_name(manager)} drops dead sessions by itself: nothing to sweep")
            return EXIT_OK
        dropped = sweep(manager.clock(), manager.idle_timeout_ms)
        self.out(f"dropped {dropped} dead session(s)")
        return EXIT_OK

    def cmd_stats(self, manager: SessionManager) -> int:
        stats = getattr(manager.store, "stats", None)
        values: dict[str, Any] = {} if stats is None else dict(stats())
        if self.args.json:
            self.out(json.dumps(values, indent=2, default=_json_default))
        elif stats is None:
            self.out(f"{_store_name(manager)} keeps no statistics")
        else:
            for name, value in values.items():
                self.out(f"{name}: {value}")
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
