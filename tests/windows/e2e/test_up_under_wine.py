"""`p419 up` as a Windows user runs it: the Windows CPython under Wine, driven from Linux.

Run by scripts/test-windows (which exports P419_WINE and P419_WINE_PYTHON). The fake Bot API and the HTTP
client are on the Linux side; the supervisor, the API and the workers are Windows processes (see wine.py for
how they are driven and found in /proc).
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fake_telegram import FakeTelegram
from tests.procs import wait_until
from tests.windows.e2e.wine import WINE_PYTHON, WineUp, alive, require_wine


@pytest.fixture(scope="module", autouse=True)
def wine() -> None:
    require_wine(WINE_PYTHON)


class BundledWineUp(WineUp):
    """The bundled app under Wine, its Telegram messages going to the fake Bot API on the Linux side."""

    def __init__(self, tmp_path: Path, telegram: FakeTelegram, *args: str, grace: float = 5) -> None:
        env = {
            "TELEGRAM_BOT_TOKEN": telegram.token,
            "TELEGRAM_CHAT_ID": telegram.chat_id,
            "TELEGRAM_API_URL": telegram.url,
            "TELEGRAM_TIMEOUT": "20",  # more than the slow answer of the warm-stop test
            "P419_SWEEP_INTERVAL": "1",
            "P419_LEASE_SECONDS": "90",  # more than 3 x TELEGRAM_TIMEOUT (settings enforce it)
        }
        super().__init__(tmp_path, *args, env=env, grace=grace)

    def post_product(self, name: str) -> None:
        response = httpx.post(
            f"http://127.0.0.1:{self.api_port}/products", json={"name": name, "price": 1}, timeout=30
        )
        assert response.status_code == 201, response.text


@pytest.fixture
def wine_up(tmp_path: Path, telegram: FakeTelegram) -> Iterator:
    started: list[BundledWineUp] = []

    def make(*args: str, grace: float = 5) -> BundledWineUp:
        started.append(BundledWineUp(tmp_path, telegram, *args, grace=grace))
        return started[-1]

    yield make
    for up in started:  # never leave a stack behind, even when a test failed
        up.stop()


def test_up_delivers_shows_status_and_goes_down(wine_up, telegram: FakeTelegram) -> None:
    up = wine_up()
    up.wait_ready()
    assert "embedded broker" in up.output()
    marker = f"wine-{uuid.uuid4().hex[:8]}"
    up.post_product(marker)
    assert telegram.wait_for(lambda: telegram.delivered(marker), 90), f"not delivered:\n{up.output()[-4000:]}"
    time.sleep(2)  # the worker's "succeeded" line (it echoes the message) reaches the printer
    up.assert_alive()

    status = up.p419("status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    document = json.loads(status.stdout)
    assert document["ready"] and document["broker"] == "embedded"
    assert {c["name"] for c in document["children"]} == {"api", "worker1"}
    assert all(c["state"] == "running" and c["pid"] for c in document["children"]), document
    table = up.p419("status")
    assert table.returncode == 0 and "worker1" in table.stdout and "api" in table.stdout, table.stderr

    kids = up.children()
    assert len(kids) >= 2, up.output()
    began = time.monotonic()
    down = up.p419("down", "--timeout", "120")
    print(f"p419 down under Wine took {time.monotonic() - began:.1f}s")
    assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
    assert up.proc.wait(30) == 0, up.output()[-3000:]
    assert wait_until(lambda: not alive(kids), 20), alive(kids)
    assert "Traceback" not in up.output(), up.output()
    # a clean stop, said so: uvicorn re-raising its SIGTERM used to end the API with exit code 3 on Windows
    assert re.search(r"^p419\s+\| api stopped$", up.output(), re.M), up.output()[-3000:]


def test_supervisor_killed_hard_leaves_no_child(wine_up) -> None:
    up = wine_up()
    up.wait_ready()
    kids = up.children()
    assert len(kids) >= 2, up.output()
    up.proc.send_signal(signal.SIGKILL)  # the Unix process behind the Windows one: no code of it runs again
    up.proc.wait(10)
    began = time.monotonic()
    assert wait_until(lambda: not alive(kids), 30), f"still alive: {alive(kids)}"
    print(f"children gone {time.monotonic() - began:.1f}s after the supervisor was killed")


EMOJI = "🆕🔥😀✨🚀 ünïcødé 中文 ✓ — “quotes” 🎉"


def test_up_on_a_pipe_survives_a_product_name_full_of_emoji(wine_up, telegram: FakeTelegram) -> None:
    """Issue 10's crash: a child's line with characters the console code page (cp1252) lacks must not kill
    the supervisor. Fails until supervisor/printer.py writes such lines safely."""
    up = wine_up()
    up.wait_ready()
    marker = f"emoji-{uuid.uuid4().hex[:8]}"
    up.post_product(f"{EMOJI} {marker}")
    assert telegram.wait_for(lambda: telegram.delivered(marker), 90), f"not delivered:\n{up.output()[-4000:]}"
    assert telegram.delivered(marker)[0].payload["text"].count("🚀") == 1  # the text arrived intact
    time.sleep(3)  # the worker's "succeeded" line, which echoes the text, reaches the printer
    up.assert_alive()
    down = up.p419("down", "--timeout", "120")
    assert down.returncode == 0, down.stdout + down.stderr
    assert up.proc.wait(30) == 0, up.output()[-3000:]
    assert "UnicodeEncodeError" not in up.output() and "Traceback" not in up.output(), up.output()[-4000:]


GRACE = 30.0
TASK_SECONDS = 8  # longer than Wine takes to start `p419 down` (about 3-4 s), so the stop lands mid-task


def test_warm_stop_without_a_console_lets_the_task_in_flight_finish(wine_up, telegram: FakeTelegram) -> None:
    """The console-free warm stop of issue 10. Under Wine CTRL_BREAK cannot be delivered (WinError 12): the
    stop must come another way (the launcher's stop file).

    Expected: a worker in the middle of a task (the fake Bot API holds its answer TASK_SECONDS) is asked to stop,
    finishes the task (the message is delivered), and exits on its own with exit code 0, well within the
    grace period, so nothing is killed. (The API stops the same way today: if the new stop path covers only
    workers, `p419 down` still takes the whole grace period under Wine because of the API.)
    """
    up = wine_up(grace=GRACE)
    up.wait_ready()
    marker = f"warm-{uuid.uuid4().hex[:8]}"
    telegram.script(marker, [f"delay:{TASK_SECONDS}"])
    up.post_product(marker)
    # The task is running once the worker logs that it received it; the fake then holds the answer.
    assert wait_until(lambda: re.search(r"worker1 \|.*Task .* received", up.output()), 60), up.output()[
        -3000:
    ]
    began = time.monotonic()
    down = up.p419("down", "--timeout", str(GRACE + 60))
    took = time.monotonic() - began
    print(f"p419 down with a task in flight took {took:.1f}s (grace {GRACE:g}s, task {TASK_SECONDS}s)")
    out = up.output()
    assert down.returncode == 0, down.stdout + down.stderr
    assert up.proc.wait(30) == 0, out[-3000:]
    stopping, finished = out.find("p419    | stopping: p419 down"), out.find("succeeded in")
    assert -1 < stopping < finished, f"the stop did not land while the task was in flight:\n{out[-4000:]}"
    assert telegram.delivered(marker), f"the task in flight was lost:\n{out[-4000:]}"
    # The supervisor says "worker1 killed" when the grace period ran out, "worker1 stopped" for a clean exit.
    assert re.search(r"^p419\s+\| worker1 stopped$", out, re.M), (
        f"the worker was not stopped warmly:\n{out[-4000:]}"
    )
    assert "worker1 killed" not in out, out[-4000:]


def test_reload_restarts_the_api_process_itself(wine_up, telegram: FakeTelegram) -> None:
    """Issue 9 on Windows: a saved .py file restarts the API and the worker through p419 (the API process is
    restarted; uvicorn's reloader, whose CTRL_C_EVENT would reach the whole console, is never used)."""
    up = wine_up("--reload")
    up.wait_ready()
    status = up.p419("status", "--json")
    assert status.returncode == 0, status.stderr
    before = {c["name"]: c["pid"] for c in json.loads(status.stdout)["children"]}
    assert "--reload" not in " ".join(" ".join(p.cmdline()) for p in up.children())  # not uvicorn's reloader
    (up.tmp_path / "touched.py").write_text("x = 1\n", encoding="utf-8")
    assert wait_until(lambda: "touched.py changed: restarting api, worker1" in up.output(), 60), up.output()[
        -3000:
    ]
    assert wait_until(lambda: up.output().count("api ready in") >= 2, 120), up.output()[-3000:]
    assert wait_until(lambda: up.output().count("worker1 ready in") >= 2, 120), up.output()[-3000:]
    up.assert_alive()
    status = up.p419("status", "--json")
    after = {c["name"]: c["pid"] for c in json.loads(status.stdout)["children"]}
    assert after["api"] != before["api"] and after["worker1"] != before["worker1"]
    restart = up.output().split("touched.py changed", 1)[1]
    assert "worker1 killed" not in restart, restart  # warm: through the stop file, not the grace-period kill
    up.post_product("after-reload")
    assert telegram.wait_for(lambda: telegram.delivered("after-reload"), 120), up.output()[-3000:]
