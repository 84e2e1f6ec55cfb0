"""Physical base backups (backup.base: physical): a PostgreSQL stack backed up as its server's files with
pg_basebackup, recovered by putting them back while the server is stopped; a damaged base leaves the server
initialised anew and empty, never half-restored."""

import json
import subprocess

from incarnate.backup_format import chunk_key, find_snapshot


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


def test_a_postgresql_stack_backed_up_as_its_server_files_is_recovered_from_them(customer):
    customer.use("pgdemo")
    customer.write_stack_yaml(customer.stack_yaml() + "  base: physical\n", "physical bases")
    installed = customer.install()
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    for number in range(3):
        customer.request("POST", "/records", json.dumps({"title": f"record {number}"}).encode())
    records = customer.records()
    backed_up = customer.incarnate("backup", str(customer.repo))
    assert backed_up.returncode == 0, backed_up.stderr[-3000:]
    snapshot = find_snapshot(customer.backups(), customer.stack)
    base = snapshot.manifest.artifact("database-pgdemo")
    assert (base.base, base.engine_version, base.rows) == ("physical", "15", None)
    assert base.log_start and len(base.log_start[0]) == 24  # the WAL file its backup_label names

    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    assert "database-pgdemo: loaded" in recovered.stdout + recovered.stderr
    assert customer.records() == records

    # A base damaged in its last chunk: part of it is extracted before the damage is read; the server's files are
    # removed again and it starts empty, as its image initialises it.
    chunk = customer.store / chunk_key(base.chunks[-1][0])
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x55
    chunk.write_bytes(bytes(data))
    customer.remove_stack()
    failed = customer.incarnate("recover", str(customer.repo))
    assert failed.returncode == 1
    assert f"snapshot {snapshot.id}, artifact database-pgdemo, chunk" in failed.stderr.strip().splitlines()[-1]
    assert user_tables(customer) == 0
    assert "app" not in " ".join(customer.containers())
