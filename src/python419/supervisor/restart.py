"""When to restart a child that exited and when to give up on it: pure, driven by injected clock values.

As supervisord's startretries/startsecs and circus's max_retry: giving up is for a child that cannot START (it
died before it was ready, N times in a row). A child that became ready and later dies is restarted with backoff,
however often: it has shown it can run, and a stack must not go down because a worker was killed five times.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long has its crash count reset (the delay starts small again)
GIVE_UP_AFTER = 5  # start failures in a row


@dataclass
class RestartDecision:
    give_up: bool
    delay: float
    failures: int  # exits in a row (the delay's count)


@dataclass
class Backoff:
    """Exponential backoff for one child: 0.5 s doubling to 30 s, reset after 60 s up; gives up after 5 exits
    in a row that each came before the child was ready."""

    failures: int = 0
    start_failures: int = 0

    def on_exit(self, ran_for: float, was_ready: bool = False) -> RestartDecision:
        if ran_for >= HEALTHY_AFTER:
            self.failures = 0
        self.failures += 1
        self.start_failures = 0 if was_ready else self.start_failures + 1
        delay = min(FIRST_DELAY * 2 ** (self.failures - 1), MAX_DELAY)
        return RestartDecision(self.start_failures >= GIVE_UP_AFTER, delay, self.failures)
