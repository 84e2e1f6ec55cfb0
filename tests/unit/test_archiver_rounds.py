"""The archiver's rounds say how long they take: the first one (every stack opened), and any that outlasts the
interval, which is then the recovery point of a total loss rather than INCARNATE_ARCHIVE_SECONDS."""

import os
import subprocess
import threading
import time

import pytest

from deployments import archiver
from incarnate.archiver import Round
from incarnate.errors import ConfigError


def test_the_first_round_and_a_round_longer_than_the_interval_are_said_the_latter_once_a_while(monkeypatch):
    monkeypatch.setenv("INCARNATE_ARCHIVE_SECONDS", "1")
    stop, said, rounds = threading.Event(), [], []

    def archive_once(repo, host, opened):
        rounds.append(repo)
        time.sleep(1.2 if len(rounds) > 1 else 0)  # the first round is quick, the next ones outlast the second
        if len(rounds) == 4:
            stop.set()
        return Round(repo.rsplit("/", 1)[-1], [], [], None)

    monkeypatch.setattr(archiver, "archive_once", archive_once)
    monkeypatch.setattr(archiver.Rounds, "stack", lambda self, repo, host, say: None)
    archiver.run_rounds(lambda: [("/repos/acme", None)], stop, said.append, quiet=True)
    timing = [line for line in said if line.startswith("archiving:")]
    assert len(timing) == 2, said  # the first round, then the first slow one; the next slow ones within IDLE_EVERY not
    assert timing[0].startswith("archiving: the first round over 1 stack(s) took 0.")
    assert timing[1].startswith("archiving: a round over 1 stack(s) took 1.")
    assert "s, longer than the 1 s between rounds (INCARNATE_ARCHIVE_SECONDS): each stack's writes" in timing[1]


def test_a_round_ships_stacks_at_once_says_them_in_order_and_one_failing_stops_none(monkeypatch):
    monkeypatch.setenv("INCARNATE_ARCHIVE_PARALLEL", "3")
    stop, said = threading.Event(), []
    together = threading.Barrier(3, timeout=30)  # passed only when three stacks are shipped at one time

    def archive_once(repo, host, opened):
        name = repo.rsplit("/", 1)[-1]
        if name in ("s0", "s1", "s2"):
            together.wait()
        if name == "s4":
            raise RuntimeError("its store does not answer")
        stop.set()
        return Round(name, [], [], None)

    monkeypatch.setattr(archiver, "archive_once", archive_once)
    monkeypatch.setattr(archiver.Rounds, "stack", lambda self, repo, host, say: None)
    archiver.run_rounds(lambda: [(f"/repos/s{n}", None) for n in range(7)], stop, said.append)
    assert said[:7] == [
        "stack s0: ",
        "stack s1: ",
        "stack s2: ",
        "stack s3: ",
        "archiving of /repos/s4: its store does not answer",
        "stack s5: ",
        "stack s6: ",
    ]


@pytest.mark.parametrize("setting", ["INCARNATE_ARCHIVE_PARALLEL", "INCARNATE_ARCHIVE_SECONDS"])
def test_a_wrong_archive_setting_is_refused_by_serve_itself_before_any_round(monkeypatch, setting):
    monkeypatch.setenv(setting, "0")
    with pytest.raises(ConfigError, match=f"{setting}.*0.*expected"):
        archiver.in_background(lambda: pytest.fail("no round may begin"), "1 stack(s)")


def test_rounds_and_the_commands_they_start_stand_back_behind_the_runs(monkeypatch):
    stop, niceness = threading.Event(), []

    def archive_once(repo, host, opened):
        started = subprocess.run(["nice"], capture_output=True, text=True, check=True)  # prints its own niceness
        niceness.append(int(started.stdout))
        stop.set()
        return Round("acme", [], [], None)

    monkeypatch.setattr(archiver, "archive_once", archive_once)
    monkeypatch.setattr(archiver.Rounds, "stack", lambda self, repo, host, say: None)
    own = os.getpriority(os.PRIO_PROCESS, 0)
    rounds = threading.Thread(target=archiver.run_rounds, args=(lambda: [("/repos/acme", None)], stop, lambda _: None))
    rounds.start()
    rounds.join(30)
    assert niceness == [min(19, own + archiver.ARCHIVER_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, 0) == own  # the process's other threads (serve's runs) keep theirs
