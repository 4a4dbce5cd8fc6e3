"""When a failed send is tried again, with a fake clock and a fixed random draw."""

from __future__ import annotations

from python419.products.tasks.retry_policy import BACKOFF_CAP, backoff, decide, gave_up
from python419.products.telegram import TelegramError

SERVER = TelegramError("Internal Server Error", 500, retryable=True)
RATE = TelegramError("Too Many Requests: retry after 7", 429, retryable=True, retry_after=7)


def plan(error: TelegramError, failures: int, now: float, rand: float = 0.5) -> tuple[bool, float, str]:
    d = decide(error, failures=failures, now=now, first_at=0, deadline=3600, base=5, rand=lambda: rand)
    return d.retry, d.countdown, d.reason


def test_permanent_errors_fail_at_once() -> None:
    for code in (400, 401, 403):
        retry, _, reason = plan(TelegramError("nope", code, retryable=False), 1, 1)
        assert not retry and "permanent" in reason


def test_transient_errors_back_off_exponentially_with_jitter_up_to_the_cap() -> None:
    assert [backoff(n, 5, lambda: 0.0) for n in (1, 2, 3, 4)] == [2.5, 5, 10, 20]
    assert [backoff(n, 5, lambda: 1.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff(30, 5, lambda: 1.0) == BACKOFF_CAP
    assert plan(SERVER, 3, 100, rand=0.5) == (True, 15.0, "")


def test_429_waits_retry_after_whatever_the_count() -> None:
    for failures in (1, 4, 50, 500):
        assert plan(RATE, failures, 100) == (True, 7.0, "")


def test_a_budget_counts_transient_failures_only() -> None:
    def with_budget(error: TelegramError, failures: int) -> bool:
        return decide(error, failures=failures, budget=3, now=1, first_at=0, deadline=3600, base=5).retry

    assert [with_budget(SERVER, n) for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert with_budget(RATE, 40), "a 429 never uses up the budget"
    no_budget = decide(SERVER, failures=400, now=1, first_at=0, deadline=3600, base=5)
    assert no_budget.retry and no_budget.countdown <= BACKOFF_CAP


def test_deadline_ends_retries_and_the_last_wait_lands_on_it() -> None:
    retry, countdown, _ = plan(SERVER, 10, 3590, rand=1.0)
    assert retry and countdown == 10  # 160 s of backoff cut to the 10 s left
    for error in (SERVER, RATE):
        retry, _, reason = plan(error, 11, 3600)
        assert not retry and reason == "the delivery deadline (1 h) passed"


def test_failed_text_says_why_and_when() -> None:
    text = gave_up("Telegram 500 Internal Server Error", "the delivery deadline (1 h) passed", 12, 0)
    assert text == (
        "Telegram 500 Internal Server Error (gave up at 1970-01-01 00:00:00 UTC after 12 attempts:"
        " the delivery deadline (1 h) passed)"
    )
