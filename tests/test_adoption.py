"""Two Pyramid applications we did not write adopt pyramid_jeff; their own tests still pass.

Both come from Pyramid's own documentation, in the ``pyramid`` sdist on PyPI (downloaded
once per test session, nothing of it is kept in this repository):

- ``wiki2``: the SQLAlchemy wiki tutorial (a pyramid-cookiecutter-starter app, with
  pyramid_tm, pyramid_retry, CSRF and its own test suite);
- ``quick_tutorial``: the quick tutorial's "authorization" step (AuthTkt, ACL root,
  forbidden view = login view); it has no tests, so ``adoption/quick_tutorial/tests.py``
  gives it some, in the tutorial's style.

For each app: run its tests on a copy as Pyramid ships it, then on a copy adopted to
pyramid_jeff (``adoption/<app>/`` holds what its developer would write) on the memory
store and on Redis: the same number must pass, none may fail. The wiki2 app also runs
``adoption/wiki2/jeff_checks.py``: pyramid_tm's user annotation, what an aborted
transaction and pyramid_retry's retries do to a login.

All runs are subprocesses (each app is a package named ``tutorial``), started together,
with bcrypt at 4 rounds and no pytest plugins, for speed (see ``adoption/README.md``).
"""

from __future__ import annotations

import difflib
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from .adoption_apps import ADOPTION, APPS, JEFF_CHECKS, PYRAMID, WIKI2, App, Run, jeff_settings
from .conftest import need

# -- fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pyramid_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two apps' directories from the pyramid sdist (downloaded once a session)."""
    download = tmp_path_factory.mktemp("pyramid-sdist")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
    command += ["--retries", "2", "--timeout", "20", "--no-binary", ":all:"]
    command += [PYRAMID, "-d", str(download)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=300)
    except subprocess.CalledProcessError as exc:
        reason = exc.stderr.strip().splitlines()[-1:]
        need(f"cannot download the {PYRAMID} sdist from PyPI: {' '.join(reason)}")
    except subprocess.TimeoutExpired:
        need(f"cannot download the {PYRAMID} sdist from PyPI: pip download timed out")
    (sdist,) = download.glob("pyramid-*.tar.gz")
    wanted = tuple(f"/{app.subdir}/" for app in APPS.values())
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if any(w in m.name for w in wanted)]
        if hasattr(tarfile, "data_filter"):
            tar.extractall(download, members, filter="data")
        else:  # pragma: no cover  (Python < 3.10.12)
            tar.extractall(download, members)
    (root,) = download.glob("pyramid-*/")
    return root


@dataclass
class Runs:
    """Every pytest run of this module, started together by the ``runs`` fixture."""

    originals: dict[str, Run] = field(default_factory=dict)  # app name ->
    adopted: dict[tuple[str, str], Run] = field(default_factory=dict)  # (app, store) ->
    checks: dict[str, Run] = field(default_factory=dict)  # store -> wiki2's jeff_checks
    copies: dict[tuple[str, str], Path] = field(default_factory=dict)  # for the diffs
    redis_url: str | None = None
    no_redis: str = ""  # why redis_url is None
    key_prefixes: dict[tuple[str, str], str] = field(default_factory=dict)  # (app, store) ->


def optional_redis_url(request: pytest.FixtureRequest) -> tuple[str | None, str]:
    """The private Redis of ``tests/conftest.py``, or None and why not.

    Its skip (its failure, with CI=true) is kept for the Redis tests alone: the memory
    ones run all the same.
    """
    try:
        url: str = request.getfixturevalue("redis_url")
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        return None, str(exc.msg)
    return url, ""


@pytest.fixture(scope="module")
def runs(
    request: pytest.FixtureRequest,
    pyramid_docs: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Runs]:
    redis_url, no_redis = optional_redis_url(request)
    runs = Runs(redis_url=redis_url, no_redis=no_redis)
    stores = {"memory": "memory://"}
    if runs.redis_url is not None:
        stores["redis"] = runs.redis_url
    tag = uuid.uuid4().hex[:8]  # a REDIS_URL may be shared: keys of this session only
    work = tmp_path_factory.mktemp("adoption")

    def copy(app: App, label: str) -> Path:
        target = work / f"{app.name}-{label}"
        shutil.copytree(pyramid_docs / app.subdir, target)
        app.prepare(target)
        return target

    def adopted_copy(app: App, label: str, store: str) -> tuple[Path, str]:
        target = copy(app, f"{label}-{store}")
        prefix = f"adoption-{tag}-{app.name}-{label}:"  # of its Redis keys
        app.adopt(target, jeff_settings(app.name, stores[store], prefix))
        return target, prefix

    for app in APPS.values():
        runs.copies[app.name, "original"] = copy(app, "pristine")
        runs.originals[app.name] = Run.start(copy(app, "original"), *app.tests)
        for store in stores:
            target, prefix = adopted_copy(app, "adopted", store)
            runs.copies[app.name, store] = target
            runs.key_prefixes[app.name, store] = prefix
            runs.adopted[app.name, store] = Run.start(target, *app.tests)
    for store in stores:  # a copy of its own: the checks use the database too
        target, _ = adopted_copy(WIKI2, "checks", store)
        for name in ("jeff_checks.py", "jeff_probes.py"):
            shutil.copyfile(ADOPTION / "wiki2" / name, target / "tests" / name)
        runs.checks[store] = Run.start(target, "tests/jeff_checks.py")
    yield runs
    for run in [*runs.originals.values(), *runs.adopted.values(), *runs.checks.values()]:
        if run.process.poll() is None:
            run.process.kill()
            run.process.wait()
    if runs.redis_url is not None:
        client = redis.Redis.from_url(runs.redis_url, socket_timeout=5)
        for key in client.scan_iter(match=f"adoption-{tag}-*"):
            client.delete(key)
        client.close()


def store_of(runs: Runs, store: str) -> None:
    if store == "redis" and runs.redis_url is None:
        need(f"no Redis for the adopted apps: {runs.no_redis}")


# -- the tests ------------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_original_app_passes_its_own_tests(runs: Runs, name: str) -> None:
    outcome = runs.originals[name].outcome()
    assert (outcome.passed, outcome.not_passed) == (APPS[name].own_tests, []), outcome.summary()


@pytest.mark.parametrize("store", ["memory", "redis"])
@pytest.mark.parametrize("name", APPS)
def test_adopted_app_passes_the_same_tests(runs: Runs, name: str, store: str) -> None:
    store_of(runs, store)
    original = runs.originals[name].outcome()
    outcome = runs.adopted[name, store].outcome()
    assert outcome.not_passed == [], outcome.summary()
    assert outcome.passed == original.passed == APPS[name].own_tests, outcome.summary()
    if store == "redis":  # the logins of those tests went to Redis, not to a cookie
        client = redis.Redis.from_url(runs.redis_url or "", socket_timeout=5)
        keys = list(client.scan_iter(match=runs.key_prefixes[name, store] + "*"))
        client.close()
        assert keys, "no session reached Redis"


@pytest.mark.parametrize("store", ["memory", "redis"])
def test_wiki2_with_pyramid_tm_and_pyramid_retry(runs: Runs, store: str) -> None:
    store_of(runs, store)
    outcome = runs.checks[store].outcome()
    assert (outcome.passed, outcome.not_passed) == (JEFF_CHECKS, []), outcome.summary()


def diff(original: Path, adopted: Path) -> dict[str, tuple[int, int]]:
    """Changed text files: relative path -> (lines added, lines removed)."""
    ignored = re.compile(r"(__pycache__|\.sqlite$|-logs/)")
    changes = {}
    names = {
        path.relative_to(root).as_posix()
        for root in (original, adopted)
        for path in root.rglob("*")
        if path.is_file() and not ignored.search(path.as_posix())
    }
    for name in sorted(names):
        before, after = original / name, adopted / name
        if before.exists() and after.exists() and before.read_bytes() == after.read_bytes():
            continue
        old = before.read_text().splitlines() if before.exists() else []
        new = after.read_text().splitlines() if after.exists() else []
        lines = list(difflib.unified_diff(old, new, lineterm="", n=0))[2:]
        added = sum(line.startswith("+") for line in lines)
        removed = sum(line.startswith("-") for line in lines)
        if added or removed:
            changes[name] = (added, removed)
    return changes


@pytest.mark.parametrize("name", APPS)
def test_adoption_is_a_few_lines(runs: Runs, name: str) -> None:
    app = APPS[name]
    changes = diff(runs.copies[name, "original"], runs.copies[name, "memory"])
    assert set(changes) == app.changed_files, changes
    assert sum(added for added, _ in changes.values()) <= app.max_added_lines, changes
    print(f"\n{name} adoption (added, removed): {changes}")
