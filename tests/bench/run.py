"""Benchmark runner: ``make bench`` (all) or ``make bench ONLY=<name>``.

Each benchmark is a module ``tests/bench/<name>.py`` with ``NAME``, ``GOAL`` and
``run(quick=False) -> {"metrics": {...}, "ratio": float, "goal": {...}, "ok": bool}``; figures
are ratios against a baseline measured in the same run on the same machine. The runner prints a
table and writes ``tests/bench/results/<name>.json``.

Benchmarks run on PostgreSQL: ``DATABASE_URL`` if set, else the local server's ``bench`` database
(created and migrated here) when one answers on 127.0.0.1:5432, else a scratch embedded
PostgreSQL (core/embedded.py) made for this run. Each result records which one it used.
"""

import argparse
import importlib
import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

BENCHMARKS = [
    "api_read",
    "hot_sku",
    "events_outbox",
    "checkout",
    "flash_burst",
    "last_seat",
    "chain_broadcast",
    "attribution",
    "click_ingest",
]
RESULTS = Path(__file__).parent / "results"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"


def _redis_answers() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(DEFAULT_REDIS, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def _local_postgres_answers() -> bool:
    import psycopg

    try:
        psycopg.connect(DEFAULT_DB.rsplit("/", 1)[0] + "/postgres", connect_timeout=2).close()
    except psycopg.OperationalError:
        return False
    return True


def _scratch_postgres() -> str:
    import tempfile

    from core.embedded import EmbeddedPostgres

    root = Path(tempfile.mkdtemp(prefix="groupbuy-bench-")) / "postgres"
    return EmbeddedPostgres(root, scratch=True, database="bench").acquire()


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1].split("?")[0]
    admin_url = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def machine() -> dict:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
    }


def _database_label() -> str:
    from django.db import connection

    host = connection.settings_dict.get("HOST") or "localhost"
    version = connection.cursor().connection.info.server_version  # e.g. 150014
    return f"PostgreSQL {version // 10000}.{version % 10000} at {host}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=BENCHMARKS)
    parser.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    args = parser.parse_args()

    scratch = "DATABASE_URL" not in os.environ and not _local_postgres_answers()
    if scratch:
        os.environ["DATABASE_URL"] = _scratch_postgres()  # made with its database
    os.environ.setdefault("DATABASE_URL", DEFAULT_DB)
    if "REDIS_URL" not in os.environ and _redis_answers():
        os.environ["REDIS_URL"] = DEFAULT_REDIS  # production-like cache and channel layer
    if not os.environ["DATABASE_URL"].startswith("postgres"):
        print("benchmarks need PostgreSQL (DATABASE_URL=postgres://...)", file=sys.stderr)
        return 2
    if not scratch:
        _ensure_database(os.environ["DATABASE_URL"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)

    RESULTS.mkdir(exist_ok=True)
    rows = []
    failed = False
    for name in [args.only] if args.only else BENCHMARKS:
        module = importlib.import_module(f"tests.bench.{name}")
        print(f"== {name}: {module.GOAL}", flush=True)
        result = module.run(quick=args.quick)
        record = {
            "name": name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": machine(),
            "database": _database_label(),
            "metrics": result["metrics"],
            "ratio": result["ratio"],
            "goal": result["goal"],
            "ok": result["ok"],
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=2) + "\n")
        rows.append(record)
        failed |= not result["ok"]
        width = max(len(k) for k in result["metrics"])
        for key, value in result["metrics"].items():
            print(f"  {key:<{width}}  {value}")
        verdict = "OK" if result["ok"] else "MISSED"
        print(f"  {'ratio':<{width}}  {result['ratio']:.3f}   goal {result['goal']}  {verdict}\n")

    print(f"{'benchmark':<12} {'ratio':>8}  goal met")
    for r in rows:
        print(f"{r['name']:<12} {r['ratio']:>8.3f}  {'yes' if r['ok'] else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
