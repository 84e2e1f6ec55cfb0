"""Faults during backup and restore: nothing visible is half-done, nothing is lost, errors name what and where."""

import io
import os
import signal
import subprocess
import tarfile
import time
import uuid

from blocks.stores import SmbShareStore
from incarnate.backup_format import SnapshotWriter, list_snapshots, new_snapshot_prefix, open_artifact, verify_snapshot
from tests.e2e.conftest import INCARNATE, in_volume
from tests.servers import free_port


def test_backup_killed_midway_leaves_no_snapshot_and_the_next_one_succeeds(customer):
    assert customer.install().returncode == 0
    customer.request("PUT", "/files/big.bin", os.urandom(96 << 20))
    store = customer.backups()
    before = [s.id for s in list_snapshots(store, customer.stack)]

    backup = subprocess.Popen(
        [INCARNATE, "backup", str(customer.repo)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while not store.list("locks"):  # the writer's shared lock: chunks are being stored from now on
        assert time.monotonic() < deadline and backup.poll() is None, "the backup never started writing"
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the volume archive: chunks written, manifest not yet
    backup.send_signal(signal.SIGKILL)
    backup.wait()

    assert [s.id for s in list_snapshots(store, customer.stack)] == before
    again = customer.incarnate("backup", str(customer.repo))
    assert again.returncode == 0, again.stderr[-2000:]
    newest = list_snapshots(store, customer.stack)[-1]
    assert newest.id not in before and verify_snapshot(store, newest) == []


def test_unreachable_store_fails_the_backup_after_retries_and_loses_nothing(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "must survive"}')
    running, records = customer.containers(), customer.records()
    local = customer.backups()
    snapshots = list_snapshots(local, customer.stack)
    port, name = free_port(), f"dead-{uuid.uuid4().hex[:8]}"  # nobody listens there
    SmbShareStore(server="127.0.0.1", share="backups", username="nobody", password="x", port=port).save(name)
    customer.use("demo", f"incarnate-smb-store/{name}")
    result = customer.incarnate("backup", str(customer.repo))
    assert result.returncode == 1
    assert "Retry 2/2" in result.stderr
    assert f"error: store smb://127.0.0.1:{port}/backups: cannot" in result.stderr
    assert customer.containers() == running and customer.records() == records
    assert list_snapshots(local, customer.stack) == snapshots


def test_a_dump_the_database_refuses_fails_the_backup_with_its_reason_and_stores_no_snapshot(customer):
    assert customer.install().returncode == 0
    store = customer.backups()
    snapshots = list_snapshots(store, customer.stack)
    subprocess.run(["docker", "exec", f"{customer.stack}-db-1", "mariadb", "-e", "DROP DATABASE demo"], check=True)
    result = customer.incarnate("backup", str(customer.repo))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: dumping database demo on host local failed (exit 2): mariadb-dump: "
        "Got error: 1049: \"Unknown database 'demo'\" when selecting the database."
    )
    assert list_snapshots(store, customer.stack) == snapshots


def malicious_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        good, evil = tarfile.TarInfo("./good.txt"), tarfile.TarInfo("./../escaped.txt")
        good.size = evil.size = 4
        archive.addfile(good, io.BytesIO(b"good"))
        archive.addfile(evil, io.BytesIO(b"evil"))
    return buffer.getvalue()


def test_restore_refuses_a_malicious_tar_and_leaves_the_volume_and_the_database_empty(customer):
    """The artifacts load at once; the first that fails stops the others, and every target is empty again: a second
    attempt, maybe from another snapshot, must not keep a database from this one."""
    assert customer.install().returncode == 0
    store = customer.backups()
    genuine = list_snapshots(store, customer.stack)[-1]
    writer = SnapshotWriter(store, new_snapshot_prefix(customer.stack))
    database = genuine.manifest.artifact("database-demo")
    writer.add(database.name, "database", database.target, database.engine, open_artifact(store, genuine, database))
    writer.add("volume-files", "volume", "files", None, io.BytesIO(malicious_tar()))
    fields = genuine.manifest.model_dump(
        include={"stack", "product", "release", "schema_version", "config_commit", "origin"}
    )
    planted = writer.commit(**fields)
    customer.remove_stack()

    result = customer.install()
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"error: snapshot {planted.id}, artifact volume-files: archive for volume {customer.stack}_files"
    )
    assert error.endswith("entry './../escaped.txt' climbs out with '..'; restore refused.")
    volume = f"{customer.stack}_files"
    assert in_volume(volume, "ls -A /data") == ""
    assert customer.database_tables() == 0
