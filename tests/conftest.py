import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import azurite, samba, start_engine


@pytest.fixture(scope="session")
def samba_server(tmp_path_factory):
    with samba(tmp_path_factory.mktemp("samba")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


# Tests that share something server- or machine-wide, by node id prefix: each group runs in one test process, its
# tests in turn, while the other tests are spread over the processes (scripts/test.sh runs three). A table, not
# pytest-xdist's xdist_group mark: with pytest 9 that mark changes nothing (xdist 3.8 renames node ids the old way).
GROUPS = {
    # `incarnate serve` and workers replace the server's incarnate automations, which the alert test watches; one
    # test stops the server for 5 s
    "prefect-server": (
        "tests/e2e/test_alerts.py::",
        "tests/e2e/test_deployments.py::",
        "tests/e2e/test_fleet.py::",
        "tests/e2e/test_ui.py::",
        "tests/e2e/test_work_pool.py::",
        "tests/e2e/test_bench_smoke.py::test_benchmark_runs_at_a_small_size[nightly_scale.py",
        "tests/e2e/test_bench_smoke.py::test_benchmark_runs_at_a_small_size[fleet_scale.py",
        "tests/e2e/test_prefect_server.py::test_a_command_waits_for_a_slow_server",
    ),
    # docker login and logout rewrite root's one docker configuration; and its registry is set up once
    "docker-login": ("tests/e2e/test_private_registry.py::",),
    # an SSH test checks that no incarnate SSH master is left on the machine: no other test's may run meanwhile
    "ssh": (
        "tests/e2e/test_ssh_hosts.py::",
        "tests/e2e/test_bench_smoke.py::test_benchmark_runs_at_a_small_size[ssh_transport.py",
    ),
}


def group_of(nodeid: str) -> str | None:
    return next((name for name, prefixes in GROUPS.items() if nodeid.startswith(prefixes)), None)


@pytest.hookimpl(tryfirst=True)  # before -k and -m deselect anything
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A group that names a test no longer there would let it run beside what it must not: refuse to start."""
    ids = [item.nodeid for item in items]
    files = {nodeid.split("::")[0] for nodeid in ids}
    stale = [
        prefix
        for prefixes in GROUPS.values()
        for prefix in prefixes
        if prefix.split("::")[0] in files and not any(nodeid.startswith(prefix) for nodeid in ids)
    ]
    if stale:
        raise pytest.UsageError(f"tests/conftest.py GROUPS names tests that do not exist: {', '.join(stale)}")


def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist's load scheduling, but a group's tests go to one process together."""
    from xdist.scheduler import LoadScopeScheduling

    class Grouped(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid) or nodeid

    return Grouped(config, log)


@contextmanager
def machine_lock(name: str) -> Iterator[None]:
    """One test process at a time (pytest-xdist runs several) in set-up that the whole machine shares."""
    with open(f"/run/incarnate-test-{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def second_engine():
    """A second, independent Docker engine on this machine: the "other host" of a move or a recovery.
    Started once and left running, so its pulled images serve the next run too. Starting it with
    `--bridge none` removes the first engine's docker0: containers of the first engine then need
    a Compose network or `--network none` (incarnate's helpers use the latter)."""
    with machine_lock("second-engine"):
        return start_engine("docker-b", "10.231.0.0/16")


NO_SUDO_USER = "incarnate-nosudo"


@pytest.fixture(scope="session")
def ssh_server(tmp_path_factory, second_engine):
    """sshd on 127.0.0.1: its sessions' docker reaches the second engine, so it is a remote host. Its users:
    root, and NO_SUDO_USER (no sudo; created here once, password field `*` so that key login is allowed)."""
    import pwd
    import shutil
    import subprocess
    from pathlib import Path

    from tests.servers import sshd

    with machine_lock("users"):
        try:
            pwd.getpwnam(NO_SUDO_USER)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", NO_SUDO_USER], check=True)
            subprocess.run(["usermod", "-p", "*", NO_SUDO_USER], check=True)
    with sshd(tmp_path_factory.mktemp("sshd"), second_engine) as server:
        # sshd reads a user's keys as that user: the suite's folder is private to root, so a copy in its home
        # Each test process has an sshd and a key of its own: its line is added beside the others, and taken out after.
        keys = Path(pwd.getpwnam(NO_SUDO_USER).pw_dir) / ".ssh" / "authorized_keys"
        line = server.client_key.with_suffix(".pub").read_text().strip() + "\n"
        with machine_lock("users"):
            keys.parent.mkdir(exist_ok=True)
            keys.write_text((keys.read_text() if keys.exists() else "") + line)
            shutil.chown(keys.parent, NO_SUDO_USER)
            shutil.chown(keys, NO_SUDO_USER)
        try:
            yield server
        finally:
            with machine_lock("users"):
                keys.write_text(keys.read_text().replace(line, ""))
