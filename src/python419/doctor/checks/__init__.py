"""Every check, in report order, with its time budget.

Budgets keep the whole run under ~5 s when everything is down: the broker is given 1 s to answer, Telegram
2 s, and the fresh-interpreter import of the app (the slowest check) 4 s.
"""

from __future__ import annotations

from python419.doctor.checks.api_port import check_api
from python419.doctor.checks.backlog import check_queue
from python419.doctor.checks.bot import check_chat, check_token
from python419.doctor.checks.broker import check_broker
from python419.doctor.checks.envfile import check_env_file, check_env_keys, check_env_values
from python419.doctor.checks.exposure import check_api_exposure, check_redis_exposure
from python419.doctor.checks.registration import check_registration, check_routes
from python419.doctor.checks.system import check_platform, check_pool_config, check_user
from python419.doctor.checks.workers import check_workers
from python419.doctor.model import Check
from python419.doctor.probes.app_probe import PROBE_TIMEOUT

APP_BUDGET = PROBE_TIMEOUT + 0.5
IMPORT_FIX = 'the app takes too long to import: run `python -c "import <module>"` and see where it hangs'

CHECKS: tuple[Check, ...] = (
    Check("platform", check_platform, needs_settings=False),
    Check("user", check_user, needs_settings=False),
    Check("pool.config", check_pool_config, APP_BUDGET, "fail", IMPORT_FIX, needs_settings=False),
    Check("env.file", check_env_file, needs_settings=False),
    Check("env.keys", check_env_keys, needs_settings=False),
    Check("env.values", check_env_values, needs_settings=False),
    Check("broker", check_broker, 2.5, "fail", "check REDIS_URL: the broker does not answer"),
    Check("registration", check_registration, APP_BUDGET, "fail", IMPORT_FIX, needs_settings=False),
    Check("routes", check_routes, APP_BUDGET, "fail", IMPORT_FIX, needs_settings=False),
    Check("workers", check_workers, 3.5),
    Check("queue", check_queue, 3.0),
    Check("api", check_api, 3.0),
    Check("telegram.token", check_token, 3.0, "fail", "check the network and TELEGRAM_API_URL"),
    Check("telegram.chat", check_chat, 3.0),
    Check("exposure.api", check_api_exposure),
    Check("exposure.redis", check_redis_exposure, 2.5),
)
