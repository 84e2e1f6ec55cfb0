"""Every scenario runs the same stages: update, automatic rollback, disaster recovery onto
another engine, import, rollback to an earlier incarnation, the restore drill, one run per stack."""

import json
import os
import subprocess

from incarnate import settings
from incarnate.backup_format import list_snapshots
from tests.e2e.conftest import in_volume


def sql(customer, statement: str, engine: str | None = None) -> str:
    command = [
        "docker",
        *(["-H", engine] if engine else []),
        "exec",
        f"{customer.stack}-db-1",
        "mariadb",
        "demo",
        "-N",
        "-e",
        statement,
    ]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def content_checksums(customer, engine: str | None = None) -> dict[str, str]:
    """A checksum of every table's content and of every file in the files volume."""
    tables = sql(
        customer, "SELECT table_name FROM information_schema.tables WHERE table_schema='demo' ORDER BY 1", engine
    ).split()
    sums = {
        f"table {table}": sql(customer, f"CHECKSUM TABLE `{table}` EXTENDED", engine).split()[-1] for table in tables
    }
    files = in_volume(f"{customer.stack}_files", "cd /data && find . -type f -exec sha256sum {} + | sort", engine)
    sums.update({f"file {name}": digest for digest, name in (line.split() for line in files.splitlines())})
    return sums


def with_data(customer) -> bytes:
    assert customer.install().returncode == 0
    for title in ("First Record", "Second  record", "Third"):
        customer.request("POST", "/records", json.dumps({"title": title}).encode())
    payload = os.urandom(1 << 20)
    customer.request("PUT", "/files/keep.bin", payload)
    return payload


def test_update_to_1_1_0_keeps_every_record_and_file_and_migrates_them(customer):
    payload = with_data(customer)
    before = customer.records()
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
    result = customer.incarnate("update", str(customer.repo))
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(customer.request("GET", "/health")) == {"status": "ok", "release": "1.1.0", "schema_version": 2}
    after = customer.records()
    assert [(r["id"], r["title"], r["created_at"]) for r in after] == [
        (r["id"], r["title"], r["created_at"]) for r in before
    ]
    assert [r["slug"] for r in after] == ["first-record", "second--record", "third"]
    assert customer.request("GET", "/files/keep.bin") == payload


def test_update_to_a_broken_release_rolls_back_to_identical_data(customer):
    with_data(customer)
    before = content_checksums(customer)
    customer.write_stack_yaml(customer.stack_yaml(release="1.2.0"), "update to the broken 1.2.0")
    result = customer.incarnate("update", str(customer.repo))
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert f"error: update of stack {customer.stack} to release 1.2.0 failed (" in error
    assert "rolled back to release 1.0.0 with the data of pre-update backup" in error
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"
    assert content_checksums(customer) == before
    history = customer.incarnate("history", str(customer.repo)).stdout
    assert "update            rolled back release 1.2.0" in history


def test_disaster_recovery_onto_another_engine_from_the_newest_backup(customer, second_engine):
    payload = with_data(customer)
    records = customer.records()
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    newest = list_snapshots(customer.backups(), customer.stack)[-1]
    customer.remove_stack()  # the disaster: the first host is gone
    try:
        result = customer.incarnate("recover", str(customer.repo), "--docker-host", second_engine)
        assert result.returncode == 0, result.stderr[-3000:]
        output = result.stdout + result.stderr
        assert f" on {second_engine} (restored from {newest.id}); seconds per stage: load config" in output
        for stage in ("create host", "fetch backup", "restore", "start", "migrate", "backup"):
            assert f"{stage} " in output.split("seconds per stage:")[1]
        assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"
        assert customer.records() == records
        assert customer.request("GET", "/files/keep.bin") == payload
        running = subprocess.run(
            [
                "docker",
                "-H",
                second_engine,
                "ps",
                "--filter",
                f"label=com.docker.compose.project={customer.stack}",
                "--format",
                "{{.Names}}",
            ],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert sorted(running) == [f"{customer.stack}-app-1", f"{customer.stack}-db-1"]
    finally:
        customer.remove_from(second_engine)


def test_import_of_an_old_installation_becomes_the_first_snapshot_and_installs(customer, tmp_path):
    dump = tmp_path / "old.sql"
    dump.write_text(
        "CREATE DATABASE IF NOT EXISTS `demo`;\nUSE `demo`;\n"
        "CREATE TABLE schema_version (version INT NOT NULL PRIMARY KEY);\nINSERT INTO schema_version VALUES (1);\n"
        "CREATE TABLE records (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL, "
        "created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n"
        "INSERT INTO records VALUES (7, 'from the old system', '2019-05-01 10:00:00');\n"
    )
    files = tmp_path / "files"
    files.mkdir()
    (files / "legacy.txt").write_bytes(b"old file\n")
    result = customer.incarnate("import", str(customer.repo), "--dump", f"demo={dump}", "--volume", f"files={files}")
    assert result.returncode == 0, result.stderr[-3000:]
    snapshots = list_snapshots(customer.backups(), customer.stack)
    assert snapshots[0].manifest.origin == "import"
    assert customer.records() == [{"id": 7, "title": "from the old system", "created_at": "2019-05-01 10:00:00"}]
    assert customer.request("GET", "/files/legacy.txt") == b"old file\n"
    again = customer.incarnate("import", str(customer.repo), "--dump", f"demo={dump}")
    assert again.returncode == 2 and "already has snapshots" in again.stderr


def test_rollback_to_an_earlier_incarnation_and_downgrade_refused(customer):
    assert customer.install().returncode == 0
    first = customer.incarnate("history", str(customer.repo)).stdout.splitlines()[1].split()[0]
    customer.request("POST", "/records", b'{"title": "written on 1.0.0"}')
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
    assert customer.incarnate("update", str(customer.repo)).returncode == 0

    customer.write_stack_yaml(customer.stack_yaml(release="1.0.0"), "back to 1.0.0 by hand")
    refused = customer.incarnate("update", str(customer.repo))
    assert refused.returncode == 2
    assert "has schema version 2, newer than release 1.0.0 understands (1)" in refused.stderr

    result = customer.incarnate("rollback", str(customer.repo), first)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(customer.request("GET", "/health")) == {"status": "ok", "release": "1.0.0", "schema_version": 1}
    assert customer.records() == []  # the data of that incarnation: right after its install
    history = customer.incarnate("history", str(customer.repo)).stdout
    assert [line.split()[1] for line in history.splitlines()[1:]] == ["install", "update", "rollback"]


def test_restore_drill_restores_checks_and_removes_a_scratch_stack(customer):
    with_data(customer)
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    result = customer.incarnate("drill", str(customer.repo))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (
        "restored and healthy (release 1.0.0, schema 1); rows: demo.records 3, demo.schema_version 1"
        in result.stdout + result.stderr
    )
    leftovers = subprocess.run(
        ["docker", "ps", "-a", "--filter", f"label=com.docker.compose.project={customer.stack}-drill", "-q"],
        capture_output=True,
        text=True,
    ).stdout
    assert leftovers == "" and not (settings.stacks_dir() / f"{customer.stack}-drill").exists()


def test_a_second_run_on_the_same_stack_waits_and_fails_clearly(customer):
    from flows.stack_lock import stack_lock

    assert customer.install().returncode == 0
    running = customer.containers()
    with stack_lock(customer.stack):  # held here exactly as a running flow holds it
        second = customer.incarnate("install", str(customer.repo), env={"INCARNATE_LOCK_WAIT_SECONDS": "2"})
    assert second.returncode == 1
    assert (
        f"stack {customer.stack} is busy: another run holds concurrency limit stack-{customer.stack}" in second.stderr
    )
    assert customer.containers() == running
    assert customer.install().returncode == 0  # released: the next run goes through
