"""The ``pjeff`` console script against real stores (Redis, SQLite, PostgreSQL).

Each store's test loads the demo application from an ini file written here, logs users
in through that application's manager, and checks what ``pjeff`` (the installed script,
in another process; or ``pyramid_jeff.pjeff.main`` in this one, which coverage sees)
prints and exits with. Scripts are slow to start (~0.5 s), so most runs are in-process
and the script runs where another process matters.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from pyramid.paster import get_app

from pyramid_jeff import SessionManager
from pyramid_jeff.credentials import Credential, key_digest
from pyramid_jeff.pjeff import PJeffCommand, _json_default, _seconds, main, printable
from pyramid_jeff.testing import jeff_policy

from .conftest import need
from .redis_server import free_port
from .sql_databases import DatabaseUnavailable, postgresql_database

BIN = Path(sys.executable).parent
SCRIPT = shutil.which("pjeff", path=str(BIN)) or str(BIN / "pjeff")
ALICE = "alice@example.com"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"

# A Pyramid application that does not include pyramid_jeff.
PLAIN_APP = """
from pyramid.config import Configurator

def main(global_config, **settings):
    return Configurator(settings=settings).make_wsgi_app()
"""


@dataclass
class Result:
    rc: int
    out: str
    err: str


def script(*args: str, env: dict[str, str] | None = None) -> Result:
    """The installed console script, in a process of its own."""
    done = subprocess.run(
        [SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    return Result(done.returncode, done.stdout, done.stderr)


def pjeff(*args: str) -> Result:
    """``pjeff`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["pjeff", *args])
    return Result(rc, out.getvalue(), err.getvalue())


def write_ini(path: Path, store_url: str, extra: str = "") -> str:
    path.write_text(
        "[app:main]\n"
        "use = egg:pyramid_jeff_demo\n"
        f"jeff.store = {store_url}\n"
        "jeff.cookie_secure = false\n"
        f"{extra}",
        encoding="utf-8",
    )
    return str(path)


# -- failures that need no store -----------------------------------------------------------


@pytest.fixture
def inis(tmp_path: Path) -> dict[str, str]:
    """Ini files of applications pjeff refuses, and of stores nobody answers for."""
    (tmp_path / "plain_app.py").write_text(PLAIN_APP, encoding="utf-8")
    plain = tmp_path / "plain.ini"
    plain.write_text("[app:main]\nuse = call:plain_app:main\n", encoding="utf-8")
    port = free_port()
    return {
        "memory": write_ini(tmp_path / "memory.ini", "memory://"),
        "default": write_ini(tmp_path / "default.ini", "", "# the default store: memory\n"),
        "redis-down": write_ini(tmp_path / "redis-down.ini", f"redis://127.0.0.1:{port}/0"),
        # A Redis Cluster is connected at start-up: the application cannot even load.
        "cluster-down": write_ini(
            tmp_path / "cluster-down.ini",
            f"redis://127.0.0.1:{port}/0",
            "jeff.redis.cluster = true\n",
        ),
        "pg-down": write_ini(
            tmp_path / "pg-down.ini", f"postgresql+psycopg://postgres@127.0.0.1:{port}/jeff"
        ),
        "plain": str(plain),
        "missing": str(tmp_path / "missing.ini"),
    }


# (arguments, with {name} an ini of `inis`; exit code; what the output must say)
FAILURES = [
    ((), 2, "required: CONFIG_URI, COMMAND"),
    (("{memory}",), 2, "required: COMMAND"),
    (("{memory}", "frob"), 2, "invalid choice: 'frob'"),
    (("{memory}", "list"), 2, "required: KEY"),
    (("{memory}", "revoke", ALICE), 2, "required: SESSION_ID"),
    (("{memory}", "list", ""), 2, "not a session key"),
    (("{memory}", "--var", "novalue", "stats"), 2, "expected NAME=VALUE"),
    (("{memory}", "list", ALICE), 2, "the memory store lives inside the application process"),
    (("{default}", "revoke-everyone", "--yes"), 2, "use Redis, memcached or SQL"),
    (("{plain}", "stats"), 2, "does not use pyramid_jeff"),
    (("{missing}", "stats"), 2, "cannot load the application"),
    (("{memory}#nosuchapp", "stats"), 2, "No section 'nosuchapp'"),
    (("{redis-down}", "list", ALICE), 3, "the session store is unavailable"),
    (("{pg-down}", "revoke-all", ALICE), 3, "the session store is unavailable"),
    (("{cluster-down}", "stats"), 3, "the session store is unavailable (at start-up)"),
    (("--help",), 0, "exit codes:"),
    *[
        (("{memory}", command, "--help"), 0, f"usage: pjeff CONFIG_URI {command}")
        for command in ("list", "revoke", "revoke-all", "revoke-everyone", "sweep", "stats")
    ],
]


def _args(template: tuple[str, ...], inis: dict[str, str]) -> list[str]:
    return [arg.format(**inis) if arg.startswith("{") else arg for arg in template]


# One of each kind, for the real script (each run costs half a second).
SCRIPT_FAILURES = [FAILURES[i] for i in (0, 2, 3, 7, 9, 12, 15, 16)]


def test_the_installed_script_fails_clearly(inis: dict[str, str]) -> None:
    """The failures, from the real script; all at once, as they share nothing."""
    env = {**os.environ, "PYTHONPATH": str(Path(inis["plain"]).parent)}
    runs = [
        subprocess.Popen(
            [SCRIPT, *_args(args, inis)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args, _, _ in SCRIPT_FAILURES
    ]
    for run, (args, rc, says) in zip(runs, SCRIPT_FAILURES, strict=True):
        out, err = run.communicate(timeout=60)
        assert (run.returncode, says in out + err) == (rc, True), (args, out, err)
        if rc == 2 and "--help" not in args:
            assert not out, "errors go to stderr"
            assert "Traceback" not in err, err


@pytest.mark.parametrize(("args", "rc", "says"), FAILURES)
def test_failures_in_process(
    inis: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    rc: int,
    says: str,
) -> None:
    monkeypatch.syspath_prepend(str(Path(inis["plain"]).parent))
    result = pjeff(*_args(args, inis))
    assert (result.rc, says in result.out + result.err) == (rc, True), result


# -- real stores -----------------------------------------------------------------------------


@dataclass
class Site:
    """An ini file, and the manager of the application loaded from it."""

    kind: str
    ini: str
    manager: SessionManager

    def login(
        self, key: str | int, ip: str | None = None, user_agent: str | None = None
    ) -> Credential:
        _, credential = self.manager.create(key, ip=ip, user_agent=user_agent)
        return credential

    def live(self, credential: Credential) -> bool:
        return self.manager.verify(credential) is not None


def _module_store_url(
    request: pytest.FixtureRequest, tmp: Path, stack: contextlib.ExitStack
) -> str:
    """An empty store shared by this module's tests (conftest's are one per test)."""
    kind = request.param
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.flushdb()
        client.close()
        return url
    if kind == "memcached":
        url = request.getfixturevalue("memcached_url")
        request.getfixturevalue("memcached_server").flush()
        return url
    if kind == "sqlite":
        return f"sqlite:///{tmp / 'sessions.sqlite'}"
    try:
        return stack.enter_context(postgresql_database())
    except DatabaseUnavailable as exc:
        need(f"PostgreSQL is not reachable: {exc}")
        raise


@pytest.fixture(scope="module", params=["redis", "memcached", "sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One ini file and application per store, for the whole module: each test uses
    keys of its own."""
    tmp = tmp_path_factory.mktemp("pjeff")
    with contextlib.ExitStack() as stack:
        url = _module_store_url(request, tmp, stack)
        ini = write_ini(tmp / "app.ini", url, "jeff.idle_timeout = 7200\n")
        # The same, with the URL from the command line (--var).
        write_ini(tmp / "var.ini", "%(store_url)s")
        manager = jeff_policy(get_app(ini).registry).manager
        stack.callback(manager.store.close)
        yield Site(request.param, ini, manager)


def test_list(site: Site) -> None:
    alice = "list-alice@example.com"
    first = site.login(alice, ip="192.0.2.1", user_agent=FIREFOX)
    time.sleep(0.002)  # newest first: by creation time, to the millisecond
    second = site.login(alice, ip="2001:db8::1", user_agent="evil\x1b[2J\x07agent")
    site.login("list-bob")
    forty_two = site.login(42)  # remember(request, 42) keeps the key as "42"

    listed = script(site.ini, "list", alice, "--json")
    assert listed.rc == 0, listed
    sessions = json.loads(listed.out)
    assert [s["id"] for s in sessions] == [second.session_id, first.session_id]
    assert sessions == [s.__json__() for s in site.manager.sessions(alice)]
    assert sessions[1]["ip"] == "192.0.2.1"
    assert sessions[1]["user_agent"] == FIREFOX

    text = pjeff(site.ini, "list", alice)
    assert text.rc == 0, text
    title, header, *rows = text.out.splitlines()
    assert title == (
        f"2 live session(s) of {alice}, newest first (UTC; unused for 2h, a session ends "
        "before EXPIRES)"
    )
    assert header.split() == ["ID", "CREATED", "LAST", "SEEN", "EXPIRES", "IP", "USER", "AGENT"]
    assert [row.split()[0] for row in rows] == [second.session_id, first.session_id]
    assert "2001:db8::1" in rows[0]
    assert rows[0].endswith("evil\\x1b[2J\\x07agent"), "no terminal escapes from a browser"
    assert rows[1].endswith(FIREFOX)
    assert header.index("USER AGENT") == rows[1].index("Mozilla")  # aligned columns

    digits = pjeff(site.ini, "list", "42").out.splitlines()
    assert digits[2].split() == [forty_two.session_id, *digits[2].split()[1:-2], "-", "-"]
    assert pjeff(site.ini, "list", "nobody").out == "nobody has no live sessions\n"
    assert json.loads(pjeff(site.ini, "list", "nobody", "--json").out) == []


def test_revoke_and_revoke_all(site: Site) -> None:
    carol = "revoke-carol@example.com"
    first, second, third = (site.login(carol) for _ in range(3))
    dave = site.login("revoke-dave")

    # The exit code through the real script once; the same code runs in-process after.
    run = script if site.kind == "redis" else pjeff
    revoked = run(site.ini, "revoke", carol, first.session_id)
    assert (revoked.rc, revoked.out) == (0, f"revoked session {first.session_id} of {carol}\n")
    assert not site.live(first)
    again = run(site.ini, "revoke", carol, first.session_id)
    assert again.rc == 1, again
    assert again.out.startswith(f"no live session {first.session_id} of {carol}")
    # Another key's session, and no session id at all: nothing is revoked.
    assert pjeff(site.ini, "revoke", carol, dave.session_id).rc == 1
    assert "not a session id" in pjeff(site.ini, "revoke", carol, "nope").out
    assert site.live(dave)

    typo = pjeff(site.ini, "revoke-all", carol, "--keep", "typo")
    assert typo.rc == 2 and "not a session id" in typo.err, typo
    assert site.live(second) and site.live(third)
    kept = pjeff(site.ini, "revoke-all", carol, "--keep", third.session_id)
    assert kept.rc == 0, kept
    assert kept.out == f"revoked 1 live session(s) of {carol} (kept {third.session_id})\n"
    assert (site.live(second), site.live(third), site.live(dave)) == (False, True, True)
    assert pjeff(site.ini, "revoke-all", carol).out == f"revoked 1 live session(s) of {carol}\n"
    assert pjeff(site.ini, "list", carol, "--json").out.strip() == "[]"


def test_revoke_everyone(site: Site) -> None:
    erin, frank = site.login("everyone-erin"), site.login("everyone-frank")

    refused = pjeff(site.ini, "revoke-everyone")
    assert refused.rc == 2, refused
    assert "every user must log in again" in refused.err and "--yes" in refused.err
    assert site.live(erin) and site.live(frank)

    done = pjeff(site.ini, "revoke-everyone", "--yes")
    assert done.rc == 0, done
    assert done.out.startswith("revoked every session created until ")
    assert not site.live(erin) and not site.live(frank)
    assert pjeff(site.ini, "list", "everyone-erin", "--json").out.strip() == "[]"
    assert site.live(site.login("everyone-erin")), "a login after it works"


def test_sweep(site: Site) -> None:
    grace = "sweep-grace@example.com"
    # A session that expired a day ago, made by a manager whose clock is a month behind.
    past = copy.copy(site.manager)
    now = site.manager.clock()
    past.clock = lambda: now - site.manager.max_age_ms - 86_400_000
    dead, _ = past.create(grace)
    live = site.login(grace)

    swept = pjeff(site.ini, "sweep")
    assert swept.rc == 0, swept
    if hasattr(site.manager.store, "sweep"):
        assert re.fullmatch(r"dropped [1-9]\d* dead session\(s\)\n", swept.out), swept
        assert site.manager.store.get(key_digest(grace), dead.id) is None
        assert pjeff(site.ini, "sweep").out == "dropped 0 dead session(s)\n"
    else:
        assert "drops dead sessions by itself: nothing to sweep" in swept.out
    assert site.live(live)


def test_stats(site: Site) -> None:
    text, as_json = pjeff(site.ini, "stats"), pjeff(site.ini, "stats", "--json")
    assert (text.rc, as_json.rc) == (0, 0), (text, as_json)
    stats = json.loads(as_json.out)
    store_stats = getattr(site.manager.store, "stats", None)
    if store_stats is None:
        assert stats == {}
        assert "keeps no statistics" in text.out
        return
    assert isinstance(stats, dict) and set(stats) == set(store_stats())
    assert [line.split(": ", 1)[0] for line in text.out.splitlines()] == list(stats)


def test_config_vars(site: Site) -> None:
    url = jeff_url(site.ini)
    ini = str(Path(site.ini).with_name("var.ini"))
    henry = site.login("vars-henry")
    listed = pjeff("--var", f"store_url={url}", ini, "list", "vars-henry", "--json")
    assert [s["id"] for s in json.loads(listed.out)] == [henry.session_id], listed
    unset = pjeff(ini, "list", "vars-henry")
    assert unset.rc == 2 and "'store_url'" in unset.err, unset


def jeff_url(ini: str) -> str:
    for line in Path(ini).read_text(encoding="utf-8").splitlines():
        if line.startswith("jeff.store = "):
            return line.split(" = ", 1)[1]
    raise AssertionError(ini)


class BareStore:
    """A store with the protocol's methods only: no sweep, no stats."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        for name in ("create", "get", "touch", "list", "revoke", "revoke_all", "close"):
            setattr(self, name, getattr(inner, name))
        self.revoke_everyone = inner.revoke_everyone


def bare_store(settings: dict[str, Any]) -> BareStore:
    """``jeff.store = tests.test_pjeff.bare_store``: SQLite, made bare."""
    from pyramid_jeff.sql_store import SQLStore

    return BareStore(SQLStore.from_url(settings["pjeff_test.url"]))


def test_a_store_without_sweep_or_stats(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bare.sqlite'}"
    ini = write_ini(tmp_path / "bare.ini", f"{__name__}.bare_store", f"pjeff_test.url = {url}\n")
    swept = pjeff(ini, "sweep")
    assert swept.out == "BareStore drops dead sessions by itself: nothing to sweep\n", swept
    assert pjeff(ini, "stats").out == "BareStore keeps no statistics\n"
    assert pjeff(ini, "stats", "--json").out == "{}\n"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["pjeff", ini, "stats"], quiet=True) == 0
    assert out.getvalue() == ""


# -- helpers -----------------------------------------------------------------------------------


def test_printable_escapes_what_a_terminal_would_obey() -> None:
    assert printable(None) == "-"
    assert printable("Firefox/130.0 ünïcode") == "Firefox/130.0 ünïcode"
    assert printable("a\x1b[31m\nb\u202ec") == "a\\x1b[31m\\nb\\u202ec"


def test_session_ids_that_start_with_a_dash_are_values() -> None:
    """One session id in 64 starts with "-": it is still no option."""
    dashed = "-" + "a" * 20 + "-"
    revoke = PJeffCommand(["pjeff", "app.ini", "revoke", "-" * 22, dashed]).args
    assert (revoke.key, revoke.session_id) == ("-" * 22, dashed)
    revoke_all = PJeffCommand(["pjeff", "app.ini", "revoke-all", "k", "--keep", dashed]).args
    assert revoke_all.keep == dashed
    with pytest.raises(SystemExit):  # what is not a session id is an option, as usual
        PJeffCommand(["pjeff", "app.ini", "revoke", "k", "-x"])


def test_durations_and_json() -> None:
    assert [_seconds(n) for n in (86400, 7200, 90, 61)] == ["1d", "2h", "90s", "61s"]
    assert [_seconds(n) for n in (120, 3600 * 36)] == ["2m", "36h"]
    assert _json_default(b"ok\xff") == "ok\\xff"
    with pytest.raises(TypeError):
        _json_default(object())


def test_a_reader_that_goes_away_is_no_traceback(site: Site) -> None:
    # `pjeff ... list KEY | head`: the output pipe closes before pjeff writes to it.
    key = "pipe@example.com"
    site.login(key)
    read, write = os.pipe()
    os.close(read)
    saved = sys.stdout
    sys.stdout = os.fdopen(write, "w", buffering=1)
    try:
        rc = main(["pjeff", site.ini, "list", key])
    finally:
        broken, sys.stdout = sys.stdout, saved
        with contextlib.suppress(OSError):
            broken.close()
    assert rc == 141
