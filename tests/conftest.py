import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.servers import azurite, samba


@pytest.fixture(scope="session")
def samba_server(tmp_path_factory):
    with samba(tmp_path_factory.mktemp("samba")) as server:
        yield server


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    with azurite(tmp_path_factory.mktemp("azurite")) as server:
        yield server


SECOND_ENGINE = "unix:///run/docker-b.sock"


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
    probe = ["docker", "-H", SECOND_ENGINE, "info"]
    with machine_lock("second-engine"):
        start_second_engine(probe)
    return SECOND_ENGINE


def start_second_engine(probe: list[str]) -> None:
    import json
    import os
    import subprocess
    import time

    if subprocess.run(probe, capture_output=True).returncode != 0:
        os.makedirs("/var/log/incarnate", exist_ok=True)
        # A configuration file of its own: the machine's /etc/docker/daemon.json is the first engine's (it may set
        # the address pools the README suggests, which dockerd refuses to take from a file and a flag at once).
        # Its own address pool; iptables stays on, Compose's service names need its DNS rules.
        config = "/run/docker-b.json"
        with open(config, "w") as file:
            json.dump({"default-address-pools": [{"base": "10.231.0.0/16", "size": 24}]}, file)
        with open("/var/log/incarnate/dockerd-b.log", "ab") as log:
            subprocess.Popen(
                [
                    "dockerd",
                    "--config-file",
                    config,
                    "--data-root",
                    "/var/lib/docker-b",
                    "--exec-root",
                    "/run/docker-b",
                    "--pidfile",
                    "/run/docker-b.pid",
                    "-H",
                    SECOND_ENGINE,
                    "--bridge",
                    "none",
                ],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while subprocess.run(probe, capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, (
                "the second Docker engine did not start; see /var/log/incarnate/dockerd-b.log"
            )
            time.sleep(0.5)


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
        keys = Path(pwd.getpwnam(NO_SUDO_USER).pw_dir) / ".ssh" / "authorized_keys"
        keys.parent.mkdir(exist_ok=True)
        keys.write_text(server.client_key.with_suffix(".pub").read_text())
        shutil.chown(keys.parent, NO_SUDO_USER)
        shutil.chown(keys, NO_SUDO_USER)
        yield server
