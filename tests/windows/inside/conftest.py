"""These tests run inside the Windows CPython that scripts/test-windows sets up (under Wine in CI)."""

import sys

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if sys.platform != "win32":  # never a silent skip: this set is only meaningful on Windows
        raise pytest.UsageError("tests/windows/inside runs under Windows CPython: bash scripts/test-windows")
