"""Serve one variant app with waitress on loopback (started by http_load.py, one per variant).

python benchmarks/serve.py VARIANT PORT REDIS_URL
"""

from __future__ import annotations

import logging
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(1, os.path.dirname(HERE))  # the repository root, for pyramid_jeff

import waitress  # noqa: E402
from whatif import build  # noqa: E402


def main() -> None:
    name, port, redis_url = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = build(name, redis_url)  # a variant of apps.py or a what-if of whatif.py
    # "Task queue depth is N" is expected under wrk's load: not worth a line per request
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)
    # waitress defaults (4 threads) as users run it; loopback only; no access log
    waitress.serve(app, host="127.0.0.1", port=port, _quiet=True)


if __name__ == "__main__":
    main()
