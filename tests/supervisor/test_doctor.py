"""`p419 doctor`: each failure provoked for real (a real Redis, worker, port, Bot API), then asserted by the
check's id, status and fix; plus the pure decisions behind the checks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from python419.doctor.app_spec import AppSpec, parse_app_spec
from python419.doctor.checks import checks_for
from python419.doctor.checks.envfile import KNOWN, misspellings, suggestion
from python419.doctor.checks.exposure import api_exposure, redis_listens_beyond_loopback
from python419.doctor.checks.registration import registration_outcome
from python419.doctor.checks.system import configured_pool_outcome, platform_outcome
from python419.doctor.checks.workers import workers_outcome
from python419.doctor.context import build_context
from python419.doctor.model import Check, passed
from python419.doctor.probes.app_probe import AppProbe, ImportFrame, parse_probe_output
from python419.doctor.probes.broker_probe import classify_redis_error
from python419.doctor.probes.workers_probe import WorkerInfo
from python419.doctor.redact import Redactor, secrets_in
from python419.doctor.runner import run_checks
from python419.products.doctor import PRODUCTS, TASK_NAME, backlog_outcome, format_age
from python419.redis_server import redis_install_hint
from tests.conftest import CHAT_ID, TOKEN
from tests.doctor_helpers import (
    STALE_APP,
    DoctorRun,
    down_env,
    leaked,
    run_doctor,
    start_celery_worker,
    start_password_redis,
    write_files,
    write_up_package,
)
from tests.fake_telegram import FakeTelegram
from tests.procs import Proc, RedisServer, free_port

CHECKS = checks_for(PRODUCTS)  # the bundled app's report: the launcher's checks and the app's own
IDS = [check.id for check in CHECKS]
WRONG_TOKEN = "987654321:BBWrongTokenForDoctorTests_zyxwvutsrqpo"


@pytest.fixture
def listener() -> Iterator[int]:
    """A port held by this test process: it accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def assert_check(run: DoctorRun, check_id: str, status: str, detail: str = "", fix: str = "") -> dict:
    check = run.report[check_id]
    assert check["status"] == status, check
    assert detail in check["detail"], check
    assert fix in (check["fix"] or ""), check
    return check


# --- provoked for real ---------------------------------------------------------------------------


def test_everything_down_is_fast_and_says_what_p419_up_will_do(tmp_path: Path) -> None:
    secret = "pw-secret-4711"
    env = down_env(
        REDIS_URL=f"redis://:{secret}@127.0.0.1:{free_port()}/0",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_CHAT_ID=CHAT_ID,
    )
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert list(run.report) == IDS  # every check, in report order, in one JSON document
    assert_check(run, "broker", "fail", "refused", "p419 up")  # this machine has redis-server on PATH
    assert_check(run, "workers", "warn", "broker is unreachable")
    assert_check(run, "telegram.token", "fail", "cannot reach")
    assert_check(run, "api", "pass", "is free")
    assert_check(run, "registration", "pass", TASK_NAME)

    # No Redis binary anywhere: the embedded broker takes over, and how to install Redis is in the fix.
    table = run_doctor(env={**env, "REDIS_SERVER": str(tmp_path / "no-redis-server")}, cwd=tmp_path)
    assert table.returncode == 1
    assert "embedded broker" in table.stdout and redis_install_hint("linux")[:30] in table.stdout
    assert "failed in" in table.stdout and table.stderr == ""

    for output in (run.stdout, table.stdout):
        assert not leaked(secret, output) and not leaked(TOKEN, output)
    # Every timeout is short: the whole run, interpreter start included, stays well within 5 s.
    assert max(run.seconds, table.seconds) < 8, (run.seconds, table.seconds)


def test_redis_password_wrong_or_missing_is_an_auth_failure(tmp_path: Path) -> None:
    proc, port = start_password_redis("right-horse-battery", tmp_path)
    try:
        wrong = run_doctor(
            "--json", env=down_env(REDIS_URL=f"redis://:wrong-pass-77@127.0.0.1:{port}/0"), cwd=tmp_path
        )
        missing = run_doctor("--json", env=down_env(REDIS_URL=f"redis://127.0.0.1:{port}/0"), cwd=tmp_path)
    finally:
        proc.stop()
    assert wrong.returncode == 1 and missing.returncode == 1
    assert_check(wrong, "broker", "fail", "rejected the password", "redis://:PASSWORD@host:port/0")
    assert_check(missing, "broker", "fail", "requires a password and REDIS_URL has none", "REDIS_URL")
    assert "right-horse-battery" not in wrong.stdout + missing.stdout
    assert not leaked("wrong-pass-77", wrong.stdout)


def test_broker_that_accepts_but_never_answers_is_a_timeout(tmp_path: Path, listener: int) -> None:
    run = run_doctor("--json", env=down_env(REDIS_URL=f"redis://127.0.0.1:{listener}/0"), cwd=tmp_path)
    assert run.returncode == 1
    assert_check(run, "broker", "fail", "did not answer within 1 s", "REDIS_URL's host and port")
    assert run.seconds < 8


@pytest.mark.parametrize(
    ("variant", "status", "detail", "fix"),
    [
        (
            "autodiscovery",
            "fail",
            "autodiscover_tasks(['tasks']) looked for tasks.tasks and found nothing",
            "include=['tasks.notifications']",
        ),
        (
            "cycle",
            "fail",
            "circular import: tasks.celery_app (line 1) → tasks.notifications (line 1) → "
            "tasks.celery_app (partially initialized)",
            "import the tasks module after the app exists",
        ),
        ("fixed", "pass", f"including {TASK_NAME}", ""),
    ],
)
def test_write_up_package_pointed_at_with_app(
    tmp_path: Path, variant: str, status: str, detail: str, fix: str
) -> None:
    project = write_up_package(tmp_path / "project", variant)
    env = down_env(PYTHONPATH=str(project))
    run = run_doctor("--json", "--app", "tasks.celery_app", env=env, cwd=tmp_path)
    assert run.returncode == 1  # Redis is down in every variant
    check = assert_check(run, "registration", status, detail, fix)
    if variant != "fixed":
        assert "Received unregistered task" in check["detail"] or "circular" in check["detail"]


@pytest.fixture(scope="module")
def stale_worker(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Proc]]:
    """A worker started by hand (prefork) from an app that lacks our task, on its own Redis database."""
    root = write_files(tmp_path_factory.mktemp("stale"), {"staleapp.py": STALE_APP})
    url = redis_server.url.rsplit("/", 1)[0] + "/13"
    proc = start_celery_worker(root, "staleapp", url, "stale", root)
    try:
        yield url, proc
    finally:
        proc.stop()


def test_stale_worker_is_named(stale_worker: tuple[str, Proc], tmp_path: Path) -> None:
    url, _ = stale_worker
    run = run_doctor("--json", env=down_env(REDIS_URL=url, P419_PLATFORM="linux"), cwd=tmp_path)
    assert run.returncode == 1
    check = assert_check(run, "workers", "fail", "stale@", "restart stale@")
    assert f"does not have {TASK_NAME} registered" in check["detail"]
    assert "Received unregistered task" in check["detail"] and "WinError" not in check["detail"]
    assert_check(run, "broker", "warn", "it has no password: any local process can queue tasks")


def test_prefork_worker_on_windows_fails(stale_worker: tuple[str, Proc], tmp_path: Path) -> None:
    url, _ = stale_worker
    run = run_doctor("--json", env=down_env(REDIS_URL=url, P419_PLATFORM="windows"), cwd=tmp_path)
    check = assert_check(
        run, "workers", "fail", "runs the prefork pool, which fails on Windows", "--pool=solo"
    )
    assert "WinError 5" in check["detail"] and "WinError 6" in check["detail"]
    assert_check(run, "platform", "pass", "windows (set by P419_PLATFORM", "")
    assert_check(run, "pool.config", "pass", "worker_pool='solo'")  # our app picks solo on Windows


def test_app_configured_for_prefork_fails_on_windows(tmp_path: Path) -> None:
    write_files(tmp_path / "project", {"staleapp.py": STALE_APP})
    env = down_env(P419_PLATFORM="windows", PYTHONPATH=str(tmp_path / "project"))
    run = run_doctor("--json", "--app", "staleapp", env=env, cwd=tmp_path)
    assert run.returncode == 1
    check = assert_check(run, "pool.config", "fail", "worker_pool='prefork'", "--pool=solo")
    assert (
        "WinError 5" in check["detail"] and "WinError 6" in check["detail"] and "p419 worker" in check["fix"]
    )
    assert_check(
        run,
        "registration",
        "fail",
        "is not registered (registered: tasks.notifications.send_notification_v0)",
    )


def test_telegram_token_rejected(telegram: FakeTelegram, tmp_path: Path) -> None:
    env = down_env(TELEGRAM_BOT_TOKEN=WRONG_TOKEN, TELEGRAM_CHAT_ID=CHAT_ID, TELEGRAM_API_URL=telegram.url)
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert run.returncode == 1
    assert_check(run, "telegram.token", "fail", "token rejected", "@BotFather")
    assert_check(run, "telegram.chat", "warn", "token was rejected")
    assert not leaked(WRONG_TOKEN, run.stdout + run.stderr)


def test_telegram_chat_not_found(telegram: FakeTelegram, tmp_path: Path) -> None:
    env = down_env(TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_CHAT_ID="777000", TELEGRAM_API_URL=telegram.url)
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert_check(run, "telegram.token", "pass", "bot @p419_bot")
    assert_check(run, "telegram.chat", "fail", "chat 777000 is not reachable", "/start")
    assert not leaked(TOKEN, run.stdout + run.stderr)


def test_no_token_warns_about_dry_run(tmp_path: Path) -> None:
    run = run_doctor("--json", env=down_env(), cwd=tmp_path)
    assert_check(run, "telegram.token", "warn", "dry-run", "TELEGRAM_BOT_TOKEN")


def test_api_port_held_by_another_program_names_it(tmp_path: Path, listener: int) -> None:
    run = run_doctor("--json", env=down_env(P419_API_PORT=str(listener)), cwd=tmp_path)
    assert run.returncode == 1
    check = assert_check(run, "api", "fail", "which is not the python419 API", "P419_API_PORT")
    assert f"(pid {os.getpid()})" in check["detail"] and "python" in check["detail"]


def test_misspelled_env_key_gets_a_suggestion(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"TELEGRAM_TOKEN={TOKEN}\nTELEGRAM_CHAT_ID={CHAT_ID}\n", encoding="utf-8")
    env = down_env(P419_API_PROT="8001")
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert_check(run, "env.file", "pass", str(tmp_path / ".env"))
    check = assert_check(
        run,
        "env.keys",
        "warn",
        "did you mean TELEGRAM_BOT_TOKEN?",
        "use TELEGRAM_BOT_TOKEN instead of TELEGRAM_TOKEN",
    )
    assert "P419_API_PROT in environment" in check["detail"] and "P419_API_PORT" in check["fix"]
    assert_check(run, "env.values", "warn", "TELEGRAM_BOT_TOKEN is missing")
    table = run_doctor(env=env, cwd=tmp_path)
    assert not leaked(TOKEN, run.stdout) and not leaked(TOKEN, table.stdout)


def test_env_file_in_a_parent_folder_is_pointed_out(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("REDIS_PORT=6380\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    run = run_doctor("--json", env=down_env(), cwd=tmp_path / "sub")
    assert_check(
        run, "env.file", "warn", "p419 reads .env from the current folder only", f"run p419 from {tmp_path}"
    )


INVALID_ENV = "REDIS_URL=redis://:pw-in-dotenv-31@127.0.0.1:notaport/0\n"


def test_invalid_settings_are_a_failed_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text(INVALID_ENV, encoding="utf-8")
    for key in os.environ:
        if key.startswith(("REDIS_", "TELEGRAM_", "P419_")):
            monkeypatch.delenv(key)
    ctx = build_context(AppSpec("python419.products.tasks.celery_app"), cwd=tmp_path)
    checks = [c for c in CHECKS if c.id in ("env.values", "broker", "telegram.token")]
    results = {r.id: r for r in run_checks(checks, ctx)}
    assert (
        results["env.values"].status == "fail" and "invalid setting REDIS_URL" in results["env.values"].detail
    )
    assert str(tmp_path / ".env") in (results["env.values"].fix or "")
    assert "pw-in-dotenv-31" not in results["env.values"].detail
    assert results["broker"].status == "warn" and "settings are invalid" in results["broker"].detail


def test_invalid_settings_through_the_doctor_command(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(INVALID_ENV, encoding="utf-8")
    # The command alone (no p419 callback in front of it).
    code = "import typer; from python419.doctor.command import doctor; typer.run(doctor)"
    env = {k: v for k, v in down_env().items() if k != "REDIS_URL"}  # the environment would win over .env
    done = subprocess.run(
        [sys.executable, "-c", code, "--json"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    run = DoctorRun(done.returncode, done.stdout, done.stderr, 0)
    assert run.returncode == 1
    assert_check(run, "env.values", "fail", "invalid setting REDIS_URL", "REDIS_URL in")
    assert "pw-in-dotenv-31" not in run.stdout
    # Through `p419` too: its callback lets the doctor report invalid settings instead of exiting 2.
    full = run_doctor("--json", env=env, cwd=tmp_path)
    assert full.returncode == 1 and full.report["env.values"]["status"] == "fail"


def test_embedded_broker_checks_its_folder(tmp_path: Path) -> None:
    env = down_env(P419_BROKER="embedded", P419_DATA_DIR=str(tmp_path / "data"))
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert_check(run, "broker", "warn", "does not exist", "p419 up")
    assert_check(run, "exposure.redis", "pass", "embedded broker")


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    bad_app = run_doctor("--app", "not a module", env=down_env(), cwd=tmp_path)
    assert bad_app.returncode == 2 and "--app" in bad_app.stderr and bad_app.stdout == ""
    assert run_doctor("--bogus", env=down_env(), cwd=tmp_path).returncode == 2


def test_healthy_stack_passes(stack, tmp_path: Path) -> None:
    env = {**stack.env, "P419_API_PORT": str(stack.api_port)}
    run = run_doctor("--json", env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout
    assert not [c for c in run.report.values() if c["status"] == "fail"]
    assert_check(run, "broker", "warn", "it has no password: any local process can queue tasks")
    assert_check(run, "registration", "pass", TASK_NAME)
    python = assert_check(run, "python", "pass", "chosen: the bundled app: p419's own interpreter")
    assert python["detail"].startswith(f"{sys.executable}: Python ")
    assert_check(run, "workers", "pass", "shared@")
    assert "task registered" in run.report["workers"]["detail"]
    assert_check(run, "api", "pass", "our API answers")
    assert_check(run, "telegram.token", "pass")
    assert_check(run, "telegram.chat", "pass", f"chat {CHAT_ID} reachable")
    assert_check(run, "exposure.redis", "pass", "loopback clients only")
    table = run_doctor(env=env, cwd=tmp_path)
    assert table.returncode == 0 and "0 failed" in table.stdout
    assert not leaked(TOKEN, run.stdout) and not leaked(TOKEN, table.stdout)


# --- pure decisions -------------------------------------------------------------------------------


def test_prefork_configured_on_windows_is_a_failure() -> None:
    outcome = configured_pool_outcome("windows", "prefork", "app")
    assert (
        outcome.status == "fail" and "WinError 6" in outcome.detail and "--pool=solo" in (outcome.fix or "")
    )
    assert configured_pool_outcome("windows", "celery.concurrency.prefork:TaskPool", "app").status == "fail"
    assert configured_pool_outcome("windows", "solo", "app").status == "pass"
    assert configured_pool_outcome("windows", "threads", "app").status == "warn"
    assert configured_pool_outcome("linux", "prefork", "app").status == "pass"
    assert configured_pool_outcome("linux", None, "app").status == "warn"


def test_platform_names_the_pool_and_why() -> None:
    outcome = platform_outcome("windows", "linux", (3, 11, 7), "/py")
    assert outcome.status == "pass" and "--pool=solo" in outcome.detail and "fork()" in outcome.detail
    assert platform_outcome("linux", "linux", (3, 9, 1), "/py").status == "fail"


def test_workers_verdicts() -> None:
    good = WorkerInfo("a@h", "celery.concurrency.solo:TaskPool", (TASK_NAME,))
    stale = WorkerInfo("old@h", "celery.concurrency.solo:TaskPool", ("other",))
    forking = WorkerInfo("f@h", "celery.concurrency.prefork:TaskPool", (TASK_NAME,))
    ours = (TASK_NAME,)
    assert workers_outcome([], "linux", ours).status == "warn"
    assert workers_outcome([good], "linux", ours).status == "pass"
    assert workers_outcome([good, forking], "linux", ours).status == "pass"
    outcome = workers_outcome([good, stale], "linux", ours)
    assert outcome.status == "fail" and "old@h" in outcome.detail and "a@h" not in (outcome.fix or "")
    assert workers_outcome([forking], "windows", ours).status == "fail"
    assert workers_outcome([WorkerInfo("busy@h", None, None)], "linux", ours).status == "warn"


def test_redis_errors_are_told_apart() -> None:
    import redis

    assert (
        classify_redis_error(redis.ConnectionError("Error 111 connecting to x:1. Connection refused."))
        == "refused"
    )
    assert classify_redis_error(redis.TimeoutError("Timeout reading from socket")) == "timeout"
    assert classify_redis_error(redis.AuthenticationError("invalid username-password pair")) == "auth"
    assert classify_redis_error(redis.ResponseError("NOAUTH Authentication required.")) == "auth"
    assert classify_redis_error(redis.ResponseError("WRONGPASS invalid username-password pair")) == "auth"
    assert (
        classify_redis_error(
            redis.ConnectionError("Error -2 connecting to nohost:6379. Name or service not known.")
        )
        == "other"
    )


def test_misspellings() -> None:
    bundled = (KNOWN | PRODUCTS.setting_names, PRODUCTS.aliases)  # the bundled app's settings are known too
    assert suggestion("TELEGRAM_TOKEN", *bundled) == "TELEGRAM_BOT_TOKEN"
    assert suggestion("BOT_TOKEN", *bundled) == "TELEGRAM_BOT_TOKEN"
    assert (
        suggestion("telegram_bot_token", *bundled) is None
    )  # settings are case-insensitive: this one is fine
    assert suggestion("DATABASE_URL", *bundled) is None
    assert suggestion("REDIS_PASSWORD").startswith("REDIS_URL")
    assert suggestion("P419_API_PROT") == "P419_API_PORT"
    found = misspellings([(".env", ["TELEGRAM_CHATID", "PATH"])], *bundled)
    assert found == [("TELEGRAM_CHATID", "TELEGRAM_CHAT_ID", ".env")]
    # A user's project: its TELEGRAM_TOKEN is its own business, not a typo of the bundled app's setting.
    assert suggestion("TELEGRAM_TOKEN") is None and suggestion("BOT_TOKEN") is None
    assert misspellings([(".env", ["TELEGRAM_CHATID"])]) == []


def test_exposure_decisions() -> None:
    assert api_exposure("127.0.0.1").status == "pass" and api_exposure("0.0.0.0").status == "warn"
    assert not redis_listens_beyond_loopback("127.0.0.1 -::1", "yes")
    assert not redis_listens_beyond_loopback("* -::*", "yes")  # default bind: protected mode guards it
    assert redis_listens_beyond_loopback("* -::*", "no")
    assert redis_listens_beyond_loopback("0.0.0.0", "yes")


def test_circular_import_chain_from_probe_output() -> None:
    stdout = (
        'noise\nP419-DOCTOR-PROBE {"stage": "import", "error": "ImportError: x", "partial": "pkg.app", '
        '"chain": [{"module": "pkg.app", "line": 1}, {"module": "pkg.tasks", "line": 2}]}\n'
    )
    probe = parse_probe_output(stdout, "", 0)
    assert probe.chain == (ImportFrame("pkg.app", 1), ImportFrame("pkg.tasks", 2))
    outcome = registration_outcome(probe, AppSpec("pkg.app"))
    assert outcome.status == "fail"
    assert "pkg.app (line 1) → pkg.tasks (line 2) → pkg.app (partially initialized)" in outcome.detail
    crashed = parse_probe_output("", "Traceback\nSegfault-ish", -11)
    assert crashed.stage == "crash" and registration_outcome(crashed, AppSpec("x")).status == "fail"
    ok = registration_outcome(AppProbe("ok", tasks=(TASK_NAME,)), AppSpec("x"), (TASK_NAME,))
    assert ok.status == "pass"


def test_backlog_warns_when_the_outbox_is_stuck(tmp_path: Path) -> None:
    from python419.products.store import Store

    store = Store(tmp_path / "p419.db", clock=lambda: 1000.0)
    store.create_product("lamp", 1.0, None)
    oldest = store.oldest_open()
    assert backlog_outcome(0, tmp_path / "p419.db", True, oldest, 1010.0).status == "pass"
    stuck = backlog_outcome(3, tmp_path / "p419.db", True, oldest, 1000.0 + 3600)
    assert stuck.status == "warn" and "pending for 1 h" in stuck.detail and "3 message(s)" in stuck.detail
    assert format_age(59) == "59 s" and format_age(7200) == "2 h"


def test_app_spec_parsing() -> None:
    assert parse_app_spec("a.b:app") == AppSpec("a.b", "app")
    assert parse_app_spec("a.b") == AppSpec("a.b", None)
    for bad in ("", "a b", "a.:x", "a:b c"):
        with pytest.raises(ValueError):
            parse_app_spec(bad)


def test_redactor_hides_tokens_and_url_passwords() -> None:
    redact = Redactor(secrets_in({"TELEGRAM_TOKEN": TOKEN, "REDIS_URL": "redis://:p%40ss-word@h:1/0"}))
    text = redact(f"x {TOKEN} y p@ss-word z p%40ss-word https://api/bot{WRONG_TOKEN}/getMe")
    assert TOKEN not in text and "p@ss-word" not in text and "p%40ss-word" not in text
    assert WRONG_TOKEN not in text


def test_runner_turns_a_hung_check_into_a_timeout(tmp_path: Path) -> None:
    ctx = build_context(AppSpec("x"), cwd=tmp_path)
    hung = Check(
        "hung", lambda _: time.sleep(5) or passed("never"), 0.2, "fail", "look at it", needs_settings=False
    )
    quick = Check("quick", lambda _: passed("fine"), 1.0, needs_settings=False)
    started = time.monotonic()
    results = run_checks([hung, quick], ctx)
    assert time.monotonic() - started < 1.0
    assert [(r.id, r.status) for r in results] == [("hung", "fail"), ("quick", "pass")]
    assert results[0].detail == "timed out after 0.2 s" and results[0].fix == "look at it"


def test_queue_counts_the_stacks_own_queue(redis_server, tmp_path: Path) -> None:
    """The bundled app publishes to its stack's queue (p419-<hash>), not Celery's `celery`: count that one."""
    from python419.products.settings import ProductSettings
    from python419.products.tasks.queues import queue_name

    url = redis_server.url.rsplit("/", 1)[0] + "/9"
    data = tmp_path / "data"
    name = queue_name(ProductSettings(P419_DATA_DIR=str(data)))  # type: ignore[call-arg]
    client = redis.Redis.from_url(url)
    client.delete(name)
    client.lpush(name, "a", "b")
    try:
        run = run_doctor("--json", env=down_env(REDIS_URL=url, P419_DATA_DIR=str(data)), cwd=tmp_path)
        assert_check(run, "queue", "pass", f"2 message(s) waiting in '{name}', 'celery'")
    finally:
        client.delete(name)


def test_user_check_says_when_children_would_run_as_root() -> None:
    from python419.doctor.checks.system import user_outcome

    root = user_outcome("linux", True)
    assert (
        root.status == "warn"
        and "SecurityWarning" in root.detail
        and root.fix
        and "ordinary user" in root.fix
    )
    assert user_outcome("linux", False).status == "pass"
    assert user_outcome("windows", True).status == "pass"  # no root there; elevation is another matter
