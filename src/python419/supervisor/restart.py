"""When to restart a crashed child and when to give up: pure, driven by an injected clock value."""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 0.5
MAX_DELAY = 30.0
HEALTHY_AFTER = 60.0  # a child that ran this long has its failure count reset
GIVE_UP_AFTER = 5  # quick failures in a row


@dataclass
class RestartDecision:
    give_up: bool
    delay: float
    failures: int


@dataclass
class Backoff:
    """Exponential backoff for one child: 0.5 s doubling to 30 s; reset after 60 s healthy."""

    failures: int = 0

    def on_exit(self, ran_for: float) -> RestartDecision:
        if ran_for >= HEALTHY_AFTER:
            self.failures = 0
        self.failures += 1
        delay = min(FIRST_DELAY * 2 ** (self.failures - 1), MAX_DELAY)
        return RestartDecision(self.failures >= GIVE_UP_AFTER, delay, self.failures)
