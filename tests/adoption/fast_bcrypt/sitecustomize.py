"""Cheap bcrypt hashes for the apps' test runs (on their PYTHONPATH, imported at start-up).

The apps hash with ``bcrypt.gensalt()``, 12 rounds: a quarter of a second per hash or
login, most of the time their suites take. 4 rounds (bcrypt's minimum) changes no
behaviour, only the cost, as test settings of web frameworks usually do.
"""

import bcrypt

_gensalt = bcrypt.gensalt


def gensalt(rounds: int = 4, prefix: bytes = b"2b") -> bytes:
    return _gensalt(rounds, prefix)


bcrypt.gensalt = gensalt
