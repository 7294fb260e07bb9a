"""api_read: a public read endpoint (20 products from PostgreSQL) vs a bare endpoint (``/health``,
no database) in the same production HTTP server under the same load, in the same run.

Measured for each candidate server so the production choice rests on figures: gunicorn sync
workers (WSGI), gunicorn gthread workers (WSGI), and one uvicorn process (ASGI). The headline ratio
is the production choice's (gunicorn gthread: the most requests per second on both paths, see
README). The production server is measured again with the list's micro-cache off, so the figure
for the database path itself is in every result file too.
"""

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.bench.loadgen import load

NAME = "api_read"
GOAL = "GET /api/v1/products?limit=20 >= 0.30 x GET /health req/s in the production server"
GOAL_RATIO = 0.30
READ_PATH = "/api/v1/products?limit=20"
HELLO_PATH = "/health"
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WORKERS = os.cpu_count() or 2
PRODUCTION = "gunicorn_gthread"


def _ensure_products(n: int = 24) -> None:
    from shop.models import Category, Product, Sku

    have = Product.objects.filter(status=Product.Status.ON_SALE).count()
    category, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    for i in range(have, n):
        product = Product.objects.create(
            title=f"Bench product {i}",
            description="x" * 200,
            category=category,
            status=Product.Status.ON_SALE,
            images=[f"https://img.example.com/{i}.jpg"],
        )
        for j in range(2):
            Sku.objects.create(
                product=product,
                code=f"BENCH-{product.id}-{j}",
                price=990 + j * 100,
                list_price=1990,
                stock=100,
                attributes={"size": ["S", "L"][j]},
            )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _servers(port: int) -> dict[str, list[str]]:
    bind = f"127.0.0.1:{port}"
    return {
        "gunicorn_sync": [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "-b",
            bind,
            "-w",
            str(WORKERS),
            "-k",
            "sync",
        ],
        "gunicorn_gthread": [
            str(BIN / "gunicorn"),
            "config.wsgi",
            "-b",
            bind,
            "-w",
            str(WORKERS),
            "-k",
            "gthread",
            "--threads",
            "4",
        ],
        "uvicorn_1proc": [
            str(BIN / "uvicorn"),
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--lifespan",
            "off",
        ],
    }


def _env(server: str, extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
    )
    if server.startswith("uvicorn"):
        # PITFALLS.md: persistent connections leak under ASGI; use the pool there.
        env.update(DB_POOL_MAX_SIZE="8", DB_CONN_MAX_AGE="0")
    else:
        env.update(DB_CONN_MAX_AGE="60")
    env.update(extra)
    return env


def production_server(port: int, signing_key: str) -> subprocess.Popen:
    """gunicorn with gthread workers as in production, verifying tokens minted by the caller
    (``signing_key``: the benchmark's own ``JWT_SIGNING_KEY``)."""
    return subprocess.Popen(
        _servers(port)["gunicorn_gthread"],
        cwd=ROOT,
        env=_env("gunicorn_gthread", {"JWT_SIGNING_KEY": signing_key}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_ready(base: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + READ_PATH, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("server did not become ready")


def _measure(server: str, seconds: float, extra_env: dict[str, str] | None = None) -> dict:
    port = _free_port()
    proc = subprocess.Popen(
        _servers(port)[server],
        cwd=ROOT,
        env=_env(server, extra_env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        load(base + HELLO_PATH, seconds=2)  # warm-up, both paths
        load(base + READ_PATH, seconds=2)
        hello = load(base + HELLO_PATH, seconds=seconds)
        read = load(base + READ_PATH, seconds=seconds)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    ratio = read["rps"] / hello["rps"] if hello["rps"] else 0.0
    return {"hello": hello, "read": read, "ratio": ratio}


def _record(metrics: dict, label: str, result: dict) -> None:
    metrics[f"{label}.hello_rps"] = round(result["hello"]["rps"], 1)
    metrics[f"{label}.read_rps"] = round(result["read"]["rps"], 1)
    metrics[f"{label}.read_p99_ms"] = result["read"].get("p99_ms")
    metrics[f"{label}.non_2xx"] = result["hello"]["non_2xx"] + result["read"]["non_2xx"]
    metrics[f"{label}.ratio"] = round(result["ratio"], 3)


def run(quick: bool = False) -> dict:
    _ensure_products()
    from django.db import connections

    connections.close_all()
    seconds = 3 if quick else 10
    metrics: dict = {
        "connections": 32,
        "seconds_per_run": seconds,
        "workers": WORKERS,
        "redis_cache": bool(os.environ.get("REDIS_URL")),
    }
    results = {server: _measure(server, seconds) for server in _servers(0)}
    for server, result in results.items():
        _record(metrics, server, result)
    # The same production server with the list's micro-cache off: the database path itself.
    uncached = _measure(PRODUCTION, seconds, {"CATALOG_LIST_CACHE_SECONDS": "0"})
    _record(metrics, f"{PRODUCTION}_uncached", uncached)
    metrics["load_tool"] = results[PRODUCTION]["read"]["tool"]
    headline = results[PRODUCTION]["ratio"]
    errors = sum(v for k, v in metrics.items() if k.endswith("non_2xx"))
    return {
        "metrics": metrics,
        "ratio": round(headline, 3),
        "goal": {"ratio_at_least": GOAL_RATIO, "server": PRODUCTION, "non_2xx": 0},
        "ok": headline >= GOAL_RATIO and errors == 0,
    }
