"""Configuration: defaults, the write-up's REDIS_HOST/REDIS_PORT, .env files, and clear errors for bad values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from python419.products.settings import ProductSettings
from python419.settings import Settings, SettingsError, load_settings, safe_url
from tests.conftest import TOKEN, clean_environ


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in __import__("os").environ if k.startswith(("REDIS_", "TELEGRAM_", "P419_"))]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert (s.api_host, s.api_port) == ("127.0.0.1", 8000)
    assert s.broker == "auto" and s.broker_mode == "auto"
    app = load_settings(cls=ProductSettings)
    assert app.telegram_api_url == "https://api.telegram.org" and app.token is None


def test_the_launchers_settings_never_judge_the_bundled_apps_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """A user's project may have TELEGRAM_TIMEOUT=20 of its own: it made p419 up exit 2 (the bundled app's
    lease rule); only the bundled app's settings hold it to that rule."""
    monkeypatch.setenv("TELEGRAM_TIMEOUT", "20")
    assert not hasattr(load_settings(), "telegram_timeout")
    with pytest.raises(SettingsError, match="P419_LEASE_SECONDS"):
        load_settings(cls=ProductSettings)


def test_redis_host_and_port_build_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_HOST", "10.0.0.5")
    monkeypatch.setenv("REDIS_PORT", "6380")
    assert load_settings().redis_url == "redis://10.0.0.5:6380/0"
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:7000/3")
    assert load_settings().redis_url == "redis://127.0.0.1:7000/3"


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\nP419_PLATFORM=Windows\nP419_API_PORT=9001\n")
    s = load_settings(cls=ProductSettings)
    assert s.token == TOKEN and s.platform == "windows" and s.api_port == 9001
    assert TOKEN not in repr(s)


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("P419_API_PORT", "70000", "P419_API_PORT"),
        ("P419_PLATFORM", "beos", "P419_PLATFORM"),
        ("REDIS_URL", "http://localhost", "REDIS_URL"),
        ("REDIS_URL", "redis://localhost:99999/0", "REDIS_URL"),
        ("TELEGRAM_API_URL", "not a url", "TELEGRAM_API_URL"),
        ("P419_BROKER", "rabbit", "P419_BROKER"),
    ],
)
def test_invalid_values_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=expected):
        load_settings(cls=ProductSettings)


@pytest.mark.parametrize(
    "key,value", [("P419_API_PORT", "70000"), ("P419_PLATFORM", "beos"), ("REDIS_URL", "http://x")]
)
def test_cli_reports_bad_settings_in_one_line(tmp_path: Path, key: str, value: str) -> None:
    env = {**clean_environ(), key: value}
    done = subprocess.run(
        [sys.executable, "-m", "python419", "worker", "--dry-run"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().count("\n") == 0 and key in done.stderr


def test_a_bad_token_value_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("P419_API_PORT", "nope")
    with pytest.raises(SettingsError) as caught:
        load_settings(cls=ProductSettings)
    assert TOKEN not in str(caught.value)


def test_safe_url_hides_passwords() -> None:
    assert safe_url("redis://:hunter2@host:6379/0") == "redis://:**@host:6379/0"  # kombu's sanitizer
    assert safe_url("redis://user:hunter2@host/0") == "redis://user:**@host/0"
    assert safe_url("redis://host:6379/0") == "redis://host:6379/0"
    assert "hunter2" not in safe_url("redis://host:6379/0?password=hunter2")  # a query may hold one too
    assert (
        safe_url("redis://:hunter2@host:99999999/0") == "redis://***@host:99999999/0"
    )  # malformed: no raise


def test_broker_setting_and_data_dir_layout() -> None:
    s = Settings(P419_BROKER="embedded", P419_DATA_DIR="d")  # type: ignore[call-arg]
    assert s.broker_mode == "embedded" and s.data_dir == Path("d").resolve()
    assert s.embedded_dir == s.data_dir / "broker" and s.run_dir == s.data_dir / "run"
    url = Settings(P419_BROKER="redis://:pw@10.0.0.5:6380/2")  # type: ignore[call-arg]
    assert url.broker_mode == "redis" and url.broker_redis_url == "redis://:pw@10.0.0.5:6380/2"


def test_importing_makes_no_app_and_reads_no_settings(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import celery._state as s, python419.products.tasks, python419.products.tasks.celery_app as m, python419.products.settings as st;"
        "assert s.default_app is None, 'an app was made at import';"
        "assert st.get_settings.cache_info().currsize == 0, 'settings were read at import';"
        "import os; assert not os.path.exists('.p419'), 'a folder was made at import';"
        "print(m.get_app().main)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "python419", done.stderr


@pytest.mark.parametrize(
    ("url", "change", "expected"),
    [
        # a Redis p419 starts gets a generated password, percent-encoded, any old credentials replaced
        ("redis://127.0.0.1:6379/0", {"password": "p@ss/w"}, "redis://:p%40ss%2Fw@127.0.0.1:6379/0"),
        ("redis://user:old@localhost:6380/1", {"password": "new"}, "redis://:new@localhost:6380/1"),
        # p419 init points a compose service name at loopback, keeping credentials, port and database
        ("redis://user:pw@redis:6379/2", {"host": "127.0.0.1"}, "redis://user:pw@127.0.0.1:6379/2"),
        ("redis://redis/0", {"host": "127.0.0.1"}, "redis://127.0.0.1/0"),
    ],
)
def test_with_parts_rebuilds_only_what_it_is_asked_to(url: str, change: dict, expected: str) -> None:
    from python419.addresses import with_parts

    assert with_parts(url, **change) == expected


def test_precedence_overrides_environment_env_files_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    first, second = tmp_path / "a.env", tmp_path / "b.env"
    first.write_text("P419_API_PORT=9001\nP419_API_HOST=10.0.0.1\nREDIS_PORT=7001\n")
    second.write_text("export P419_API_PORT='9002'  # the later file wins\nunrelated=1\n")
    s = load_settings([first, second, tmp_path / "missing.env"])
    assert (s.api_port, s.api_host, s.redis_url) == (9002, "10.0.0.1", "redis://127.0.0.1:7001/0")
    monkeypatch.setenv("p419_api_port", "9003")  # names in any case, as pydantic-settings read them
    assert load_settings([first, second]).api_port == 9003
    assert load_settings([first, second], P419_API_PORT="9004").api_port == 9004
    assert load_settings([first, second]).fields_set >= {"api_port", "api_host", "redis_port"}
    assert "data_dir" not in load_settings([first, second]).fields_set  # a default is not "set"


def test_replace_changes_fields_and_marks_them_set(tmp_path: Path) -> None:
    s = load_settings(P419_DATA_DIR=str(tmp_path))
    moved = s.replace(broker="embedded", data_dir=tmp_path / "other")
    assert (moved.broker_mode, moved.data_dir, moved.api_port) == ("embedded", tmp_path / "other", 8000)
    assert {"broker", "data_dir"} <= moved.fields_set and s.broker == "auto"
    with pytest.raises(AttributeError, match="read-only"):
        s.api_port = 1  # type: ignore[misc]


def test_a_copy_works_out_its_database_path_again(tmp_path: Path) -> None:
    """database_path is worked out once per settings object; a copy on another data dir has its own."""
    s = load_settings(P419_DATA_DIR=str(tmp_path), cls=ProductSettings)
    assert s.database_path == tmp_path / "p419.db" and s.database_path is s.database_path
    assert s.replace(data_dir=tmp_path / "other").database_path == tmp_path / "other" / "p419.db"


def test_every_problem_is_said_in_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P419_API_PORT", "0")
    monkeypatch.setenv("REDIS_PORT", "six")
    monkeypatch.setenv("P419_RETRY_DELAY", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings(cls=ProductSettings)
    message = str(caught.value)
    assert "invalid setting REDIS_PORT='six': must be an integer" in message
    assert "invalid setting P419_API_PORT='0': must be 1..65535" in message
    assert "invalid setting P419_RETRY_DELAY='-1': must be 0..3600" in message
    assert set(caught.value.names) == {"P419_API_PORT", "REDIS_PORT", "P419_RETRY_DELAY"}


def test_a_rule_across_settings_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_TIMEOUT", "20")
    monkeypatch.setenv("P419_LEASE_SECONDS", "60")
    with pytest.raises(SettingsError) as caught:
        load_settings(cls=ProductSettings)
    assert str(caught.value).startswith("invalid settings: P419_LEASE_SECONDS (60) must be more than 3 x")
    assert set(caught.value.names) == {"P419_LEASE_SECONDS", "TELEGRAM_TIMEOUT"}
    monkeypatch.setenv("P419_LEASE_SECONDS", "61")
    assert load_settings(cls=ProductSettings).lease_seconds == 61.0


def test_secrets_and_passwords_never_reach_a_message_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")  # blank: no token
    assert load_settings(cls=ProductSettings).token is None
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@host:99999/0")
    with pytest.raises(SettingsError) as caught:
        load_settings(cls=ProductSettings)
    assert "hunter2" not in str(caught.value) and "REDIS_URL" in str(caught.value)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")
    s = load_settings(cls=ProductSettings)
    assert s.token == TOKEN and TOKEN not in repr(s) and "telegram_bot_token='**********'" in repr(s)


def test_importing_the_settings_loads_no_pydantic() -> None:
    """`p419 up` reads them before its first child: pydantic-settings alone cost ~100 ms there."""
    code = "import sys, python419.settings, python419.products.settings; print(sorted(m for m in sys.modules if m.split('.')[0] in ('pydantic', 'pydantic_settings', 'dotenv')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_an_env_file_that_cannot_be_decoded_or_read_is_no_traceback(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_bytes(b"P419_API_HOST=caf\xe9\nP419_API_PORT=9009\n")  # latin-1, not UTF-8
    s = load_settings([env])
    assert s.api_port == 9009 and s.api_host == "caf\ufffd"

    class Unreadable(type(env)):  # type: ignore[misc]
        """A file its user may not read (root, running the suite, reads any: the refusal is the OS's)."""

        def open(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def, override]
            raise PermissionError(13, "Permission denied", str(self))

    with pytest.raises(SettingsError, match=r"^cannot read the env file .*\.env: Permission denied$"):
        load_settings([Unreadable(env)])
