"""The ``pjeff`` console script against real stores (Redis, SQLite, PostgreSQL).

Each store's test loads the demo application from an ini file written here, logs users
in through that application's manager, and checks what ``pjeff`` (the installed script,
in another process; or ``pyramid_jeff.pjeff.main`` in this one, which coverage sees)
prints and exits with. Scripts are slow to start (~0.5 s), so most runs are in-process
and the script runs where another process matters.
"""
