"""The project's own test suite, run against a running stack (BASE_URL)."""

import os
import time

import httpx

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8000")


def test_home():
    assert httpx.get(f"{BASE}/").json() == {"hello": "flat"}


def test_static():
    assert "static file" in httpx.get(f"{BASE}/static/hello.txt").text


def test_task_runs():
    task_id = httpx.post(f"{BASE}/tasks", json={"type": 1}).json()["task_id"]
    deadline = time.time() + 20
    while time.time() < deadline:
        body = httpx.get(f"{BASE}/tasks/{task_id}").json()
        if body["task_status"] == "SUCCESS":
            assert body["task_result"]["slept"] == 0.1
            return
        time.sleep(0.1)
    raise AssertionError(f"task {task_id} never succeeded: {body}")
