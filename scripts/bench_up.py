#!/usr/bin/env python3
"""Time-to-ready of `p419 up` against honcho running the same three programs, measured in the same run.

"Ready" is judged from outside, the same way for both: the API answers /health and a worker answers a
Celery ping. Prints medians and the ratio p419/honcho (goal: <= 0.6). Also counts what each leaves behind
when the supervisor itself is killed with SIGKILL.

    .venv/bin/python scripts/bench_up.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from celery import Celery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(api: str, celery: Celery) -> bool:
    try:
        if httpx.get(f"{api}/health?workers=false", timeout=0.2).status_code != 200:
            return False
        return bool(celery.control.ping(timeout=0.2, limit=1))
    except Exception:
        return False


def launch(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    redis_port, api_port = free_port(), free_port()
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TELEGRAM_", "P419_"))}
    env |= {"REDIS_URL": redis_url, "P419_API_PORT": str(api_port), "P419_DATA_DIR": str(workdir / "data")}
    py = sys.executable
    if kind == "honcho":
        # The write-up's three terminals, under honcho.
        (workdir / "Procfile").write_text(
            f"redis: redis-server --port {redis_port} --bind 127.0.0.1 --save ''\n"
            f"api: {py} -m uvicorn python419.api:app --port {api_port}\n"
            f"worker: {py} -m celery -A python419.tasks.celery_app worker --pool=solo -l info\n"
        )
        argv = [py, "-m", "honcho", "start"]
    else:
        argv = [py, "-m", "python419", "up", "--pool", "solo"]
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{api_port}", redis_url


def measure(kind: str) -> tuple[float, int]:
    """Seconds to ready, and how many descendants survive a SIGKILL of the supervisor."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        proc, api, redis_url = launch(kind, Path(tmp))
        celery = Celery(broker=redis_url)
        try:
            while not ready(api, celery):
                if time.perf_counter() - started > 60 or proc.poll() is not None:
                    raise RuntimeError(f"{kind} never got ready")
                time.sleep(0.02)
            elapsed = time.perf_counter() - started
            kids = psutil.Process(proc.pid).children(recursive=True)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            time.sleep(3)
            survivors = [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE]
            for k in survivors:
                k.kill()
            return elapsed, len(survivors)
        finally:
            celery.close()
            if proc.poll() is None:
                proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is needed for the baseline")
    if subprocess.run([sys.executable, "-c", "import honcho"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "honcho"], check=True)
    results: dict[str, list[tuple[float, int]]] = {"honcho": [], "p419": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine
        for kind in results:
            results[kind].append(measure(kind))
    medians = {k: statistics.median(t for t, _ in v) for k, v in results.items()}
    for kind, runs in results.items():
        times = " ".join(f"{t:.2f}" for t, _ in runs)
        left = max(n for _, n in runs)
        print(f"{kind:7} ready median {medians[kind]:.2f}s  runs [{times}]  left after kill -9: {left}")
    print(f"ratio p419/honcho: {medians['p419'] / medians['honcho']:.2f} (goal <= 0.60)")


if __name__ == "__main__":
    main()
