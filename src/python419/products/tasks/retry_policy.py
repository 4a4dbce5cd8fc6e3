"""When to try a failed send again, and when to give up: pure decisions, tested with a fake clock.

Telegram trouble used to fail notifications for good after 4 attempts at a constant 5 s (issue 12: a 15 s
429 storm or 20 s of 500s failed 30/30). Now:
- 400/401/403 (what Telegram says is permanent) fail at once;
- 429 waits Telegram's `retry_after`, however many attempts came before: Telegram said when to come back,
  and no count of attempts ends the retries (only the deadline does);
- network errors and 5xx back off exponentially from P419_RETRY_DELAY (doubling, capped at BACKOFF_CAP),
  with jitter so a burst of failures does not come back as a burst;
- a message without an outbox row (from the original project) keeps the task's `max_retries` (3) as a
  budget for network errors and 5xx (its `failures` count those only); an outbox row has no count budget
  (its attempts, 429s included, only set the backoff step);
- everything ends at the delivery deadline (P419_DELIVERY_DEADLINE after the product was created, or
  after the first attempt of a message without a row); the last wait is cut so that one attempt lands on
  the deadline.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from python419.products.telegram import TelegramError

BACKOFF_CAP = 300.0  # 5 min between attempts at most, well under Redis's visibility timeout (1 h)


@dataclass(frozen=True)
class Decision:
    retry: bool
    countdown: float = 0.0
    reason: str = ""  # why it gave up


def backoff(failures: int, base: float, rand: Callable[[], float] = random.random) -> float:
    """Delay after the `failures`-th transient failure (1, 2, ...): half of base x 2^(n-1) (capped), plus
    a random part up to the other half ("equal jitter": never sooner than half the step)."""
    step = min(BACKOFF_CAP, base * 2 ** max(failures - 1, 0))
    return step / 2 + rand() * step / 2


def decide(
    error: TelegramError,
    *,
    failures: int,
    budget: int | None = None,
    now: float,
    first_at: float,
    deadline: float,
    base: float,
    rand: Callable[[], float] = random.random,
) -> Decision:
    if not error.retryable:
        return Decision(False, reason="Telegram says it is permanent")
    give_up_at = first_at + deadline
    if now >= give_up_at:
        return Decision(False, reason=f"the delivery deadline ({describe_seconds(deadline)}) passed")
    if error.retry_after is not None:
        return Decision(True, max(0.0, error.retry_after))
    if budget is not None and failures > budget:
        return Decision(False, reason=f"its {budget} retries are used up")
    return Decision(True, min(backoff(failures, base, rand), give_up_at - now))


def describe_seconds(seconds: float) -> str:
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def gave_up(error: str, reason: str, attempts: int, at: float) -> str:
    """The text a `failed` row keeps: Telegram's error first, then when and why it stopped."""
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))
    plural = "" if attempts == 1 else "s"
    return f"{error} (gave up at {when} after {attempts} attempt{plural}: {reason})"
