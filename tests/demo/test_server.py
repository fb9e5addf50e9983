"""The demo's server: the port from the command line, and a port that is taken."""

from __future__ import annotations

import configparser
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import waitress

from pyramid_jeff_demo.serve import server


def test_the_port_comes_from_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    served: list[str] = []
    monkeypatch.setattr(waitress, "serve", lambda app, listen, **kw: served.append(listen))
    server({"http_port": "6544"}, listen="localhost:6543 [::1]:6543", threads="4")(None)
    server({}, listen="localhost:6543")(None)
    assert served == ["localhost:6544 [::1]:6544", "localhost:6543"]
    with pytest.raises(SystemExit, match="a port is a number"):
        server({"http_port": "80a"})


def test_a_port_that_is_taken_is_one_line_of_advice(tmp_path: Path) -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(Path(__file__).resolve().parents[2] / "development.ini")
    ini["server:main"]["listen"] = "127.0.0.1:6543"
    path = tmp_path / "taken.ini"
    with path.open("w") as f:
        ini.write(f)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "pyramid.scripts.pserve", str(path), f"http_port={port}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 1, done
    assert done.stderr.endswith(
        f"Cannot serve on 127.0.0.1:{port}: that port is taken (another pserve?). "
        f"Choose another one: pserve taken.ini http_port={port + 1}\n"
    ), done.stderr
    assert "Traceback" not in done.stdout + done.stderr
