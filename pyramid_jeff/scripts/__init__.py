"""The console scripts: ``pjeff`` (:mod:`.pjeff`), which lists and revokes the login
sessions of an application, as Pyramid's own ``proutes`` and ``ptweens`` inspect one."""
