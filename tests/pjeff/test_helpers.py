"""A store without sweep or stats, and pjeff's helpers: escapes, ids, durations, JSON."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest

from pyramid_jeff.pjeff import PJeffCommand, _json_default, _seconds, main, printable

from .cli import (
    pjeff,
    write_ini,
)


class BareStore:
    """A store with the protocol's methods only: no sweep, no stats."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        for name in ("create", "get", "touch", "list", "revoke", "revoke_all", "close"):
            setattr(self, name, getattr(inner, name))
        self.revoke_everyone = inner.revoke_everyone


def bare_store(settings: dict[str, Any]) -> BareStore:
    """``jeff.store = tests.pjeff.test_helpers.bare_store``: SQLite, made bare."""
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
