"""Each pjeff command against real stores."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import sys
import time
from pathlib import Path

from pyramid_jeff.credentials import key_digest
from pyramid_jeff.pjeff import main

from .cli import (
    FIREFOX,
    Site,
    jeff_url,
    pjeff,
    script,
)


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
