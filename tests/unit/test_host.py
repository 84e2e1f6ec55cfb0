"""incarnate/host.py: commands on a container host, with real local processes."""

import time

import pytest

from incarnate.errors import HostError, StageError
from incarnate.host import Host


def test_a_load_into_a_command_that_stops_reading_is_ended_after_the_stall_time(monkeypatch):
    """A database load whose server stops reading (a lock, a hung host) would hold the stack forever; like a dump,
    it is ended when it makes no progress for INCARNATE_STALL_SECONDS, and says so."""
    monkeypatch.setenv("INCARNATE_STALL_SECONDS", "1")

    def feed(stdin) -> None:
        for _ in range(64):  # far more than a pipe holds: the writes block once it is full
            stdin.write(b"x" * (1 << 20))

    started = time.monotonic()
    with pytest.raises(StageError, match=r"^loading a test dump on host local made no progress for 1 s"):
        Host().stream_in(["sleep", "30"], feed, what="loading a test dump")
    assert time.monotonic() - started < 10


def test_a_load_whose_command_ends_before_taking_the_whole_stream_fails_even_with_exit_0():
    """A restore that did not load everything must never pass as loaded, whatever the command's exit status."""

    def feed(stdin) -> None:
        for _ in range(64):
            stdin.write(b"x" * (1 << 20))

    with pytest.raises(HostError, match=r"^loading a test dump on host local ended before it took the whole stream"):
        Host().stream_in(["true"], feed, what="loading a test dump")
