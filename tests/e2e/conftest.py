"""A real server for end-to-end tests: ``manage.py serve`` (uvicorn + Celery worker/beat +
embedded Redis) on a scratch SQLite database, exactly what ``make run`` starts."""

import json
import os
import socket
import subprocess
import sys
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
def live_server_embedded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "REDIS_URL", "REDIS_KEY_PREFIX"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp / 'e2e.sqlite3'}",
        ANNOUNCEMENT_SWEEP_SECONDS="1",
        ORDER_EXPIRY_SWEEP_SECONDS="1",
        DEBUG="true",
    )
    py = sys.executable
    subprocess.run([py, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    subprocess.run(
        [py, "manage.py", "seed_demo"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    port = _free_port()
    log = open(tmp / "server.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [py, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(base + "/health/ready", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("server did not start:\n" + (tmp / "server.log").read_text()[-3000:])
        time.sleep(0.3)
    yield Server(base)
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
