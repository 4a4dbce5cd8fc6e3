#!/usr/bin/env python3
"""Messages per second of one solo `p419 worker` against the fake Bot API answering at once (0 ms).

Products are POSTed through the real API while no worker runs, then one solo worker drains the queue; the
rate is taken at the fake Bot API between the first and the last delivery, so start-up is not counted.
Also prints the worker's CPU time per message.

    .venv/bin/python scripts/bench_worker.py [--messages 300] [--runs 3]

To measure another checkout of the code with the same interpreter: PYTHONPATH=/path/to/other/src.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import CHAT_ID, TOKEN, stack_env  # noqa: E402
from tests.fake_telegram import FakeTelegram  # noqa: E402
from tests.procs import RedisServer, Stack, free_port, wait_until  # noqa: E402


def one_run(messages: int, telegram: FakeTelegram, redis_url: str, root: Path) -> tuple[float, float]:
    marker = f"bench{time.monotonic_ns()}"
    stack = Stack(stack_env(redis_url, root / "data", telegram, P419_LEASE_SECONDS="40"), root, free_port())
    try:
        stack.start_api()
        with httpx.Client(base_url=stack.api_url, timeout=30) as client:

            def post(i: int) -> int:
                return client.post("/products", json={"name": f"{marker} {i}", "price": 1}).status_code

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                codes = list(pool.map(post, range(messages)))
        assert codes == [201] * messages, codes
        worker = stack.start_worker("bench@%h")
        cpu_before = psutil.Process(worker.pid).cpu_times()
        assert wait_until(lambda: len(telegram.delivered(marker)) >= messages, 300, 0.1), "not all delivered"
        cpu_after = psutil.Process(worker.pid).cpu_times()
        times = sorted(c.at for c in telegram.delivered(marker))
        rate = (len(times) - 1) / (times[-1] - times[0])
        cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / messages
        return rate, cpu * 1000
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeTelegram(TOKEN, CHAT_ID) as telegram:
        redis = RedisServer(free_port(), Path(tmp)).start()
        try:
            rates, cpus = [], []
            for run in range(args.runs):
                root = Path(tmp) / f"run{run}"
                root.mkdir()
                url = redis.url.rsplit("/", 1)[0] + f"/{run + 1}"
                rate, cpu = one_run(args.messages, telegram, url, root)
                rates.append(rate)
                cpus.append(cpu)
                print(f"run {run + 1}: {rate:.1f} msg/s, worker CPU {cpu:.2f} ms/msg", flush=True)
            print(
                f"one solo worker, {args.messages} messages, fake Bot API 0 ms: median {statistics.median(rates):.1f}"
                f" msg/s (min {min(rates):.1f}, max {max(rates):.1f}); CPU {statistics.median(cpus):.2f} ms/msg"
            )
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
