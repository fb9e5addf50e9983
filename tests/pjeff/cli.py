"""pjeff run as the installed script or in this process, the ini files it reads, and the
application an ini file loads."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pyramid_jeff import SessionManager
from pyramid_jeff.credentials import Credential
from pyramid_jeff.pjeff import main

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


def jeff_url(ini: str) -> str:
    for line in Path(ini).read_text(encoding="utf-8").splitlines():
        if line.startswith("jeff.store = "):
            return line.split(" = ", 1)[1]
    raise AssertionError(ini)
