"""`python -m python419.supervisor.guard CMD...`: run a non-Python child (redis-server) so that it dies with
the supervisor on an OS that has neither a parent-death signal nor Job Objects (macOS).

The guard forwards SIGTERM/SIGINT to the command, and its watchdog stops the command when the supervisor
(our parent) is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from python419.launch.watchdog import Watchdog


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m python419.supervisor.guard CMD [ARGS...]", file=sys.stderr)
        return 2
    asked: list[int] = []  # a signal that came before the command started: forwarded once it has
    started: list[subprocess.Popen[bytes]] = []

    def forward(signum: int, _: Any) -> None:
        if started:
            started[0].send_signal(signum)
        else:
            asked.append(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    child = subprocess.Popen(argv)
    started.append(child)
    for signum in asked:
        child.send_signal(signum)
    Watchdog(os.getppid(), grace=5.0, escalate=child.kill).start()
    code = child.wait()
    return 128 - code if code < 0 else code  # killed by signal N: exit 128+N, as a shell does


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
