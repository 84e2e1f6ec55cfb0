"""The store's own locks: what a killed, failed or long backup leaves for the next prune."""

import io
import os
import subprocess
import sys
import textwrap
import time

import pytest

from incarnate.backup_format import SnapshotWriter, new_snapshot_prefix
from incarnate.config import Retention
from incarnate.retention import prune
from incarnate.stores.local import LocalStore
from incarnate.stores.locking import StoreBusy, exclusive_lock, shared_lock

FORGET_ALL_BUT_NEWEST = Retention(keep_daily=0, keep_weekly=0, keep_monthly=0, min_age_days=0)


def snapshot_of(store, payload: bytes):
    writer = SnapshotWriter(store, new_snapshot_prefix("acme"))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(payload))
    return writer.commit(
        stack="acme", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
    )


def test_a_killed_backup_does_not_block_the_next_prune(tmp_path):
    """kill -9 in the middle of a backup: its chunks are stored, no manifest; the next prune must clean up at once."""
    store = LocalStore(tmp_path)
    snapshot_of(store, b"old " * 5000)
    snapshot_of(store, b"new " * 5000)
    script = textwrap.dedent(f"""
        import io, os, signal
        from incarnate.backup_format import SnapshotWriter
        from incarnate.stores.local import LocalStore
        writer = SnapshotWriter(LocalStore({str(tmp_path)!r}), "backups/acme/29990101T000000000000Z-killed")
        writer.add("volume-files", "volume", "files", None, io.BytesIO(b"half a backup " * 5000))
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    killed = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert killed.returncode == -9
    result = prune(store, "acme", FORGET_ALL_BUT_NEWEST, wait_seconds=5)
    assert result.chunks_deleted == 2, result.summary()  # the forgotten snapshot's chunk and the killed backup's
    assert store.list("locks") == [] and store.list("pending") == []


def test_a_failed_backup_releases_its_lock_at_once(tmp_path):
    store = LocalStore(tmp_path)
    snapshot_of(store, b"old " * 5000)
    snapshot_of(store, b"new " * 5000)

    class BrokenDump(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            raise OSError("the database container went away")

    with pytest.raises(OSError), SnapshotWriter(store, new_snapshot_prefix("acme")) as writer:
        writer.add("database-demo", "database", "demo", "mariadb", BrokenDump())
    assert store.list("locks") == []
    assert prune(store, "acme", FORGET_ALL_BUT_NEWEST, wait_seconds=0).chunks_deleted == 1


def test_a_backup_longer_than_the_lock_lifetime_stays_protected(tmp_path, monkeypatch):
    """The lock is renewed while its holder lives, so a long backup never looks abandoned."""
    monkeypatch.setenv("INCARNATE_STORE_LOCK_TTL", "0.5")
    store = LocalStore(tmp_path)
    with shared_lock(store, "a long backup"):
        time.sleep(1.5)  # three lifetimes
        with pytest.raises(StoreBusy, match="shared lock of a long backup"):
            with exclusive_lock(store, "prune of stack acme", wait_seconds=0.3):
                pass
    with exclusive_lock(store, "prune of stack acme", wait_seconds=0.3):
        pass


def test_a_lock_its_owner_stopped_renewing_expires(tmp_path, monkeypatch):
    """A holder on another machine that died (or lost the store) is not waited for longer than the lifetime."""
    monkeypatch.setenv("INCARNATE_STORE_LOCK_TTL", "0.5")
    store = LocalStore(tmp_path)
    store.put(
        "locks/0123456789abcdef-000000.json",
        b'{"token": "0123456789abcdef", "kind": "shared", "purpose": "a backup elsewhere", "host": "elsewhere", '
        b'"machine": "another-machine", "pid": 1, "acquired": %f, "renewed": %f}' % (time.time(), time.time()),
    )
    with pytest.raises(StoreBusy):
        with exclusive_lock(store, "prune", wait_seconds=0.1):
            pass
    time.sleep(0.6)
    with exclusive_lock(store, "prune", wait_seconds=0.1):
        pass
    assert store.list("locks") == []


def test_writers_wait_for_a_clean_up_that_announced_itself(tmp_path):
    store = LocalStore(tmp_path)
    with exclusive_lock(store, "prune of stack acme", wait_seconds=1):
        with pytest.raises(StoreBusy, match="exclusive lock of prune of stack acme"):
            with shared_lock(store, "backup of stack b", wait_seconds=0.3):
                pass
    with shared_lock(store, "backup of stack b", wait_seconds=0.3):
        pass


def test_a_lock_object_its_owner_could_not_delete_blocks_nothing(tmp_path):
    """SMB refuses to delete a file another client has open: the released lock stays behind, and must not hold."""
    from incarnate.errors import StoreError

    class StubbornStore(LocalStore):
        def delete(self, key):
            if key.startswith("locks/"):
                raise StoreError(f"store {self.location}: cannot delete {key} (sharing violation).")
            super().delete(key)

    store = StubbornStore(tmp_path)
    with shared_lock(store, "backup of stack b"):
        pass
    assert len(store.list("locks")) == 1  # still there
    with exclusive_lock(store, "prune of stack acme", wait_seconds=0.3):
        pass


FROZEN_BACKUP = """
import io, sys, time
from incarnate.backup_format import SnapshotWriter, new_snapshot_prefix
from incarnate.stores.local import LocalStore

writer = SnapshotWriter(LocalStore(sys.argv[1]), new_snapshot_prefix("b"))
writer.add("volume-files", "volume", "files", None, io.BytesIO(b"data" * 1000))
print("ready", flush=True)
time.sleep(4)  # frozen for part of it; its lock's renewals resume before it commits
writer.commit(stack="b", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup")
"""


def test_a_backup_frozen_past_its_lock_s_lifetime_never_commits(tmp_path):
    """Frozen (SIGSTOP, a VM pause) longer than INCARNATE_STORE_LOCK_TTL, a backup's lock looked stale to every other
    run, and a prune may have swept the chunks it reuses: renewing after it wakes must not make it whole again."""
    import signal

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen(
        [sys.executable, "-c", FROZEN_BACKUP, str(tmp_path)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "INCARNATE_STORE_LOCK_TTL": "1"},
    )
    assert child.stdout.readline().strip() == "ready"
    child.send_signal(signal.SIGSTOP)
    time.sleep(2.5)
    child.send_signal(signal.SIGCONT)
    _, errors = child.communicate(timeout=60)
    assert child.returncode != 0
    assert "without renewal" in errors and "was not made" in errors, errors[-2000:]
    assert not list(tmp_path.glob("backups/b/*/manifest.json"))


def test_a_backup_checks_its_chunks_again_when_a_sweep_ran_while_it_held_the_lock(tmp_path):
    """A sweep that did not see this backup's lock (a prune that took it for stale: a clock, a lapse) deleted the
    chunks it found present and reused: the manifest must not be written over them."""
    from datetime import UTC, datetime

    from incarnate.errors import StoreError
    from incarnate.retention import PruneResult, marked_sweep

    store = LocalStore(tmp_path)
    old = snapshot_of(store, b"shared " * 5000)
    writer = SnapshotWriter(store, new_snapshot_prefix("acme"))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(b"shared " * 5000))  # all reused
    store.delete(f"{old.prefix}/manifest.json")
    marked_sweep(store, set(), PruneResult(dry_run=False), datetime.now(UTC))
    with pytest.raises(StoreError, match="deleted by a clean-up"):
        writer.commit(
            stack="acme", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup"
        )
    writer.close()
    assert not list(tmp_path.glob("backups/acme/*/manifest.json"))


def test_a_backup_commits_when_a_sweep_ran_but_left_its_chunks(tmp_path):
    from datetime import UTC, datetime

    from incarnate.retention import PruneResult, marked_sweep

    store = LocalStore(tmp_path)
    snapshot_of(store, b"shared " * 5000)
    writer = SnapshotWriter(store, new_snapshot_prefix("acme"))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(b"shared " * 5000))
    marked_sweep(store, set(), PruneResult(dry_run=False), datetime.now(UTC))
    writer.commit(stack="acme", product="demo", release="1.0.0", schema_version=1, config_commit=None, origin="backup")
    assert len(list(tmp_path.glob("backups/acme/*/manifest.json"))) == 2


def test_a_lock_is_noted_as_this_machines_though_another_runs_note_vanishes_as_it_is_looked_at(tmp_path, monkeypatch):
    """Two runs on one machine: one deletes its note while the other, taking a lock, looks over the notes for old ones.
    The lock must still be noted (else a killed owner's lock blocks runs here for its whole lifetime)."""
    from pathlib import Path

    from incarnate.stores import locking

    monkeypatch.setenv("INCARNATE_HOME", str(tmp_path))
    listed = Path.glob
    monkeypatch.setattr(Path, "glob", lambda self, pattern: [self / "deleted-meanwhile", *listed(self, pattern)])
    locking._register("taken-now")
    assert (tmp_path / "run" / "store-locks" / "taken-now").is_file()
