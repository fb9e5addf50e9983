"""The ``pjeff`` entry point, ``pyramid_jeff.pjeff:main``, and the names importable from
here. The script is :mod:`pyramid_jeff.scripts.pjeff`; what it prints,
:mod:`pyramid_jeff.scripts.output`."""

from __future__ import annotations

import sys

from .scripts.output import duration as _seconds
from .scripts.output import json_default as _json_default
from .scripts.output import printable
from .scripts.pjeff import PJeffCommand, main

__all__ = ["PJeffCommand", "_json_default", "_seconds", "main", "printable"]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
