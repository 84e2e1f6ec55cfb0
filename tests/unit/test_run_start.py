"""How serve starts a run's process (deployments/run_start.py): forked from a process that imported the flows, with the
environment its starter hands it; or, when asked, a new Python as Prefect does."""

import os
import stat
import sys
from multiprocessing import forkserver
from pathlib import Path
from types import SimpleNamespace

from deployments import run_start

PROBE = "tests.unit.run_start_probe"  # imported by the fork server only: a run finds it imported already


def what_a_run_sees(env: dict[str, str], answers) -> None:
    """A run's process, as far as this test asks: who started it, and what it has and was given."""
    os.environ.update(env)  # as Prefect's engine does with the environment it hands a run
    seen = {name: os.environ.get(name) for name in ("RUN_START_HANDED", "RUN_START_LATE")}
    answers.put((os.getppid(), PROBE in sys.modules, seen, os.nice(0)))


def test_a_run_is_forked_from_the_fork_server_that_imported_the_flows_with_the_environment_it_is_handed(monkeypatch):
    monkeypatch.delenv("INCARNATE_RUN_START", raising=False)
    engine = SimpleNamespace()  # stands in for prefect.flow_engine: the module whose spawn context is replaced
    assert run_start.fork_server([PROBE], engine=engine) is None
    context = engine.multiprocessing.get_context("spawn")
    assert context.get_start_method() == "forkserver"
    assert engine.multiprocessing.get_context("fork").get_start_method() == "fork"  # only spawn is replaced
    assert engine.multiprocessing.cpu_count() == os.cpu_count()  # the rest is multiprocessing's own
    # Set here after the fork server started: a run sees it only when it is handed (Prefect hands a run the whole
    # environment of the moment it starts).
    monkeypatch.setenv("RUN_START_LATE", "late")
    monkeypatch.setenv("RUN_START_HANDED", "handed")
    answers = context.SimpleQueue()
    run = context.Process(target=what_a_run_sees, args=({"RUN_START_HANDED": os.environ["RUN_START_HANDED"]}, answers))
    run.start()
    parent, preloaded, handed, niceness = answers.get()
    run.join(30)
    assert run.exitcode == 0
    assert parent != os.getpid()  # the fork server's child, not a new Python of this process's
    assert preloaded and PROBE not in sys.modules  # imported there once, never here
    assert handed == {"RUN_START_HANDED": "handed", "RUN_START_LATE": None} and niceness == os.nice(0)
    # Only serve's user may ask the fork server for a process: a socket of its own, in a folder of its own.
    socket = Path(forkserver._forkserver._forkserver_address)
    assert stat.S_IMODE(socket.stat().st_mode) == 0o600 and stat.S_IMODE(socket.parent.stat().st_mode) == 0o700


def test_fresh_starts_leave_prefects_engine_as_it_is(monkeypatch):
    monkeypatch.setenv("INCARNATE_RUN_START", "fresh")
    engine = SimpleNamespace()
    assert run_start.fork_server(["flows.backup"], engine=engine) == "INCARNATE_RUN_START=fresh"
    assert not hasattr(engine, "multiprocessing")


def test_a_python_whose_fork_server_any_local_user_could_reach_starts_runs_fresh(monkeypatch):
    monkeypatch.delenv("INCARNATE_RUN_START", raising=False)
    monkeypatch.setattr(sys, "version_info", (3, 11, 0))
    engine = SimpleNamespace()
    assert run_start.fork_server(["flows.backup"], engine=engine) == "Python 3.11.0's fork server is not safe to use"
    assert not hasattr(engine, "multiprocessing")
