"""The launcher's checks, in report order, with their time budgets; the app's own checks (the bundled app's,
python419/products/doctor.py) are placed among them by `checks_for` when the doctor checks that app.

Budgets keep the whole run short when everything is down: the broker is given 1 s to answer, Telegram 2 s. The
project's interpreter is asked once for its versions (up to 10 s, a hung interpreter), and the fresh-interpreter
import of the app (the slowest check) runs in it, within its 30 s budget.
"""

from __future__ import annotations

from collections.abc import Sequence

from python419.doctor.checks.api_port import check_api
from python419.doctor.checks.broker import check_broker
from python419.doctor.checks.envfile import check_env_file, check_env_keys, check_env_values
from python419.doctor.checks.exposure import check_api_exposure, check_redis_exposure
from python419.doctor.checks.python import check_python
from python419.doctor.checks.registration import check_registration, check_routes
from python419.doctor.checks.system import check_platform, check_pool_config, check_user
from python419.doctor.checks.workers import check_workers
from python419.doctor.model import AppChecks, Check
from python419.doctor.probes.app_probe import PROBE_TIMEOUT
from python419.interpreter import QUERY_TIMEOUT, TOOL_TIMEOUT

# poetry/pipenv/uv/pdm asked one after another in the worst case, then the version query.
PYTHON_BUDGET = 2 * TOOL_TIMEOUT + QUERY_TIMEOUT + 0.5
PYTHON_FIX = "the project's interpreter does not answer: run it by hand (`PYTHON -c pass`), or give another with --python"
APP_BUDGET = PYTHON_BUDGET + PROBE_TIMEOUT
IMPORT_FIX = 'the app takes too long to import: run `python -c "import <module>"` and see where it hangs'

CHECKS: tuple[Check, ...] = (
    Check("platform", check_platform, needs_settings=False),
    Check("user", check_user, needs_settings=False),
    Check(
        "python", check_python, PYTHON_BUDGET, "fail", PYTHON_FIX, needs_settings=False, needs_project=True
    ),
    Check(
        "pool.config",
        check_pool_config,
        APP_BUDGET,
        "fail",
        IMPORT_FIX,
        needs_settings=False,
        needs_project=True,
    ),
    Check("env.file", check_env_file, needs_settings=False),
    Check("env.keys", check_env_keys, needs_settings=False),
    Check("env.values", check_env_values, needs_settings=False),
    Check("broker", check_broker, 2.5, "fail", "check REDIS_URL: the broker does not answer"),
    Check(
        "registration",
        check_registration,
        APP_BUDGET,
        "fail",
        IMPORT_FIX,
        needs_settings=False,
        needs_project=True,
    ),
    Check("routes", check_routes, APP_BUDGET, "fail", IMPORT_FIX, needs_settings=False, needs_project=True),
    # On a user's project its workers are compared with the tasks the app probe finds: the probe's budget.
    Check("workers", check_workers, APP_BUDGET, needs_project=True),
    Check("api", check_api, 3.0),
    Check("exposure.api", check_api_exposure),
    Check("exposure.redis", check_redis_exposure, 2.5),
)


def checks_for(plugin: AppChecks | None, launcher: Sequence[Check] = CHECKS) -> list[Check]:
    """The launcher's checks, with the app's own (if any) each placed after the check it names."""
    merged = list(launcher)
    for after, check in plugin.checks if plugin else ():
        index = next((i for i, c in enumerate(merged) if c.id == after), len(merged) - 1)
        merged.insert(index + 1, check)
    return merged
