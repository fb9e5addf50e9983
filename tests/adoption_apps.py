"""The two apps of Pyramid's documentation that tests/test_adoption.py adopts: where they are
in the sdist, how each is made runnable and adopted, and a pytest run in an app's directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

PYRAMID = "pyramid==2.1"
ADOPTION = Path(__file__).parent / "adoption"
RUN_TIMEOUT = 300  # seconds, for any one subprocess


# -- the apps and their adoption -----------------------------------------------------


def edit(path: Path, old: str, new: str) -> None:
    """Replace ``old`` (which must be there: upstream changed otherwise) by ``new``."""
    text = path.read_text()
    assert old in text, f"{path.name} no longer contains {old!r}"
    path.write_text(text.replace(old, new, 1))


def jeff_settings(app: str, store: str, key_prefix: str) -> str:
    """The app's ``adoption/<app>/jeff.ini`` lines, on ``store``."""
    lines = (ADOPTION / app / "jeff.ini").read_text()
    lines = lines.replace("jeff.store = memory://", f"jeff.store = {store}")
    if store != "memory://":
        lines += f"jeff.redis.key_prefix = {key_prefix}\n"
    return lines


def prepare_wiki2(app: Path) -> None:
    edit(app / "testing.ini", "use = egg:tutorial\n", "use = call:tutorial:main\n")


def adopt_wiki2(app: Path, settings: str) -> None:
    shutil.copyfile(ADOPTION / "wiki2/tutorial/security.py", app / "tutorial/security.py")
    edit(
        app / "testing.ini", "use = call:tutorial:main\n", "use = call:tutorial:main\n" + settings
    )


def prepare_quick_tutorial(app: Path) -> None:
    """A ``testing.ini`` from its ``development.ini``, without the debug toolbar."""
    ini = app / "testing.ini"
    shutil.copyfile(app / "development.ini", ini)
    edit(ini, "use = egg:tutorial\n", "use = call:tutorial:main\n")
    edit(ini, "pyramid.includes =\n    pyramid_debugtoolbar\n", "")
    shutil.copyfile(ADOPTION / "quick_tutorial/tests.py", app / "tutorial/tests.py")


def adopt_quick_tutorial(app: Path, settings: str) -> None:
    shutil.copyfile(ADOPTION / "quick_tutorial/tutorial/security.py", app / "tutorial/security.py")
    init = app / "tutorial/__init__.py"
    edit(init, "from .security import SecurityPolicy\n\n", "")
    edit(
        init,
        "    config.set_security_policy(\n"
        "        SecurityPolicy(\n"
        "            secret=settings['tutorial.secret'],\n"
        "        ),\n"
        "    )\n",
        "    config.include('pyramid_jeff')\n",
    )
    edit(
        app / "testing.ini", "use = call:tutorial:main\n", "use = call:tutorial:main\n" + settings
    )


@dataclass(frozen=True)
class App:
    name: str
    subdir: str  # in the sdist
    prepare: Callable[[Path], None]  # make it runnable uninstalled
    adopt: Callable[[Path, str], None]  # (app, jeff settings)
    tests: tuple[str, ...]  # pytest arguments that run its own tests
    own_tests: int  # how many there are (pinned with the pyramid version)
    changed_files: frozenset[str]  # what the adoption touches
    max_added_lines: int  # lines the adoption adds, all files together


WIKI2 = App(
    name="wiki2",
    subdir="docs/tutorials/wiki2/src/tests",
    prepare=prepare_wiki2,
    adopt=adopt_wiki2,
    tests=(),  # its pyproject.toml's testpaths
    own_tests=27,
    changed_files=frozenset({"testing.ini", "tutorial/security.py"}),
    max_added_lines=20,
)
QUICK_TUTORIAL = App(
    name="quick_tutorial",
    subdir="docs/quick_tutorial/authorization",
    prepare=prepare_quick_tutorial,
    adopt=adopt_quick_tutorial,
    tests=("tutorial/tests.py",),
    own_tests=15,
    changed_files=frozenset({"testing.ini", "tutorial/__init__.py", "tutorial/security.py"}),
    max_added_lines=10,
)
APPS = {app.name: app for app in (WIKI2, QUICK_TUTORIAL)}
JEFF_CHECKS = 12  # tests in adoption/wiki2/jeff_checks.py


# -- running pytest in an app ---------------------------------------------------------


@dataclass
class Outcome:
    passed: int
    failed: int
    errors: int
    skipped: int
    not_passed: list[str]
    output: str

    def summary(self) -> str:
        return (
            f"{self.passed} passed, {self.failed} failed, {self.errors} errors, "
            f"{self.skipped} skipped; not passed: {self.not_passed}\n{self.output[-6000:]}"
        )


@dataclass
class Run:
    """``python -m pytest`` in an app's directory, started at once, awaited on demand."""

    app: Path
    process: subprocess.Popen[bytes]
    junit: Path
    log: Path
    _outcome: Outcome | None = field(default=None, init=False)

    @classmethod
    def start(cls, app: Path, *args: str) -> Run:
        logs = app.parent / f"{app.name}-logs"
        logs.mkdir()
        junit, log = logs / "junit.xml", logs / "output.txt"
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        path = [str(app), str(ADOPTION / "fast_bcrypt"), env.get("PYTHONPATH")]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
        env.pop("PYTEST_ADDOPTS", None)
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # the apps use none; hypothesis is slow
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        command += ["-W", "ignore::DeprecationWarning", f"--junitxml={junit}", *args]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command, cwd=app, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        return cls(app, process, junit, log)

    def outcome(self) -> Outcome:
        if self._outcome is None:
            self.process.wait(RUN_TIMEOUT)
            output = self.log.read_text(errors="replace")
            assert self.junit.exists(), f"pytest wrote no report:\n{output}"
            passed = failed = errors = skipped = 0
            not_passed = []
            for case in ET.parse(self.junit).getroot().iter("testcase"):
                name = f"{case.get('classname')}.{case.get('name')}"
                kinds = {child.tag for child in case}
                if "error" in kinds:
                    errors += 1
                elif "failure" in kinds:
                    failed += 1
                elif "skipped" in kinds:
                    skipped += 1
                else:
                    passed += 1
                    continue
                not_passed.append(name)
            self._outcome = Outcome(passed, failed, errors, skipped, not_passed, output)
        return self._outcome
