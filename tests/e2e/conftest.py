"""A real server for end-to-end tests: exactly what ``make run`` starts (``manage.py serve
--migrate --seed``: embedded PostgreSQL + embedded Redis + uvicorn + Celery worker/beat), with no
DATABASE_URL / REDIS_URL, in a run directory of its own (never the checkout's ``.run/``)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, base: str) -> None:
        self.base = base
        self.ws = base.replace("http://", "ws://")

    def request(self, method: str, path: str, body=None, token: str | None = None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None


@pytest.fixture(scope="session")
def live_server_embedded():
    run_dir = Path(tempfile.mkdtemp(prefix="groupbuy-e2e-"))
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX"}
    }
    env.update(
        RUN_DIR=str(run_dir),
        ANNOUNCEMENT_SWEEP_SECONDS="1",
        ORDER_EXPIRY_SWEEP_SECONDS="1",
        DEBUG="true",
    )
    port = _free_port()
    log_path = run_dir / "server.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--migrate", "--seed", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(base + "/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start:\n" + log_path.read_text()[-3000:])
        time.sleep(0.3)
    server = Server(base)
    server.run_dir = run_dir
    server.log_path = log_path
    server.process = proc
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    shutil.rmtree(run_dir, ignore_errors=True)
