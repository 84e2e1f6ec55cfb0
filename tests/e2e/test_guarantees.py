"""The promises of the README's "Guarantees", each driven through the command against the real engine."""

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
from pathlib import Path

import pytest

from incarnate import settings
from incarnate.backup_format import list_snapshots
from incarnate.host import Host
from tests.e2e.conftest import INCARNATE, in_volume


def with_records(customer, count: int = 3) -> None:
    assert customer.install().returncode == 0
    for number in range(count):
        customer.request("POST", "/records", json.dumps({"title": f"record {number}"}).encode())


class Writer(threading.Thread):
    """Writes records as fast as the app takes them; remembers every write the app acknowledged."""

    def __init__(self, customer) -> None:
        super().__init__(daemon=True)
        self.customer, self.acknowledged, self.stop = customer, [], threading.Event()

    def run(self) -> None:
        number = 0
        while not self.stop.is_set():
            number += 1
            try:
                self.customer.request("POST", "/records", json.dumps({"title": f"write {number}"}).encode())
                self.acknowledged.append(f"write {number}")
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)  # stopped or restarting: this write was not acknowledged


def test_a_failed_update_keeps_every_write_acknowledged_before_it_stopped_the_app(customer):
    with_records(customer)
    customer.write_stack_yaml(customer.stack_yaml(release="1.2.0"), "update to the broken 1.2.0")
    writer = Writer(customer)
    writer.start()
    time.sleep(1)
    result = customer.incarnate("update", str(customer.repo))
    writer.stop.set()
    writer.join()
    assert result.returncode == 1 and "rolled back to release 1.0.0" in result.stderr
    assert len(writer.acknowledged) > 10
    kept = {record["title"] for record in customer.records()}
    lost = [title for title in writer.acknowledged if title not in kept]
    assert lost == [], f"{len(lost)} acknowledged writes lost by the rollback, first {lost[0]}"


def test_an_update_that_fails_before_changing_the_stack_leaves_it_running_untouched(customer, tmp_path):
    """The new release's files cannot be fetched: the running stack stays exactly as it was, running."""
    with_records(customer)
    releases = tmp_path / "releases"
    shutil.copytree(Path(settings.releases()), releases)
    (releases / "demo" / "1.1.0" / "compose.yaml").unlink()
    before = customer.containers()
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
    result = customer.incarnate("update", str(customer.repo), env={"INCARNATE_RELEASES": str(releases)})
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]  # load config reads the files (the compose policy) and says it first
    assert "demo 1.1.0 has no compose.yaml" in last and last.endswith("Nothing was changed."), last
    assert customer.containers() == before  # the same containers, never stopped or recreated
    states = subprocess.run(
        [
            "docker",
            "inspect",
            "--format",
            "{{.State.Running}} {{.RestartCount}} {{.State.StartedAt}}",
            *before.values(),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert all(line.startswith("true 0") for line in states if line)
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"
    assert len(customer.records()) == 3


def test_install_refuses_to_upgrade_a_running_stack_and_points_to_update(customer):
    with_records(customer)
    before = customer.containers()
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "pin 1.1.0")
    result = customer.install()
    assert result.returncode == 2
    assert "incarnate update" in result.stderr.strip().splitlines()[-1]
    assert customer.containers() == before
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"


def remove_containers(customer) -> None:
    """The containers of the stack go (a host's clean-up, `docker rm`); its volumes and its folder stay."""
    ids = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={customer.stack}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    subprocess.run(["docker", "rm", "--force", *ids], check=True, capture_output=True)


def test_install_onto_a_stack_whose_containers_are_gone_is_refused_and_update_takes_it_over(customer):
    """Its volumes and state remain: install would let release 1.1.0 migrate the data in place with no backup."""
    with_records(customer)
    remove_containers(customer)
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "pin 1.1.0")
    refused = customer.install()
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "incarnate update" in refused.stderr.strip().splitlines()[-1]
    assert customer.containers() == {}
    updated = customer.incarnate("update", str(customer.repo))
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert "pre-update backup" in updated.stdout + updated.stderr
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.1.0"
    assert len(customer.records()) == 3


def test_install_onto_data_no_deployment_recorded_is_refused_and_keeps_the_data(customer):
    """The stack's folder (its state) is gone, its volumes stay: whose data, of which release, nobody can say."""
    with_records(customer)
    remove_containers(customer)
    shutil.rmtree(settings.stacks_dir() / customer.stack)
    refused = customer.install()
    assert refused.returncode == 2, refused.stderr[-2000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert "holds data" in last and "--adopt-data" in last and "nothing was loaded" in last, last
    assert customer.database_tables() > 0  # untouched
    adopted = customer.install("--adopt-data")
    assert adopted.returncode == 0, adopted.stderr[-3000:]
    assert "kept existing data" in adopted.stdout + adopted.stderr
    assert len(customer.records()) == 3


def test_a_first_install_that_fails_after_its_restore_leaves_nothing_and_can_be_run_again(customer):
    """Recovery onto an empty host with a release whose migration fails halfway (1.2.0): what the failed install
    loaded and half-migrated goes (the backup it came from is intact), so the next install, of a release that works,
    restores the backup whole instead of keeping a half-migrated copy, or being refused for data nobody recorded."""
    with_records(customer)
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    customer.remove_stack()
    shutil.rmtree(settings.stacks_dir() / customer.stack)
    customer.write_stack_yaml(customer.stack_yaml(release="1.2.0"), "pin the broken 1.2.0")
    failed = customer.install()
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "removed what it had started" in failed.stderr.strip().splitlines()[-1]
    assert customer.containers() == {}
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "pin 1.1.0")
    again = customer.install()
    assert again.returncode == 0, again.stderr[-3000:]
    assert "restored from" in again.stdout + again.stderr
    assert len(customer.records()) == 3


def test_install_of_a_chosen_snapshot_onto_data_says_it_kept_the_data(customer):
    with_records(customer)
    customer.request("PUT", "/files/kept.txt", b"the files volume holds data too")
    backed_up = customer.incarnate("backup", str(customer.repo))
    assert backed_up.returncode == 0
    snapshot = re.search(r"snapshot (\S+) in ", backed_up.stdout + backed_up.stderr)[1]
    customer.request("POST", "/records", b'{"title": "after the backup"}')
    result = customer.install("--snapshot", snapshot)
    assert result.returncode == 0, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert f"kept existing data; snapshot {snapshot} not loaded" in output
    assert f"restored from {snapshot}" not in output
    assert len(customer.records()) == 4
    history = customer.incarnate("history", str(customer.repo)).stdout.splitlines()[-1]
    assert f"kept data (snapshot {snapshot} not loaded)" in history


def test_the_restore_drill_starts_from_scratch_and_compares_row_counts_with_the_backup(customer):
    with_records(customer)
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    stale = f"{customer.stack}-drill_files"  # what a killed drill left behind
    subprocess.run(
        [
            "docker",
            "volume",
            "create",
            "--label",
            f"com.docker.compose.project={customer.stack}-drill",
            "--label",
            "com.docker.compose.volume=files",
            stale,
        ],
        check=True,
        capture_output=True,
    )
    in_volume(stale, "echo stale > /data/left-over.txt")
    result = customer.incarnate("drill", str(customer.repo))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-2000:]
    assert f"removed the stale scratch stack {customer.stack}-drill" in output
    assert "volume-files: loaded" in output
    assert "rows as backed up: demo.records 3" in output


def test_the_restore_drill_fails_when_restored_rows_differ_from_what_the_backup_counted(customer):
    with_records(customer)
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    store = (
        customer.backups()
    )  # the manifest is sealed: it is rewritten with the store's key, as a forger with it could
    key = f"{list_snapshots(store, customer.stack)[-1].prefix}/manifest.json"
    manifest = json.loads(store.get(key))
    database = next(artifact for artifact in manifest["artifacts"] if artifact["kind"] == "database")
    assert database["rows"]["records"] == 3
    database["rows"]["records"] = 4  # as if a row had been lost between dump and restore
    store.delete(key)
    assert store.put(key, json.dumps(manifest).encode())
    result = customer.incarnate("drill", str(customer.repo))
    assert result.returncode == 1
    assert "demo.records: 3 restored, 4 backed up" in result.stderr.strip().splitlines()[-1]


def test_postgresql_reset_empties_every_schema_that_is_empty_counts(customer):
    from incarnate.compose import ComposeProject
    from incarnate.datasources.postgresql import PostgreSQL

    customer.use("pgdemo")
    assert customer.install().returncode == 0
    subprocess.run(
        [
            "docker",
            "exec",
            "--user",
            "postgres",
            f"{customer.stack}-db-1",
            "psql",
            "-d",
            "pgdemo",
            "-c",
            "CREATE SCHEMA extra; CREATE TABLE extra.t (x int); INSERT INTO extra.t VALUES (1);",
        ],
        check=True,
        capture_output=True,
    )
    database = PostgreSQL(
        ComposeProject(Host(), customer.stack, settings.stacks_dir() / customer.stack), "pgdemo", "db"
    )
    assert not database.is_empty()
    database.reset()
    assert database.is_empty()


def container_processes(customer) -> list[str]:
    """`PID ARGS` of each process in the database container, PIDs as this machine sees them."""
    top = subprocess.run(
        ["docker", "top", f"{customer.stack}-db-1", "-eo", "pid,args"], capture_output=True, text=True
    ).stdout
    return top.splitlines()[1:]


def mariadb_dumps(customer) -> list[str]:
    return [line for line in container_processes(customer) if "mariadb-dump" in line]


def test_a_hung_dump_fails_the_backup_and_a_killed_backup_leaves_no_orphan(customer):
    with_records(customer)
    # Another session holds a write lock on the table: the dump waits for it without a byte of progress.
    holder = subprocess.Popen(
        ["docker", "exec", "-i", f"{customer.stack}-db-1", "mariadb", "demo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    holder.stdin.write(b"LOCK TABLES records WRITE; SELECT SLEEP(600);\n")
    holder.stdin.flush()
    try:
        killed = subprocess.Popen(
            [INCARNATE, "backup", str(customer.repo)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60
        while not mariadb_dumps(customer):
            assert time.monotonic() < deadline, "the backup never started its dump"
            time.sleep(0.2)
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
        assert mariadb_dumps(customer)  # the orphan: still inside the database container

        hung = subprocess.run(
            [INCARNATE, "backup", str(customer.repo)],
            capture_output=True,
            text=True,
            timeout=240,
            env={**os.environ, "INCARNATE_STALL_SECONDS": "5"},
        )
        output = hung.stdout + hung.stderr
        assert "ended 1 orphaned mariadb-dump" in output
        assert hung.returncode == 1
        assert "made no progress for 5 s" in hung.stderr.strip().splitlines()[-1]
        assert mariadb_dumps(customer) == []  # its own hung dump was ended too
    finally:
        holder.kill()  # the client only: the session inside the container holds the lock until it is killed there
        holder.wait()
        for line in container_processes(customer):
            if line.split()[1:] == ["mariadb", "demo"]:
                os.kill(int(line.split()[0]), signal.SIGKILL)
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0  # the stack was released


def test_retention_keeps_the_backups_that_incarnations_roll_back_to(customer):
    customer.write_stack_yaml(
        customer.stack_yaml() + "  retention: {keep_daily: 1, keep_weekly: 0, keep_monthly: 0, min_age_days: 0}\n",
        "keep one snapshot a day",
    )
    assert customer.install().returncode == 0
    install_backup = (
        customer.incarnate("history", str(customer.repo)).stdout.splitlines()[-1].split("backup ")[1].split()[0]
    )
    for _ in range(2):
        assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    assert customer.incarnate("prune", str(customer.repo)).returncode == 0
    kept = customer.incarnate("backups", str(customer.repo)).stdout
    assert install_backup in kept
    customer.write_stack_yaml(
        customer.stack_yaml() + "  retention: {keep_daily: 1, keep_weekly: 0, keep_monthly: 0, "
        "min_age_days: 0, keep_incarnations: 0}\n",
        "keep no incarnation's backup",
    )
    assert customer.incarnate("prune", str(customer.repo)).returncode == 0
    assert install_backup not in customer.incarnate("backups", str(customer.repo)).stdout
    history = customer.incarnate("history", str(customer.repo)).stdout.splitlines()[1]
    assert f"backup {install_backup} (gone)" in history


@pytest.mark.parametrize("umask", [0o022])
def test_a_deployment_and_backup_under_umask_022_leave_nothing_readable_by_others(customer, umask):
    def run(*args):
        return subprocess.run(
            [INCARNATE, *args], capture_output=True, text=True, preexec_fn=lambda: os.umask(umask), timeout=900
        )

    assert run("install", str(customer.repo)).returncode == 0
    assert run("backup", str(customer.repo)).returncode == 0
    stack_dir = settings.stacks_dir() / customer.stack
    written = [*customer.store.rglob("*"), stack_dir, *stack_dir.rglob("*")]  # the store's own folder is the operator's
    readable = [str(path) for path in written if path.stat().st_mode & 0o077]
    assert readable == [], f"readable by others: {readable[:3]}"
