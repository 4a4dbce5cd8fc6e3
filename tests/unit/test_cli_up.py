"""`p419 up`'s own parser (argparse): its bounds and refusals, the typer app handing it over, and what it loads
before the first child (the start-up goal, scripts/bench row 8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from python419.cli_up import parser
from tests.conftest import clean_environ


def test_defaults_and_switches() -> None:
    args = parser().parse_args([])
    assert (args.grace, args.ready_timeout, args.loglevel) == (10.0, 30.0, "info")
    assert (
        args.reload is args.beat is args.flower is args.redis_password is None
    )  # not given: the config decides
    args = parser().parse_args(["--no-reload", "--beat", "--redis-password", "-Q", "a,b", "--workers", "3"])
    assert (args.reload, args.beat, args.redis_password, args.queues, args.workers) == (
        False,
        True,
        True,
        "a,b",
        3,
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--workers", "0"], "not in the range 1<=x<=64"),
        (["--concurrency", "257"], "not in the range 1<=x<=256"),
        (["--grace", "soon"], "'soon' is not a valid float"),
        (["--ready-timeout", "0.5"], "not in the range 1<=x<=600"),
        (["--pool", "fork"], "'fork' is not one of prefork, solo, threads, gevent, eventlet"),
        (["--pool", "eventlet"], "the eventlet pool is not installed here: pip install eventlet"),
        (["--loglevel", "loud"], "invalid choice: 'loud'"),
        (["--wat"], "unrecognized arguments: --wat"),
        (["--work", "2"], "unrecognized arguments: --work 2"),  # no abbreviations, as typer's verbs
    ],
)
def test_bad_flags_are_one_usage_error_and_exit_2(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parser().parse_args(argv)
    assert caught.value.code == 2 and said in capsys.readouterr().err


def run_p419(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "python419", *argv],
        env=clean_environ(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_typer_app_lists_up_and_both_ways_reach_one_parser(tmp_path: Path) -> None:
    listed = run_p419("--help", cwd=tmp_path)
    assert listed.returncode == 0 and " up " in listed.stdout
    direct = run_p419("up", "--help", cwd=tmp_path)
    assert (
        direct.returncode == 0 and "--ready-timeout" in direct.stdout and "--redis-password" in direct.stdout
    )
    from typer.testing import CliRunner

    from python419.cli import app

    handed = CliRunner().invoke(app, ["up", "--workers", "0"])  # through typer's `up`: the same parser
    assert handed.exit_code == 2 and "not in the range 1<=x<=64" in handed.output


def test_up_reaches_its_first_child_without_typer_pydantic_rich_or_psutil() -> None:
    """Everything `p419 up` imports before it spawns: the parser, the project, the plan and the supervisor's
    run module. The printer's rich, psutil, typer and pydantic come after the first children (each cost
    10-100 ms there; docs/benchmarks.md, row 8)."""
    code = (
        "import sys; import python419.entry, python419.cli_up, python419.supervisor.run, python419.project;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'typer', 'click', 'pydantic', 'pydantic_settings', 'rich', 'psutil', 'dotenv', 'httpx', 'http'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
