"""Bounded load generation on loopback: wrk when installed, else a small threaded fallback."""

import http.client
import json
import re
import shutil
import subprocess
import threading
import time


def _wrk(url: str, connections: int, seconds: float, threads: int) -> dict:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return {
        "rps": rps,
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(0) if errors else "",
        "p99_ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
        "tool": "wrk",
    }


def _threads(url: str, connections: int, seconds: float) -> dict:
    match = re.match(r"http://([^/:]+):(\d+)(/.*)", url)
    host, port, path = match.group(1), int(match.group(2)), match.group(3)
    counts = [0] * connections
    bad = [0] * connections
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        while time.monotonic() < deadline:
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            counts[i] += 1
            bad[i] += resp.status >= 300

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return {
        "rps": sum(counts) / (time.monotonic() - start),
        "non_2xx": sum(bad),
        "tool": "python-threads",
    }


def load(url: str, *, connections: int = 32, seconds: float = 10, threads: int = 2) -> dict:
    if shutil.which("wrk"):
        return _wrk(url, connections, seconds, threads)
    return _threads(url, connections, seconds)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def post_burst(
    port: int, requests: list[tuple[str, str, bytes]], *, connections: int
) -> tuple[list[tuple[int, str, float]], float]:
    """POST every ``(path, token, body)`` once, spread over ``connections`` keep-alive
    connections that are all opened first and released together. Returns ``(status, error
    code, ms)`` per request (status 599 for a broken connection) and the wall time in seconds."""
    per_connection = [requests[i::connections] for i in range(connections)]
    answers: list[tuple[int, str, float]] = []
    lock = threading.Lock()
    ready = threading.Barrier(connections + 1)

    def worker(mine: list[tuple[str, str, bytes]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.connect()
        ready.wait()
        for path, token, body in mine:
            started = time.perf_counter()
            try:
                conn.request(
                    "POST",
                    path,
                    body=body,
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
                response = conn.getresponse()
                raw = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, raw = 599, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            elapsed = (time.perf_counter() - started) * 1000
            code = ""
            if status >= 400:
                try:
                    code = json.loads(raw)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = raw[:80].decode(errors="replace")
            with lock:
                answers.append((status, code, elapsed))
        conn.close()

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in per_connection]
    for t in threads:
        t.start()
    ready.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return answers, time.perf_counter() - started
