"""Physical base backups of MariaDB (backup.base: physical): the server's files streamed by mariadb-backup, unpacked
and prepared in a container of the server's own image while it is stopped, its archived binlog replayed onto them; a
damaged base leaves the server initialised anew and empty, never half-restored."""

import re
from datetime import datetime

from incarnate.backup_format import chunk_key, find_snapshot
from tests.e2e.test_log_archive import add, archived_around_a_chosen_second, titles


def recover(customer, *args: str) -> str:
    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo), *args)
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    return recovered.stdout + recovered.stderr


def test_a_mariadb_stack_is_recovered_from_its_server_files_and_archived_binlog(customer):
    customer.write_stack_yaml(customer.stack_yaml() + "  base: physical\n", "physical bases")
    installed = customer.install()
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    add(customer, "before the backup")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    snapshot = find_snapshot(customer.backups(), customer.stack)
    base = snapshot.manifest.artifact("database-demo")
    assert (base.base, base.engine_version, base.rows) == ("physical", "10.11", None)
    assert base.log_start and base.log_start[0].startswith("mariadb-bin.")
    chosen, everything = archived_around_a_chosen_second(customer, "database-demo")

    said = recover(customer)
    assert titles(customer) == everything  # the base's recovery point would have lost two writes
    assert "replay logs ok" in said

    said = recover(customer, "--at", chosen.isoformat())
    assert titles(customer) == everything[:-1]
    point = re.search(r"replay logs ok \([\d.]+ s\): recovery point (\S+);", said)
    assert point and datetime.fromisoformat(point[1]) < chosen, said[-3000:]

    # A base damaged in its last chunk: part of it is unpacked before the damage is read; the server's files are
    # removed again and it starts empty, as its image initialises it, and the app is not started on it.
    chunk = customer.store / chunk_key(base.chunks[-1][0])
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    customer.remove_stack()
    failed = customer.incarnate("recover", str(customer.repo), "--snapshot", snapshot.id)
    assert failed.returncode == 1
    assert f"snapshot {snapshot.id}, artifact database-demo, chunk" in failed.stderr.strip().splitlines()[-1]
    assert "app" not in " ".join(customer.containers())
    assert titles_table_gone(customer)


def titles_table_gone(customer) -> bool:
    """The demo database holds no table: the server's files were removed and initialised anew."""
    import subprocess

    listed = subprocess.run(
        ["docker", "exec", f"{customer.stack}-db-1", "mariadb", "-N", "-e", "SHOW TABLES FROM demo"],
        capture_output=True,
        text=True,
        check=True,
    )
    return listed.stdout.strip() == ""
