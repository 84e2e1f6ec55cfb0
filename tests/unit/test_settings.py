"""Machine-wide settings read from the environment: a bad value is one sentence naming the variable, never a traceback."""

import pytest

from incarnate import retention, settings
from incarnate.errors import ConfigError
from incarnate.stores import locking

SECONDS = [
    (settings.stall_seconds, "INCARNATE_STALL_SECONDS", 600),
    (settings.progress_after, "INCARNATE_PROGRESS_AFTER", 3),
    (settings.ready_seconds, "INCARNATE_READY_SECONDS", 300),
    (settings.lock_wait_seconds, "INCARNATE_LOCK_WAIT_SECONDS", 1800),
    (locking.ttl_seconds, "INCARNATE_STORE_LOCK_TTL", 600),
    (locking.store_lock_wait_seconds, "INCARNATE_STORE_LOCK_WAIT", 1800),
    (retention.clean_up_wait_seconds, "INCARNATE_PRUNE_WAIT", 600),
]


@pytest.mark.parametrize(("read", "variable", "default"), SECONDS, ids=[variable for _, variable, _ in SECONDS])
def test_seconds_settings_take_a_number_and_refuse_anything_else_naming_the_variable(monkeypatch, read, variable, default):
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

