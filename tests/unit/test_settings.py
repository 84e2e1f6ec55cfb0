"""Machine-wide settings read from the environment: a bad value is one sentence naming the variable, not a traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

from incarnate import settings
from incarnate.errors import ConfigError

SECONDS = [
    (settings.stall_seconds, "INCARNATE_STALL_SECONDS", 600),
    (settings.progress_after, "INCARNATE_PROGRESS_AFTER", 3),
    (settings.ready_seconds, "INCARNATE_READY_SECONDS", 300),
    (settings.lock_wait_seconds, "INCARNATE_LOCK_WAIT_SECONDS", 1800),
    (settings.store_lock_ttl, "INCARNATE_STORE_LOCK_TTL", 600),
    (settings.store_lock_wait, "INCARNATE_STORE_LOCK_WAIT", 1800),
    (settings.prune_wait, "INCARNATE_PRUNE_WAIT", 600),
    (settings.prefect_wait_seconds, "INCARNATE_PREFECT_WAIT_SECONDS", 60),
]


@pytest.mark.parametrize(("read", "variable", "default"), SECONDS, ids=[variable for _, variable, _ in SECONDS])
def test_seconds_settings_take_a_number_and_refuse_anything_else_naming_the_variable(
    monkeypatch, read, variable, default
):
    monkeypatch.delenv(variable, raising=False)
    assert read() == default
    monkeypatch.setenv(variable, "")  # an empty line in an environment file means unset
    assert read() == default
    monkeypatch.setenv(variable, "90.5")
    assert read() == 90.5
    for bad in ("soon", "-1", "nan", "inf", "10s"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ConfigError, match=rf"^{variable}={bad!r}: expected a number of seconds"):
            read()


def test_a_bad_setting_is_refused_when_the_command_starts_before_anything_runs(tmp_path):
    incarnate = Path(sys.executable).with_name("incarnate")
    result = subprocess.run(
        [incarnate, "status", str(tmp_path / "no-such-repo")],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "INCARNATE_HOME": str(tmp_path), "INCARNATE_STALL_SECONDS": "10m"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: INCARNATE_STALL_SECONDS='10m': expected a number of seconds, at least 0."
    ]


def test_run_start_is_forked_unless_fresh_is_asked_and_anything_else_is_refused_naming_the_variable(monkeypatch):
    for unset in (None, ""):
        if unset is None:
            monkeypatch.delenv("INCARNATE_RUN_START", raising=False)
        else:
            monkeypatch.setenv("INCARNATE_RUN_START", unset)
        assert settings.run_start() == "forked"
    monkeypatch.setenv("INCARNATE_RUN_START", "fresh")
    assert settings.run_start() == "fresh"
    monkeypatch.setenv("INCARNATE_RUN_START", "fork")
    with pytest.raises(ConfigError, match=r"^INCARNATE_RUN_START='fork': expected one of forked, fresh\.$"):
        settings.check()
