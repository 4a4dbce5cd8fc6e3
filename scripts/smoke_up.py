#!/usr/bin/env python3
"""End-to-end smoke test of `p419 up` on the embedded broker, needing no Redis: runs on Windows CI too.

Starts the stack, creates a product, waits for its notification (dry-run: no token), stops it with
`p419 down`, and checks that no child is left. Exit 0 on success.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil


def p419(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "python419", *args], env=env, cwd=cwd, capture_output=True, text=True
    )


def wait(predicate, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit(f"smoke: timed out waiting for {what}")


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = Path(tempfile.mkdtemp())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_", "TELEGRAM_", "P419_"))}
    env |= {"P419_DATA_DIR": str(work / "data"), "P419_API_PORT": str(port)}
    log = (work / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "python419", "up", "--broker", "embedded", "--workers", "2"],
        env=env,
        cwd=work,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait(lambda: json.loads(p419("status", "--json", env=env, cwd=work).stdout)["ready"], "the stack")
        kids = psutil.Process(up.pid).children(recursive=True)
        api = f"http://127.0.0.1:{port}"
        created = httpx.post(f"{api}/products", json={"name": "smoke <test>", "price": 1}, timeout=10).json()
        note = f"{api}/notifications/{created['notification_id']}"
        wait(lambda: httpx.get(note, timeout=5).json()["status"] == "dry-run", "the notification")
        down = p419("down", env=env, cwd=work)
        if down.returncode != 0 or up.wait(30) != 0:
            raise SystemExit(f"smoke: down failed: {down.stdout}{down.stderr}")
        wait(
            lambda: not [k for k in kids if k.is_running() and k.status() != psutil.STATUS_ZOMBIE],
            "children to go",
        )
        print(f"smoke: ok ({len(kids)} children started and stopped, notification delivered in dry-run)")
    finally:
        if up.poll() is None:
            up.kill()
        log.close()
        if up.returncode not in (0, None):
            print((work / "up.log").read_text(errors="replace")[-4000:])


if __name__ == "__main__":
    main()
