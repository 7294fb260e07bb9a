"""Bounded load generation on loopback: wrk when installed, else a small threaded fallback."""

import http.client
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
