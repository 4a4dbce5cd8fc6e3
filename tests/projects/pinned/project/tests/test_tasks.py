"""The project's own test suite, run against a running stack: BASE_URL is where its API answers."""

import os
import time

import requests


BASE_URL = os.environ["BASE_URL"].rstrip("/")


def test_home():
    response = requests.get(f"{BASE_URL}/", timeout=10)
    assert response.status_code == 200, response.text
    assert "Pick a task length." in response.text
    assert "/static/main.css" in response.text  # url_for in the base template: the static mount is there


def test_static():
    response = requests.get(f"{BASE_URL}/static/main.js", timeout=10)
    assert response.status_code == 200
    assert "function runTask" in response.text


def test_task_status():
    response = requests.post(f"{BASE_URL}/tasks", json={"type": 1}, timeout=10)
    # 200, not the route's status_code=201: the view returns a JSONResponse of its own, which FastAPI sends as is.
    assert response.status_code == 200
    task_id = response.json()["task_id"]
    assert task_id

    deadline = time.monotonic() + 30
    while True:
        content = requests.get(f"{BASE_URL}/tasks/{task_id}", timeout=10).json()
        if content["task_status"] != "PENDING" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert content["task_id"] == task_id
    assert content["task_status"] == "SUCCESS", content
    assert content["task_result"]["slept"] == 0.1
