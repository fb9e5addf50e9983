"""pjeff's failures that need no store: usage, applications it refuses, stores nobody
answers for."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ..redis_server import free_port
from .cli import (
    ALICE,
    PLAIN_APP,
    SCRIPT,
    pjeff,
    write_ini,
)

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
