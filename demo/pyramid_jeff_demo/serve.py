"""The demo's server: waitress, on a port that ``pserve development.ini http_port=6544`` changes.

``[server:main]`` says ``use = call:pyramid_jeff_demo.serve:server``. A plain
``listen = localhost:%(http_port)s`` could have no default: PasteDeploy lets a ``[DEFAULT]``
value of the file win over the one given on the command line. So this factory reads the
command line's ``http_port`` itself, and turns a port that is taken into one line of advice
instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

import waitress


def server(
    global_conf: dict[str, Any], listen: str = "localhost:6543", **settings: Any
) -> Callable[[Any], None]:
    """PasteDeploy server factory: waitress with the ini's settings, ``http_port`` applied."""
    port = str(global_conf.get("http_port", ""))
    ini = os.path.basename(str(global_conf.get("__file__", "development.ini")))
    if port:
        if not (port.isascii() and port.isdigit() and 0 <= int(port) <= 65535):
            sys.exit(f"http_port={port}: a port is a number from 0 to 65535")
        listen = " ".join(f"{address.rpartition(':')[0]}:{port}" for address in listen.split())

    def serve(app: Any) -> None:
        try:
            waitress.serve(app, listen=listen, **settings)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            taken = listen.split()[0].rpartition(":")[2]
            other = int(taken) + 1 if taken.isdigit() and int(taken) < 65535 else 6544
            sys.stderr.write(
                f"Cannot serve on {listen}: that port is taken (another pserve?). "
                f"Choose another one: pserve {ini} http_port={other}\n"
            )
            sys.stderr.flush()
            # Not sys.exit: pserve reports a SystemExit with exit status 0.
            os._exit(1)

    return serve
