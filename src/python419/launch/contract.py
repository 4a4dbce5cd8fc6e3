"""The contract between `p419 up` and its children: every variable the supervisor sets for a child, and the
exit codes a child answers with. Standard library only: the supervisor imports it as
`python419.launch.contract`, the launcher runs it by path inside the project's own interpreter. A name is
spelled here once, for both sides.

A child parses no p419 settings: every decision reaches it through these variables. Celery's own
CELERY_BROKER_URL / CELERY_RESULT_BACKEND are set too: Celery lets them win over an app's configuration
(celery/app/utils.py), so any app follows the stack's broker without a change to its code.
"""

from __future__ import annotations

import json
import os
from typing import Any

PREFIX = "P419_STACK_"
BROKER = PREFIX + "BROKER"  # embedded | redis
# JSON: kombu transport options the launcher merges into the app's (the embedded broker's folders)
TRANSPORT_OPTIONS = PREFIX + "TRANSPORT_OPTIONS"
SUPERVISOR_PID = PREFIX + "SUPERVISOR_PID"  # the orphan watchdog watches this process
GRACE = PREFIX + "GRACE"  # seconds a child orphaned by a dead supervisor gets for its warm stop
READY_FILE = PREFIX + "READY_FILE"  # a worker writes its pid there on Celery's worker_ready
STOP_FILE = PREFIX + "STOP_FILE"  # created by the supervisor: stop warmly (no console signal needed)
CELERY_APP = PREFIX + "CELERY_APP"  # the project's Celery app (MODULE[:ATTR]), configured by the launcher
ENV_FILES = PREFIX + "ENV_FILES"  # the project's env files, os.pathsep-separated
BEAT_LOCK = PREFIX + "BEAT_LOCK"  # beat: the folder of its schedule and of the one-beat-per-broker lock
CELERY_BROKER_URL = "CELERY_BROKER_URL"
CELERY_RESULT_BACKEND = "CELERY_RESULT_BACKEND"

# Exit codes. CONFIG_EXIT (EX_CONFIG, sysexits.h): the project cannot be loaded as configured, a restart would
# not help: the supervisor does not restart a child that exits with it.
CONFIG_EXIT = 78
# REFUSED_EXIT (EX_NOPERM): the child may not run while another holds what it needs (another stack's beat
# holds the broker's beat lock); its last line names the holder. Not restarted either.
REFUSED_EXIT = 77
USAGE_EXIT = 2

# A child's line that starts with LOG_ONLY goes to its log file only (a traceback whose gist the next line says);
# a line that starts with SAYS is the launcher's own one-line verdict.
LOG_ONLY = "p419-log-only: "
SAYS = "p419: "

LAUNCHER_MODULE = "python419.launch"


def launcher_script() -> str:
    """The file the project's interpreter runs: `PYTHON <this> celery -A app worker ...`."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py")


def launcher_argv(python: str) -> list[str]:
    return [python, launcher_script()]


def runs_launcher(argv: list[str]) -> bool:
    """Is this command line our launcher (whose watchdog and warm stop we can count on)?"""
    return len(argv) > 1 and (argv[1] == launcher_script() or argv[1:3] == ["-m", LAUNCHER_MODULE])


def transport_options(environ: Any) -> dict[str, Any]:
    raw = environ.get(TRANSPORT_OPTIONS)
    return dict(json.loads(raw)) if raw else {}


def encode_transport_options(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True)
