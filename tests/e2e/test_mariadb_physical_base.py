"""Physical base backups of MariaDB (backup.base: physical) and snapshots of volumes between backups
(backup.volume_interval): the server's files streamed by mariadb-backup, unpacked and prepared in a container of
the server's own image while it is stopped, its archived binlog replayed onto them, the files from the newest
snapshot of the volumes at or before the recovery's time; a damaged base leaves the server initialised anew and
empty, never half-restored."""

import re
import subprocess
import time
from datetime import UTC, datetime

from incarnate.backup_format import find_snapshot
from tests.e2e.conftest import in_volume
from tests.e2e.test_log_archive import add, archive, titles
from tests.e2e.test_physical_base import recovery_of_a_damaged_base_fails


def recover(customer, *args: str) -> str:
    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo), *args)
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    return recovered.stdout + recovered.stderr


def files(customer) -> list[str]:
    return in_volume(f"{customer.stack}_files", "ls /data").split()


def written(customer, name: str, title: str) -> None:
    """A file and a record, as a user of the demo writes them."""
    customer.request("PUT", f"/files/{name}", name.encode())
    add(customer, title)


def test_a_mariadb_stack_is_recovered_from_its_server_files_archived_binlog_and_snapshots_of_volumes(customer):
    settings = "  base: physical\n  volume_interval: 1s\n"
    customer.write_stack_yaml(customer.stack_yaml() + settings, "physical bases, snapshots of volumes")
    installed = customer.install()
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    written(customer, "first.txt", "before the backup")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    snapshot = find_snapshot(customer.backups(), customer.stack)
    base = snapshot.manifest.artifact("database-demo")
    assert (base.base, base.engine_version, base.rows) == ("physical", "10.11", None)
    assert base.log_start and base.log_start[0].startswith("mariadb-bin.")

    time.sleep(1.1)  # the backup is the newest snapshot for 1 s
    written(customer, "second.txt", "after the backup")
    assert "snapshot of volumes " in archive(customer)  # the binlog shipped, and the volumes taken
    time.sleep(1.1)  # a binlog's clock has whole seconds: the chosen second lies between the two writes
    chosen = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    written(customer, "third.txt", "after the chosen second")
    assert "snapshot of volumes " in archive(customer)
    everything = titles(customer)
    assert "  snapshots of volumes: 2 " in customer.incarnate("backups", str(customer.repo)).stdout
    status = customer.incarnate("status", str(customer.repo)).stdout
    assert "  recovery  volumes: as the newest snapshot holds them (taken 20" in status and "one every 1s)" in status
    verified = customer.incarnate("verify", str(customer.repo), "--all")
    assert verified.returncode == 0 and "2 snapshots of volumes" in verified.stdout + verified.stderr

    said = recover(customer)
    assert titles(customer) == everything  # the base's recovery point would have lost two writes
    assert files(customer) == ["first.txt", "second.txt", "third.txt"]  # the backup's would have lost two files
    assert "replay logs ok" in said and "volume-files: as snapshot of volumes " in said

    said = recover(customer, "--at", chosen.isoformat())
    assert titles(customer) == everything[:-1]
    assert files(customer) == ["first.txt", "second.txt"]  # never a snapshot taken after the chosen second
    point = re.search(r"replay logs ok \([\d.]+ s\): recovery point (\S+);", said)
    assert point and datetime.fromisoformat(point[1]) < chosen, said[-3000:]

    recovery_of_a_damaged_base_fails(customer, snapshot, base)
    tables = subprocess.run(
        ["docker", "exec", f"{customer.stack}-db-1", "mariadb", "-N", "-e", "SHOW TABLES FROM demo"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert tables.stdout.strip() == ""
