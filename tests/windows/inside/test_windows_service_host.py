"""The Windows service host's own Windows calls, for real (scripts/test-windows runs these under Wine): its command
line as Windows splits it, its Parameters through the real registry, its sys.path set-up from them, the Job Object
that ends p419 up's whole tree, and the host run by hand (not by the service manager).
tests/windows/e2e/test_service_under_wine.py runs it as a service."""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time
import uuid
import winreg
from collections.abc import Iterator
from ctypes import wintypes
from pathlib import Path

import psutil
import pytest

from python419.production import windows_service as ws
from python419.production import winsvc_host

SERVICES = r"SYSTEM\CurrentControlSet\Services"


def split_like_windows(command_line: str) -> list[str]:
    shell32 = ctypes.WinDLL("shell32")
    shell32.CommandLineToArgvW.argtypes = (wintypes.LPCWSTR, ctypes.POINTER(ctypes.c_int))
    shell32.CommandLineToArgvW.restype = ctypes.POINTER(wintypes.LPWSTR)
    count = ctypes.c_int()
    argv = shell32.CommandLineToArgvW(command_line, ctypes.byref(count))
    try:
        return [argv[i] for i in range(count.value)]
    finally:
        ctypes.windll.kernel32.LocalFree(argv)


@pytest.mark.parametrize(
    "python",
    [
        sys.executable,
        r"C:\Program Files\Python 3.12\python.exe",
        r"C:\Users\José Núñez\AppData\Local\Programs\Python\Python312\python.exe",
    ],
)
def test_the_service_command_line_splits_back_into_the_same_words(python: str) -> None:
    script = r"C:\Users\Ana Lopez\p419 env\Lib\site-packages\python419\production\winsvc_host.py"
    line = ws.host_command_line(python, script, "p419-shop")
    assert split_like_windows(line) == [python, "-I", script, "p419-shop"]


@pytest.fixture
def service_key() -> Iterator[str]:
    """A scratch key under Services (no service: no ImagePath), removed afterwards."""
    name = f"p419-inside-{uuid.uuid4().hex[:8]}"
    yield name
    for sub in (rf"{SERVICES}\{name}\{ws.PARAMETERS}", rf"{SERVICES}\{name}"):
        with contextlib.suppress(OSError):
            winreg.DeleteKey(winreg.HKEY_LOCAL_MACHINE, sub)


def test_parameters_go_through_the_registry_and_come_back_as_the_host_reads_them(
    service_key: str, tmp_path: Path
) -> None:
    root = tmp_path / "shop ünï"
    spec = ws.build_spec(
        name=service_key,
        root=root,
        data_dir=root / ".p419",
        up=[sys.executable, "-m", "python419", "up", "--grace", "10", "--python", str(root / ".venv")],
        grace=10,
        host_python=sys.executable,
        host_script=winsvc_host.__file__,
        site_dirs=[str(tmp_path / "site")],
        env_files=[root / ".env"],
        account=None,
        version="0.1.0",
        what="shop",
    )
    scm = ws.PywinScm()
    scm.write_parameters(service_key, ws.registry_values(spec))
    read = scm.parameters(service_key)
    assert read["StopTimeout"] == 30 and read["Command"] == list(spec.command)
    config = ws.host_config(service_key, read)
    assert config.working_dir == str(root) and config.data_dir == str(root / ".p419")
    assert config.environment["P419_DATA_DIR"] == str(root / ".p419")
    assert config.command == spec.command


def test_the_host_puts_the_services_site_packages_first_with_their_pth_files(
    service_key: str, tmp_path: Path
) -> None:
    site = tmp_path / "venv site"
    (site / "extra").mkdir(parents=True)
    (site / "p419_inside.pth").write_text("extra\n", encoding="utf-8")
    scm = ws.PywinScm()
    scm.write_parameters(service_key, {"SitePackages": (ws.REG_MULTI_SZ, [str(site)])})
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import winsvc_host as h; "
        "h._bootstrap(sys.argv[2]); print(repr(sys.path[:2]))"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code, str(Path(winsvc_host.__file__).parent), service_key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr([str(site), str(site / "extra")])


GRANDPARENT = r"""
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print(child.pid, flush=True)
time.sleep(120)
"""


def test_the_hosts_job_ends_p419_ups_whole_tree(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", GRANDPARENT],
        stdout=subprocess.PIPE,
        creationflags=winsvc_host.CREATE_NO_WINDOW,
    )
    try:
        end_tree = winsvc_host._contain(child)
        assert end_tree is not None
        assert child.stdout is not None
        grandchild = psutil.Process(int(child.stdout.readline()))
        began = time.monotonic()
        end_tree()
        child.wait(30)
        grandchild.wait(30)
        print(f"tree ended in {time.monotonic() - began:.2f}s")
    finally:
        if child.poll() is None:
            child.kill()


def test_the_host_run_by_hand_says_the_service_manager_starts_it() -> None:
    done = subprocess.run(
        [sys.executable, "-I", winsvc_host.__file__, f"p419-nothere-{os.getpid()}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "the service manager starts it" in done.stderr
