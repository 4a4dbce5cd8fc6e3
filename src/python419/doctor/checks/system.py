"""platform and pool.config: which OS and Python, which pool the workers will use, and whether the app's own
configuration would crash them (prefork on Windows: the write-up's WinError 6/5)."""

from __future__ import annotations

import os
import platform as stdlib_platform
import sys

from python419.doctor.context import Context
from python419.doctor.model import Outcome, failed, passed, warned
from python419.platforms import Platform, detect_platform
from python419.workers import choose_pool

WINERROR = "PermissionError [WinError 5] / OSError [WinError 6]"
SOLO_FIX = "start workers with --pool=solo (`p419 worker` does it for you), or set worker_pool='solo' in the app config"
MIN_PYTHON = (3, 10)


def platform_outcome(
    platform: Platform, detected: Platform, python: tuple[int, int, int], executable: str
) -> Outcome:
    choice = choose_pool(platform)
    version = ".".join(map(str, python))
    where = (
        platform if platform == detected else f"{platform} (set by P419_PLATFORM; this machine is {detected})"
    )
    detail = f"{where}, Python {version} ({executable}); workers use --pool={choice.pool}: {choice.reason}"
    if python[:2] < MIN_PYTHON:
        return failed(detail, "python419 needs Python 3.10 or newer: create the venv with a newer Python")
    return passed(detail)


def user_outcome(platform: Platform, is_root: bool) -> Outcome:
    """Pure: children of `p419 up` run as the user who started it."""
    if is_root and platform != "windows":
        return warned(
            "running as root: the API and the Celery workers p419 starts run as root too (Celery prints a "
            "SecurityWarning); a task's bug then has the whole machine",
            "run p419 as an ordinary user (in a container: USER app in the Dockerfile)",
        )
    return passed("not running as root: children run as this user")


def check_user(ctx: Context) -> Outcome:
    return user_outcome(ctx.platform, hasattr(os, "geteuid") and os.geteuid() == 0)


def pool_name(configured: str) -> str:
    """worker_pool may be an alias ("prefork") or a class path ("celery.concurrency.prefork:TaskPool")."""
    module = configured.split(":")[0]
    name = module.rsplit(".", 1)[-1]
    return "threads" if name == "thread" else name


def configured_pool_outcome(platform: Platform, configured: str | None, app: str) -> Outcome:
    """Pure: what the app's worker_pool means on this platform. `celery -A app worker` typed by hand uses it."""
    if configured is None:
        return warned(
            f"could not read worker_pool: {app} did not load (see registration)", "fix registration first"
        )
    pool = pool_name(configured)
    detail = f"{app} configures worker_pool={configured!r}"
    if platform == "windows" and pool == "prefork":
        return failed(
            f"{detail}: on Windows prefork workers crash with {WINERROR} (there is no fork())", SOLO_FIX
        )
    if platform == "windows" and pool != "solo":
        return warned(
            f"{detail}: not reliable on Windows",
            "use --pool=solo and run several workers: p419 up --workers N",
        )
    return passed(detail)


def check_platform(ctx: Context) -> Outcome:
    python = (sys.version_info.major, sys.version_info.minor, sys.version_info.micro)
    outcome = platform_outcome(ctx.platform, detect_platform(), python, sys.executable)
    impl = stdlib_platform.python_implementation()
    return outcome if impl == "CPython" else Outcome(outcome.status, f"{impl}: {outcome.detail}", outcome.fix)


def check_pool_config(ctx: Context) -> Outcome:
    return configured_pool_outcome(ctx.platform, ctx.app_probe.get().worker_pool, str(ctx.app))
