"""What `pip install pyramid_jeff` puts into a user's environment, and what the sdist ships.

The wheel and the sdist are built from a clean copy of the source tree (no .venv, no stale
build/ or *.egg-info whose leftovers setuptools would pack), the way a release is built.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SKIP = shutil.ignore_patterns(
    ".git",
    ".venv*",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    "node_modules",
)


def _run(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("pkg") / "src"
    shutil.copytree(ROOT, tree, ignore=_SKIP)
    return tree


@pytest.fixture(scope="module")
def wheel(source: Path) -> tuple[Path, str]:
    """The wheel as pip builds it (isolated build, current setuptools), and the build log."""
    out = source.parent / "wheelhouse"
    log = _run(
        sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), ".", cwd=source
    )
    (path,) = out.glob("pyramid_jeff-*.whl")
    return path, log


def _setup_kwargs(source: Path) -> dict[str, object]:
    """install_requires, the extras and the version, read from setup.py without running
    setuptools."""
    text = (source / "setup.py").read_text(encoding="utf-8")
    requires = re.search(r"install_requires=\[([^\]]*)\]", text)
    version = re.search(r'version="([^"]+)"', text)
    assert requires and version
    extras = {
        name: re.findall(r'"([^"]+)"', listed)
        for name, listed in re.findall(r'^\s+"(\w+)": \[([^\]]*)\]', text, re.MULTILINE)
    }
    return {
        "install_requires": re.findall(r'"([^"]+)"', requires.group(1)),
        "extras_require": extras,
        "version": version.group(1),
    }


def test_the_wheel_installs_only_pyramid_jeff(wheel: tuple[Path, str]) -> None:
    path, _ = wheel
    names = zipfile.ZipFile(path).namelist()
    tops = {name.split("/", 1)[0] for name in names}
    dist_info = {top for top in tops if top.endswith(".dist-info")}
    assert len(dist_info) == 1
    assert tops - dist_info == {"pyramid_jeff"}, sorted(tops)
    assert "pyramid_jeff/py.typed" in names
    assert "pyramid_jeff/__init__.py" in names
    assert not [name for name in names if "demo" in name.lower()], names


def test_the_wheel_declares_no_app_factory(wheel: tuple[Path, str]) -> None:
    path, _ = wheel
    with zipfile.ZipFile(path) as zf:
        entry_points = [name for name in zf.namelist() if name.endswith("/entry_points.txt")]
        text = "".join(zf.read(name).decode() for name in entry_points)
        metadata = next(name for name in zf.namelist() if name.endswith(".dist-info/METADATA"))
        meta = zf.read(metadata).decode()
        licenses = [name for name in zf.namelist() if name.rsplit("/", 1)[-1] == "LICENSE"]
    assert "paste.app_factory" not in text
    assert "demo" not in text
    # Its only entry point is the operators' console script.
    declared = configparser.ConfigParser()
    declared.read_string(text)
    assert {name: dict(declared[name]) for name in declared.sections()} == {
        "console_scripts": {"pjeff": "pyramid_jeff.pjeff:main"}
    }, text
    assert licenses, "the MIT license text travels with the wheel"
    assert "License: MIT" in meta or "License-Expression: MIT" in meta


def test_setuptools_warns_about_nothing_it_would_drop(wheel: tuple[Path, str]) -> None:
    _, log = wheel
    assert "would be ignored" not in log, log
    assert "Package would be" not in log, log


def test_the_declared_floors_are_the_tested_ones(source: Path) -> None:
    """setup.py's `name>=X` is exactly the `name==X` that `make test-floors` installs."""
    pins = {}
    for line in (source / ".ci" / "floors.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = version
    kwargs = _setup_kwargs(source)
    requires = kwargs["install_requires"]
    extras = kwargs["extras_require"]
    assert isinstance(requires, list) and isinstance(extras, dict)
    floors = {}
    for requirement in [*requires, *extras["memcached"], *extras["sql"]]:
        name, version = requirement.split(">=")
        floors[name.lower()] = version
    assert floors == {name: pins[name.lower()] for name in floors}, (floors, pins)
    assert set(floors) == {"pyramid", "redis", "msgpack", "pymemcache", "sqlalchemy"}


def test_the_sdist_ships_the_license_and_the_changes(source: Path) -> None:
    out = source.parent / "sdist"
    _run(sys.executable, "setup.py", "-q", "sdist", "-d", str(out), cwd=source)
    (path,) = out.glob("pyramid_jeff-*.tar.gz")
    with tarfile.open(path) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for wanted in ("LICENSE", "CHANGES.md", "README.md", "pyramid_jeff/py.typed"):
        assert wanted in names, sorted(names)
    # The demo's own distribution travels as source, for development.ini and redis.ini.
    assert "demo/setup.py" in names
    assert "demo/pyramid_jeff_demo/templates/layout.jinja2" in names


def test_changes_has_a_section_for_this_version(source: Path) -> None:
    version = str(_setup_kwargs(source)["version"])
    release = re.sub(r"\.dev\d+$", "", version)
    changes = (source / "CHANGES.md").read_text(encoding="utf-8")
    assert re.search(rf"^## {re.escape(release)}\b", changes, re.M), changes[:200]
    assert "Copyright (c) 2026 the pyramid_jeff authors" in (source / "LICENSE").read_text()
