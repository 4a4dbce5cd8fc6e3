"""`p419 export compose`: the document for a configuration (pure), validated against the Compose
Specification's own JSON schema.

The schema is `test_export_compose_spec.json` beside this file: compose-spec's `compose-spec.json` (Apache-2.0,
github.com/compose-spec/compose-spec), as vendored by the check-jsonschema 0.39.0 wheel from PyPI at
`check_jsonschema/builtin_schemas/vendor/compose-spec.json`, sha256 below (the wheel's own
`vendor/sha256/compose-spec.sha256` says the same); its licence beside it (`test_export_compose_spec.LICENSE`).
Validated with jsonschema-rs (schemathesis, a test dependency, brings it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from python419.production.compose import ExportError, compose_document, render_yaml
from python419.project import ConfigSource, Flags, Project, parse_config, resolve_project

SCHEMA = Path(__file__).with_name("test_export_compose_spec.json")
SCHEMA_SHA256 = "d549057ebc2925f39f62799eab0db7b9e2c18b35b6c00595199116da3ed10e64"
LOCAL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def validator() -> Any:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    return jsonschema_rs.validator_for(json.loads(SCHEMA.read_text()))


def project(root: Path, **config: Any) -> Project:
    config.setdefault("api", "main:app")
    config.setdefault("celery", "worker.celery")
    path = root / "p419.toml"
    return resolve_project(
        root, {}, Flags(), ConfigSource(path, "p419.toml", parse_config(config, str(path)))
    )


def export(
    root: Path,
    broker: str = LOCAL,
    mode: str = "auto",
    env_files: dict[str, str] | None = None,
    **config: Any,
):
    return compose_document(
        project(root, **config),
        broker_url=broker,
        broker_mode=mode,
        env_file_values=env_files or {},
        out_dir=root,
    )


def errors(validator: Any, document: dict[str, Any]) -> list[str]:
    return [str(error).splitlines()[0] for error in validator.iter_errors(document)]


def test_the_services_of_a_configuration(tmp_path: Path, validator: Any) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / ".env").write_text("DATABASE_URL=postgresql://db/app\n")
    exported = export(
        tmp_path,
        app_dir="project",
        beat=True,
        flower=True,
        workers=[
            {"name": "fast", "queues": ["high", "default"], "pool": "threads", "concurrency": 4, "count": 2},
            {"name": "slow", "queues": ["low"]},
        ],
    )
    services = exported.document["services"]
    assert list(services) == ["redis", "api", "fast", "slow", "beat", "flower"]
    redis = services["redis"]
    assert redis["image"] == "redis:7" and redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    api = services["api"]
    assert api["command"] == ["uvicorn", "main:app", "--host", "0.0.0.0", "--port", "8000"]
    assert api["build"] == "." and api["working_dir"] == "/app/project" and api["volumes"] == [".:/app"]
    assert api["env_file"] == [".env"]
    assert api["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert api["environment"] == {
        "CELERY_BROKER_URL": "redis://redis:6379/0",
        "CELERY_RESULT_BACKEND": "redis://redis:6379/0",
    }
    fast = ["celery", "-A", "worker.celery", "worker", "--loglevel=info", "-Q", "high,default"]
    assert services["fast"]["command"] == [*fast, "--pool", "threads", "--concurrency", "4"]
    assert services["fast"]["deploy"] == {"replicas": 2}
    # Only what is configured: Celery's own default pool (prefork) in a Linux container, no forced solo.
    assert services["slow"]["command"] == [
        "celery",
        "-A",
        "worker.celery",
        "worker",
        "--loglevel=info",
        "-Q",
        "low",
    ]
    assert "deploy" not in services["slow"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "worker.celery", "beat"]
    assert services["flower"]["ports"] == ["5555:5555"]
    assert all(
        s["depends_on"]["redis"]["condition"] == "service_healthy"
        for n, s in services.items()
        if n != "redis"
    )
    assert exported.document["volumes"] == {"redis-data": {}}
    assert errors(validator, exported.document) == []
    assert errors(validator, yaml.safe_load(render_yaml(exported.document, "p419.toml"))) == []


def test_secrets_are_references_never_values(tmp_path: Path, validator: Any) -> None:
    env = {
        "SECRET_KEY": "s3cr3t-value",
        "TELEGRAM_BOT_TOKEN": "123:tok-value",
        "DB_PASSWORD": "pw-value",
        "STRIPE_API_KEY": "sk-value",
        "PLAIN": "a$b",
    }
    exported = export(tmp_path, env=env)
    text = render_yaml(exported.document, "p419.toml")
    for value in ("s3cr3t-value", "tok-value", "pw-value", "sk-value"):
        assert value not in text
    environment = exported.document["services"]["api"]["environment"]
    assert (
        environment["SECRET_KEY"] == "${SECRET_KEY}" and environment["STRIPE_API_KEY"] == "${STRIPE_API_KEY}"
    )
    assert environment["PLAIN"] == "a$$b"  # compose interpolates $: a literal one is $$
    assert any(
        "SECRET_KEY, TELEGRAM_BOT_TOKEN, DB_PASSWORD, STRIPE_API_KEY" in line for line in exported.left
    )
    assert errors(validator, exported.document) == []


def test_urls_of_this_machine(tmp_path: Path) -> None:
    """A loopback Redis is the `redis` service (from [env] and from the env files); any other loopback URL is the
    container itself: said, not guessed."""
    exported = export(
        tmp_path,
        broker="redis://:pw@127.0.0.1:6390/3",
        env={"CACHE_URL": "redis://localhost:6391/1", "DATABASE_URL": "postgresql://u@127.0.0.1:5432/app"},
        env_files={"REDIS_URL": "redis://127.0.0.1:6390/3", "OTHER": "x"},
    )
    environment = exported.document["services"]["worker"]["environment"]
    assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/3"  # the service's Redis has no password
    assert (
        environment["CACHE_URL"] == "redis://redis:6379/1"
        and environment["REDIS_URL"] == "redis://redis:6379/3"
    )
    assert environment["DATABASE_URL"] == "postgresql://u@127.0.0.1:5432/app" and "OTHER" not in environment
    assert any(line.startswith("DATABASE_URL points at 127.0.0.1") for line in exported.left)


def test_brokers(tmp_path: Path, validator: Any) -> None:
    embedded = export(tmp_path, mode="embedded")
    assert "redis" in embedded.document["services"] and any("broker = embedded" in x for x in embedded.left)
    remote = export(tmp_path, broker="redis://cache.internal:6379/0", mode="redis")
    assert "redis" not in remote.document["services"] and "volumes" not in remote.document
    assert "depends_on" not in remote.document["services"]["api"]
    assert (
        remote.document["services"]["api"]["environment"]["CELERY_BROKER_URL"]
        == "redis://cache.internal:6379/0"
    )
    secret = export(tmp_path, broker="redis://:pw@cache.internal:6379/0", mode="redis")
    assert secret.document["services"]["api"]["environment"]["CELERY_BROKER_URL"] == "${CELERY_BROKER_URL}"
    assert "pw" not in render_yaml(secret.document, "x").replace("p419", "")
    for document in (embedded.document, remote.document, secret.document):
        assert errors(validator, document) == []


def test_api_command_and_names(tmp_path: Path, validator: Any) -> None:
    exported = export(
        tmp_path,
        api=None,
        api_command="{python} -m hypercorn --bind {host}:{port} app.main:app",
        workers=[{"name": "api"}, {"name": "beat"}],
        beat=True,
    )
    services = exported.document["services"]
    assert services["api"]["command"] == [
        "python",
        "-m",
        "hypercorn",
        "--bind",
        "0.0.0.0:8000",
        "app.main:app",
    ]
    assert list(services) == ["redis", "api", "api-worker", "beat-worker", "beat"]
    assert errors(validator, exported.document) == []
    beside = tmp_path / "repo"
    beside.mkdir()
    outside = compose_document(
        project(beside, app_dir="../backend"),
        broker_url=LOCAL,
        broker_mode="auto",
        env_file_values={},
        out_dir=beside,
    )
    api = outside.document["services"]["api"]
    assert api["working_dir"] == "/code" and api["volumes"] == [".:/app", "../backend:/code"]


def test_the_bundled_app_is_not_exported(tmp_path: Path) -> None:
    bundled = resolve_project(tmp_path, {}, Flags(), None)
    with pytest.raises(ExportError, match="no p419 configuration here"):
        compose_document(bundled, broker_url=LOCAL, broker_mode="auto", env_file_values={}, out_dir=tmp_path)


def test_the_schema_is_the_real_one(validator: Any) -> None:
    """The validator refuses what compose refuses (so a pass above means something)."""
    assert errors(
        validator, {"services": {"api": {"build": ".", "depends_on": {"redis": {"condition": "up"}}}}}
    )
    assert errors(validator, {"services": {"api": {"image": "x", "restart_policy": "always"}}})
    assert errors(
        validator, {"services": {"api": {"image": "x", "healthcheck": {"test": ["CMD", "true"], "bogus": 1}}}}
    )
    assert not errors(validator, {"services": {"api": {"image": "x"}}})
