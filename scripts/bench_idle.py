#!/usr/bin/env python3
"""Idle cost of the `p419 up` supervisor process: CPU % and wake-ups per second once the stack is ready.

Wake-ups are context switches summed over every thread of the supervisor (/proc/PID/task/*/status, Linux
only), so the pump threads count too. Issue 11 measured the old 50 ms loop at 19.9 wake-ups/s and 0.40 % CPU,
honcho at 10/s and 0.17 %.

    .venv/bin/python scripts/bench_idle.py [--seconds 20] [--runs 2]

Baseline in the same run: honcho running the same three programs (installed with pip if missing).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def launch(kind: str, workdir: Path) -> subprocess.Popen[bytes]:
    redis_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P419_", "REDIS_", "TELEGRAM_"))}
    env.update(
        P419_DATA_DIR=str(workdir / "data"),
        P419_API_PORT=str(api_port),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        TELEGRAM_BOT_TOKEN="123:fake",
        TELEGRAM_CHAT_ID="1",
        TELEGRAM_API_URL="http://127.0.0.1:9",
    )
    py = sys.executable
    if kind == "honcho":  # the same three programs, as bench_up.py runs them
        (workdir / "Procfile").write_text(
            f"redis: redis-server --port {redis_port} --bind 127.0.0.1 --save ''\n"
            f"api: {py} -m uvicorn python419.api:app --port {api_port}\n"
            f"worker: {py} -m celery -A python419.tasks.celery_app worker --pool=solo -l info\n"
        )
        argv = [py, "-m", "honcho", "start"]
    else:
        argv = [py, "-m", "python419", "up", "--pool", "solo"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=workdir)


def measure(kind: str, seconds: float) -> tuple[float, float]:
    """(CPU %, wake-ups/s) of the supervisor process once its stack is up."""
    with tempfile.TemporaryDirectory() as tmp:
        up = launch(kind, Path(tmp))
        assert up.stdout is not None
        stream = up.stdout
        marker = b"ready in" if kind == "p419" else b"Application startup complete"
        for raw in stream:
            if marker in raw:
                break
        else:
            raise RuntimeError(f"{kind} never got ready")
        threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()  # keep draining
        time.sleep(4)  # let the children settle (worker start-up, first heartbeats)
        proc = psutil.Process(up.pid)
        cpu0, sw0, t0 = sum(proc.cpu_times()[:2]), switches(up.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, sw1, t1 = sum(proc.cpu_times()[:2]), switches(up.pid), time.monotonic()
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            up.kill()
    elapsed = t1 - t0
    return 100 * (cpu1 - cpu0) / elapsed, (sw1 - sw0) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    if subprocess.run([sys.executable, "-c", "import honcho"], capture_output=True).returncode:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "honcho"], check=True)
    results: dict[str, list[tuple[float, float]]] = {"honcho": [], "p419": []}
    for _ in range(args.runs):  # interleaved, so both see the same machine
        for kind in results:
            results[kind].append(measure(kind, args.seconds))
    for kind, runs in results.items():
        cpu = " ".join(f"{c:.3f}" for c, _ in runs)
        wakes = " ".join(f"{w:.1f}" for _, w in runs)
        print(f"{kind:7} idle CPU % [{cpu}]  wake-ups/s [{wakes}]  over {args.seconds:g}s each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
