#!/usr/bin/env python
import os
import sys

import environ


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not os.environ.get("DATABASE_URL") and environ.Env().bool("DEBUG", default=True):
        # No database configured (development): use, starting it if needed, this checkout's
        # embedded PostgreSQL. It stops when the last process using it exits (core/embedded.py).
        # With DEBUG off, settings refuse to run without DATABASE_URL instead.
        from core.embedded import EmbeddedPostgres, run_dir

        os.environ["DATABASE_URL"] = EmbeddedPostgres(run_dir() / "postgres").acquire()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
