"""Physical base backups and archived WAL (backup.base: physical): a PostgreSQL stack backed up as its server's files
with pg_basebackup, its WAL archived as it grows, recovered to its newest write or a chosen second by its own server
replaying the archive; a damaged base leaves the server initialised anew and empty, never half-restored."""

import os
import re
import subprocess
import time
from datetime import datetime

import pytest

from incarnate import settings
from incarnate.backup_format import chunk_key, find_snapshot
from incarnate.host import Host
from incarnate.log_archive import histories
from tests.e2e.conftest import COMPOSE
from tests.e2e.test_log_archive import add, archive, archived_around_a_chosen_second, titles


def user_tables(customer) -> int:
    """Tables outside the system schemas of the pgdemo database, as its running server says."""
    query = "SELECT count(*) FROM pg_tables WHERE schemaname <> ALL ('{pg_catalog,information_schema}')"
    return int(
        subprocess.run(
            ["docker", "exec", "--user", "postgres", f"{customer.stack}-db-1", "psql", "-d", "pgdemo", "-tAc", query],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def recover(customer, *args: str) -> str:
    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo), *args)
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    return recovered.stdout + recovered.stderr


def test_a_postgresql_stack_is_recovered_from_its_server_files_and_archived_wal(customer):
    customer.use("pgdemo")  # backup.base: auto, the default: physical for PostgreSQL
    installed = customer.install()
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    add(customer, "before the backup")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    snapshot = find_snapshot(customer.backups(), customer.stack)
    base = snapshot.manifest.artifact("database-pgdemo")
    assert (base.base, base.engine_version, base.rows) == ("physical", "15", None)
    assert base.log_start and base.log_start[0].startswith("00000002")  # the install began timeline 2 (history 1)
    chosen, everything = archived_around_a_chosen_second(customer, "database-pgdemo")

    said = recover(customer)
    assert titles(customer) == everything  # the last backup's recovery point would have lost two writes
    assert "database-pgdemo: replayed archived WAL to the transaction of 20" in said
    archive(customer)
    status = customer.incarnate("status", str(customer.repo))
    # PostgreSQL writes WAL of its own too (a standby snapshot every 15 s): how much is not archived yet may be a few
    # bytes, but a write made before this round is archived.
    assert re.search(r"  recovery  database-pgdemo: .*\(newest archived write 20", status.stdout), status.stdout

    said = recover(customer, "--at", chosen.isoformat())
    assert titles(customer) == everything[:-1]
    point = re.search(r"replay logs ok \([\d.]+ s\): recovery point (\S+);", said)
    assert point and datetime.fromisoformat(point[1]) < chosen, said[-3000:]

    # The timeline that recovery began is the live one: a later write is recovered from it (the server replays the
    # base's timeline up to where the history left it, then the new one), never from the abandoned branch.
    add(customer, "in the new history")
    archive(customer)
    recover(customer)
    assert titles(customer) == [*everything[:-1], "in the new history"]
    assert len(histories(customer.backups(), customer.stack)) == 4  # the install's and the three recoveries'

    recovery_of_a_damaged_base_fails(customer, snapshot, base)
    assert user_tables(customer) == 0


def recovery_of_a_damaged_base_fails(customer, snapshot, base) -> None:
    """A base damaged in its last chunk: part of it is put into the server's files before the damage is read; the
    recovery fails naming the chunk, the files are removed again (the server starts empty, as its image initialises
    it: the caller counts its tables) and the app is not started on it."""
    chunk = customer.store / chunk_key(base.chunks[-1][0])
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    customer.remove_stack()
    failed = customer.incarnate("recover", str(customer.repo), "--snapshot", snapshot.id)
    assert failed.returncode == 1
    assert f"snapshot {snapshot.id}, artifact {base.name}, chunk" in failed.stderr.strip().splitlines()[-1]
    assert "app" not in " ".join(customer.containers())


def test_physical_bases_asked_of_a_server_whose_data_directory_is_not_a_volume_root_are_refused(tmp_path):
    """`backup.base: physical` is refused at the backup, naming the setting, rather than taking a base that no
    restore could put back (`auto` dumps such a server instead)."""
    from incarnate.compose import ComposeProject
    from incarnate.datasources.database import NoDataVolume
    from incarnate.datasources.postgresql import PostgreSQL

    name = f"nodatavolume{os.getpid()}"
    (tmp_path / "compose.yaml").write_text(
        f"services:\n  db:\n    image: {settings.registry()}/pgdemo/db:1.0.0\n"
        "    environment: {POSTGRES_DB: pgdemo, POSTGRES_USER: pgdemo, POSTGRES_PASSWORD: unused}\n"
        "    volumes: ['./data:/var/lib/postgresql/data']\n"  # a directory of the host's, as some products do
    )
    compose = [COMPOSE, "-p", name, "--project-directory", str(tmp_path)]
    subprocess.run([*compose, "up", "--detach"], check=True, capture_output=True)
    try:
        ready = ["docker", "exec", "--user", "postgres", f"{name}-db-1", "pg_isready", "--quiet"]
        for _ in range(120):  # sooner than its health check says so
            if subprocess.run(ready, capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        project = ComposeProject(Host(), name, tmp_path)
        assert not PostgreSQL(project, "pgdemo", "db", base="auto").physical
        with pytest.raises(
            NoDataVolume, match=r"not the root of a volume .* nothing was changed.* backup\.base: logical"
        ):
            PostgreSQL(project, "pgdemo", "db", base="physical").dump_command()
    finally:
        subprocess.run([*compose, "down", "--volumes"], capture_output=True)
