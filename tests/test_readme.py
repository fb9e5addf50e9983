"""The README's Quick start runs as pasted: its files are written to an empty directory,
``python app.py`` serves them, and a user logs in and out through them over HTTP."""

from __future__ import annotations

import ast
import http.cookiejar
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
QUICK_PORT = "6543"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def named_blocks(text: str) -> dict[str, str]:
    """Code blocks introduced by a line that is just a file name: "`app.py`:"."""
    pattern = re.compile(r"^`([\w.]+)`:\n\n```\w*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
    return {name: body for name, body in pattern.findall(text)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Browser:
    """Cookies kept, redirects followed, like a browser."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[str, str]:
        with self.opener.open(self.base + path, timeout=10) as response:
            return response.geturl(), response.read().decode()

    def post(self, path: str, form: dict[str, str]) -> tuple[str, str]:
        data = urllib.parse.urlencode(form).encode()
        with self.opener.open(self.base + path, data=data, timeout=10) as response:
            return response.geturl(), response.read().decode()


def csrf_token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


@pytest.fixture
def quick_start(tmp_path: Path) -> Iterator[str]:
    blocks = named_blocks(section("Quick start"))
    assert set(blocks) == {"app.py", "app.ini"}
    port = str(free_port())
    for name, body in blocks.items():
        # As pasted, but on a free port: 6543 may be taken on a test machine.
        assert QUICK_PORT in body or name == "app.ini"
        (tmp_path / name).write_text(body.replace(QUICK_PORT, port), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = subprocess.Popen(
        [sys.executable, "app.py"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("localhost", int(port)), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    output = server.communicate()[0]
                    pytest.fail(f"the Quick start did not start:\n{output}")
                time.sleep(0.1)
        yield f"http://localhost:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stdout is not None:
            server.stdout.close()


def test_the_install_line_installs_this_checkout() -> None:
    """Until pyramid_jeff is on PyPI: ``pip install .`` where setup.py names it."""
    assert "```sh\npip install .\n```" in section("Install")
    setup = (README.parent / "setup.py").read_text(encoding="utf-8")
    assert 'name="pyramid_jeff"' in setup


def test_the_quick_start_runs_and_logs_in_and_out(quick_start: str) -> None:
    browser = Browser(quick_start)
    url, page = browser.get("/")
    assert url.endswith("/login?next=%2F")  # anonymous: sent to log in
    token = csrf_token(page)

    with pytest.raises(urllib.error.HTTPError) as refused:
        browser.post("/login", {"email": "alice@example.com", "password": "wonderland"})
    assert refused.value.code == 400  # no CSRF token: refused
    refused.value.close()

    form = {"csrf_token": token, "next": "/", "remember_me": "on"}
    url, page = browser.post("/login", {**form, "email": "alice@example.com", "password": "x"})
    assert "Wrong e-mail or password." in page
    token = csrf_token(page)

    form = {**form, "csrf_token": token}
    url, page = browser.post(
        "/login", {**form, "email": "alice@example.com", "password": "wonderland"}
    )
    assert url == quick_start + "/"
    assert "Hello alice@example.com" in page
    assert page.count("<li>") == 1  # this one session
    (cookie,) = [c for c in browser.jar if c.name == "jeff"]
    assert cookie.expires is not None  # "remember me" ticked: a persistent cookie

    url, page = browser.post("/logout", {"csrf_token": csrf_token(page)})
    assert url.endswith("/login")
    url, page = browser.get("/")
    assert url.endswith("/login?next=%2F")  # logged out


def test_the_snippets_of_the_first_sections_are_valid_python() -> None:
    text = section("Quick start") + section("Including it in your application")
    blocks = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        ast.parse(block)


def test_the_quoted_adoption_is_the_tested_one() -> None:
    text = section("Adopting it in an existing app")
    python, ini = re.findall(r"```(?:python|ini)\n(.*?)```", text, re.DOTALL)
    adoption = Path(__file__).parent / "adoption" / "wiki2"
    assert python == (adoption / "tutorial" / "security.py").read_text(encoding="utf-8")
    tested = (adoption / "jeff.ini").read_text(encoding="utf-8").splitlines()
    quoted = ini.splitlines()
    assert [line for line in quoted if not line.startswith("jeff.store")] == [
        line for line in tested if not line.startswith(("jeff.store", "jeff.cookie_secure"))
    ]
