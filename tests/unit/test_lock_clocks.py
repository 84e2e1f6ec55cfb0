"""Store locks between machines whose clocks disagree, or that share a machine-id (a cloned VM): whether a lock is
stale is decided by what the reader itself observes, never by another machine's clock or identity."""

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from incarnate.stores.local import LocalStore
from incarnate.stores.locking import StoreBusy, exclusive_lock

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import os, sys, time
offset, fake_pid = float(sys.argv[2]), int(sys.argv[3])
real_time = time.time
time.time = lambda: real_time() + offset  # this machine's clock is off by `offset` seconds
if fake_pid:
    os.getpid = lambda: fake_pid  # as a process of another host would be seen here: a pid nobody here has
from incarnate.stores.local import LocalStore
from incarnate.stores.locking import shared_lock
with shared_lock(LocalStore(sys.argv[1]), "backup of stack b elsewhere"):
    print("ready", flush=True)
    time.sleep(6)
"""


def a_dead_pid() -> int:
    pid = 4_000_000
    while Path(f"/proc/{pid}").exists():
        pid -= 1
    return pid


@pytest.fixture
def holder(tmp_path, monkeypatch):
    """Starts a process on 'another machine' (its own INCARNATE_HOME) that holds and renews a shared lock."""
    monkeypatch.setenv("INCARNATE_STORE_LOCK_TTL", "1")
    children = []
    (tmp_path / "store").mkdir()

    def start(offset: float, fake_pid: int = 0) -> None:
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(tmp_path / "store"), str(offset), str(fake_pid)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "INCARNATE_HOME": str(tmp_path / "elsewhere")},
        )
        children.append(child)
        assert child.stdout.readline().strip() == "ready"

    yield start
    for child in children:
        child.kill()
        child.wait()


@pytest.mark.parametrize("offset", [-660, 0, 3600], ids=["11 min slow", "same clock", "1 h fast"])
def test_a_live_lock_holds_whatever_its_owner_s_clock_says(tmp_path, holder, offset):
    holder(offset)
    time.sleep(1.5)  # longer than the lifetime: only renewals keep it
    with pytest.raises(StoreBusy, match="backup of stack b elsewhere"):
        with exclusive_lock(LocalStore(tmp_path / "store"), "prune of stack a", wait_seconds=2):
            pass


def test_a_live_lock_of_a_host_with_the_same_machine_id_holds(tmp_path, holder):
    """A cloned VM has this machine's machine-id; its process's pid means nothing here."""
    holder(0, fake_pid=a_dead_pid())
    with pytest.raises(StoreBusy, match="backup of stack b elsewhere"):
        with exclusive_lock(LocalStore(tmp_path / "store"), "prune of stack a", wait_seconds=2):
            pass


@pytest.mark.parametrize("offset", [0, 3600], ids=["same clock", "1 h fast"])
def test_a_dead_lock_expires_after_the_lifetime_whatever_its_owner_s_clock_said(tmp_path, monkeypatch, offset):
    """Its owner died elsewhere: after one lifetime with no renewal seen here, the lock holds nothing."""
    monkeypatch.setenv("INCARNATE_STORE_LOCK_TTL", "0.5")
    store, token = LocalStore(tmp_path), secrets.token_hex(8).encode()
    stamp = time.time() + offset
    store.put(
        f"locks/{token.decode()}-000003.json",
        b'{"token": "%s", "kind": "shared", "purpose": "a backup elsewhere", "host": "elsewhere", '
        b'"machine": "another-machine", "pid": 1, "acquired": %f, "renewed": %f}' % (token, stamp, stamp),
    )
    started = time.monotonic()
    with exclusive_lock(store, "prune", wait_seconds=5):
        waited = time.monotonic() - started
    assert 0.5 <= waited < 4
    assert store.list("locks") == []
