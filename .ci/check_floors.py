"""Fail unless this environment has exactly the versions pinned in the given floors file.

Run by `make test-floors` inside .venv-floors, before the tests: a pin that pip could not
honour, or a dependency resolved to something newer, must not pass as "tested on the floors".
"""

from __future__ import annotations

import sys
from importlib.metadata import version


def _release(text: str) -> tuple[int, ...]:
    parts = [int(part) for part in text.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def main(path: str) -> int:
    bad = []
    with open(path, encoding="utf-8") as pins:
        for line in pins:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, wanted = line.split("==")
            have = version(name)
            status = "ok" if _release(have) == _release(wanted) else "WRONG"
            print(f"floors: {name}=={have} (pinned {wanted}) {status}")
            if status != "ok":
                bad.append(name)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
