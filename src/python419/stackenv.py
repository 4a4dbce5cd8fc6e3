"""The variables `p419 up` sets for its children: their own namespace, apart from the user's settings.

A child reads them to learn what the supervisor decided (which broker, where to report readiness, how to be
stopped); a user never sets them. Celery's own CELERY_BROKER_URL / CELERY_RESULT_BACKEND are set as well:
Celery lets them win over the app's configuration (celery/app/utils.py), so any app follows the stack's
broker without a change to its code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

BROKER = "P419_STACK_BROKER"  # embedded | redis
SUPERVISOR_PID = "P419_STACK_SUPERVISOR_PID"  # the orphan watchdog watches it (macOS)
READY_FILE = "P419_STACK_READY_FILE"  # a worker writes its pid there on Celery's worker_ready
STOP_FILE = "P419_STACK_STOP_FILE"  # a worker asked to stop warmly without a console signal
CELERY_APP = "P419_STACK_CELERY_APP"  # the user's Celery app (MODULE[:ATTR]), configured by the launcher
ENV_FILES = "P419_STACK_ENV_FILES"
BEAT_LOCK = "P419_STACK_BEAT_LOCK"  # beat: the folder for its schedule, and the one-beat-per-broker lock  # the project's env files, os.pathsep-separated
CELERY_BROKER_URL = "CELERY_BROKER_URL"
CELERY_RESULT_BACKEND = "CELERY_RESULT_BACKEND"


def stack_env_files(environ: Mapping[str, str]) -> list[Path]:
    """The env files a child of `p419 up` reads; outside a stack, .env in the working directory."""
    raw = environ.get(ENV_FILES)
    if raw is None:
        return [Path(".env")]
    return [Path(p) for p in raw.split(os.pathsep) if p]
