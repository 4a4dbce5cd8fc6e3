"""A worker group's pool, processes and command line: one home, used by `p419 up`, `p419 worker` and the
doctor, so the worker they describe is the worker that runs.

Each decision has its own type (as Celery's bin/worker.py gives each option its own): the pool for this OS
(`choose_pool`), how a group's count and concurrency become processes (`worker_processes`), and the plain
`celery -A APP worker ...` a user could type (`worker_args`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from python419.platforms import Platform

Pool = Literal["prefork", "solo", "threads", "gevent", "eventlet"]
POOLS: tuple[Pool, ...] = ("prefork", "solo", "threads", "gevent", "eventlet")
DEFAULT_GROUP = "worker"
WINDOWS_REASON = "Windows has no fork(): solo runs tasks in the worker process itself"


@dataclass(frozen=True)
class WorkerGroup:
    """A group of identical workers, resolved from the config and the flags."""

    name: str = DEFAULT_GROUP
    count: int = 1
    pool: Pool | None = None
    concurrency: int | None = None
    queues: tuple[str, ...] = ()
    pool_source: str = "--pool"  # where `pool` came from, in the user's words


@dataclass(frozen=True)
class PoolChoice:
    pool: Pool
    reason: str
    warning: str | None = None


def choose_pool(platform: Platform, requested: Pool | None = None, source: str = "--pool") -> PoolChoice:
    """The Celery pool for this OS. Windows has no fork(): prefork dies there with WinError 6/5, so it is solo."""
    if platform == "windows":
        if requested in (None, "solo"):
            return PoolChoice("solo", WINDOWS_REASON)
        return PoolChoice(
            "solo",
            WINDOWS_REASON,
            warning=(
                f"{source} {requested} is not reliable on Windows (prefork fails with WinError 6/5); "
                "using solo. For concurrency run several processes: p419 up --workers N"
            ),
        )
    if requested in (None, "prefork"):
        return PoolChoice("prefork", f"{platform} supports fork(): Celery's default prefork pool")
    return PoolChoice(requested, f"{source} {requested}")


def worker_processes(platform: Platform, pool: Pool, count: int, concurrency: int | None) -> tuple[int, int]:
    """(processes, concurrency per process). Windows runs solo only, so each unit of concurrency there is a
    process of its own: the same parallelism as prefork, without fork()."""
    if pool == "solo":
        return count * (concurrency or 1) if platform == "windows" else count, 1
    return count, concurrency or 0


@dataclass(frozen=True)
class GroupPlan:
    group: WorkerGroup
    choice: PoolChoice
    processes: int
    per_process: int  # 0: the pool's default

    @property
    def warnings(self) -> list[str]:
        said = [self.choice.warning] if self.choice.warning else []
        concurrency = self.group.concurrency or 1
        if self.choice.pool == "solo" and self.processes == self.group.count and concurrency > 1:
            said.append(
                f"concurrency {concurrency} has no effect on the solo pool (one task at a time); for "
                "concurrency run several workers: p419 up --workers N"
            )
        return said

    @property
    def note(self) -> str:
        what = f"{self.processes} process(es)" + (
            f" x concurrency {self.per_process}" if self.per_process > 1 else ""
        )
        queues = f" on queue(s) {','.join(self.group.queues)}" if self.group.queues else ""
        return f"{self.group.name}: {what}, pool {self.choice.pool}{queues} ({self.choice.reason})"


def plan_group(platform: Platform, group: WorkerGroup) -> GroupPlan:
    choice = choose_pool(platform, group.pool, group.pool_source)
    processes, per_process = worker_processes(platform, choice.pool, group.count, group.concurrency)
    return GroupPlan(group, choice, processes, per_process)


def worker_args(
    pool: Pool,
    *,
    concurrency: int | None = None,
    loglevel: str = "info",
    hostname: str | None = None,
    events: bool = False,
    queues: tuple[str, ...] = (),
) -> list[str]:
    """Arguments after `celery -A <app> worker`.

    Mingle and gossip are off: they exist to sync many hosts and cost about a second at start-up. The event
    heartbeat is off unless task events are on (Flower reads it): stopping its timer cost ~1 s of every
    worker's warm shutdown (Celery's debug log: "Stopping Pool" to "Shutdown Heart").
    """
    args = [f"--pool={pool}", f"--loglevel={loglevel}", "--without-mingle", "--without-gossip"]
    args += ["-E"] if events else ["--without-heartbeat"]
    # solo runs one task at a time by definition; a concurrency flag there would only mislead.
    if pool == "solo":
        args.append("--concurrency=1")
    elif concurrency:
        args.append(f"--concurrency={concurrency}")
    if hostname:
        args.append(f"--hostname={hostname}")
    if queues:
        args += ["-Q", ",".join(queues)]
    return args


def worker_command(
    launcher: list[str],
    celery: str,
    plan: GroupPlan,
    loglevel: str,
    hostname: str | None,
    events: bool = False,
) -> list[str]:
    """A worker's command line: the plain `celery -A APP worker ...` a user could type, behind the launcher.
    The pool is on the command line only: chosen once, in `plan_group`."""
    args = worker_args(
        plan.choice.pool,
        concurrency=plan.per_process or None,
        loglevel=loglevel,
        hostname=hostname,
        events=events,
        queues=plan.group.queues,
    )
    return [*launcher, "celery", "-A", celery, "worker", *args]
