"""Thread helpers shared by the service-level benchmarks."""

import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_threads(n: int, work: Callable[[int], Any]) -> tuple[float, list[Any]]:
    """Run ``work(i)`` in ``n`` threads, each with its own database connection opened before
    they are released together; returns the wall seconds from the release to the last one
    finishing, and each thread's result (or the exception it raised)."""
    ready = threading.Barrier(n + 1)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            connection.ensure_connection()
            ready.wait()
            results[i] = work(i)
        except Exception as exc:  # reported in the metrics, never swallowed silently
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started, results


def errors_of(results: list[Any]) -> list[str]:
    return [repr(r) for r in results if isinstance(r, Exception)]
