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

import configparser
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import redis
from plaster.exceptions import PlasterError  # type: ignore[import-untyped]
from pyramid.exceptions import ConfigurationError, ConfigurationExecutionError
from pyramid.paster import bootstrap, setup_logging
from pyramid.scripts.common import parse_vars

from ..credentials import is_session_id
from ..errors import StoreUnavailable
from ..manager import SessionManager
from ..policy import jeff_policy
from ..stores.memory import MemoryStore
from .arguments import build_parser, shield_ids
from .output import duration, json_default, printable, session_table, utc

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


def _store_name(manager: SessionManager) -> str:
    return type(manager.store).__name__


class PJeffCommand:
    """One run of ``pjeff``: parse the arguments, load the application, run a command."""

    script_name = "pjeff"
    bootstrap = staticmethod(bootstrap)  # testing
    setup_logging = staticmethod(setup_logging)  # testing

    def __init__(self, argv: Sequence[str], quiet: bool = False) -> None:
        self.quiet = quiet
        self.args = build_parser(self.script_name).parse_args(shield_ids(argv[1:]))

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
            if isinstance(exc, ConfigurationExecutionError):
                exc = exc.evalue  # what failed in a configuration action, without its frame
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
        handler = self.commands[self.args.command]
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
            self.out(json.dumps(docs, indent=2, default=json_default))
            return EXIT_OK
        if not sessions:
            self.out(f"{printable(key)} has no live sessions")
            return EXIT_OK
        idle = ""
        if manager.idle_timeout:
            idle = f"; unused for {duration(manager.idle_timeout)}, a session ends before EXPIRES"
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
            f"revoked every session created until {utc(cutoff)} ({cutoff} ms): "
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
            self.out(json.dumps(values, indent=2, default=json_default))
        elif stats is None:
            self.out(f"{_store_name(manager)} keeps no statistics")
        else:
            for name, value in values.items():
                self.out(f"{name}: {value}")
        return EXIT_OK

    # What runs the command a parse names (``command``: see arguments.build_parser).
    commands: ClassVar[dict[str, Handler]] = {
        "list": cmd_list,
        "revoke": cmd_revoke,
        "revoke-all": cmd_revoke_all,
        "revoke-everyone": cmd_revoke_everyone,
        "sweep": cmd_sweep,
        "stats": cmd_stats,
    }


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
