"""Install from the vanilla backup, back up, lose everything, install again: the data comes back."""

import os
import re

from incarnate.backup_format import list_snapshots


def test_install_backup_disaster_and_reinstall_brings_back_records_and_files(customer):
    first = customer.install()
    assert first.returncode == 0, first.stderr + first.stdout
    assert f"runs release 1.0.0 at {customer.url}" in first.stdout + first.stderr
    assert "closing backup not needed: the stack runs the data of " in first.stdout + first.stderr  # the vanilla copy's
    assert customer.request("GET", "/health") == b'{"status": "ok", "release": "1.0.0", "schema_version": 1}'

    for title in ("First record", "Zweiter Eintrag ü"):
        customer.request("POST", "/records", f'{{"title": "{title}"}}'.encode())
    payload = os.urandom(3 * 1024 * 1024) + b"\x00end"
    customer.request("PUT", "/files/upload.bin", payload)
    records = customer.records()

    backup = customer.incarnate("backup", str(customer.repo))
    assert backup.returncode == 0, backup.stderr
    snapshots = list_snapshots(customer.backups(), customer.stack)
    assert [s.manifest.origin for s in snapshots] == ["vanilla", "backup"]

    customer.remove_stack()
    assert customer.containers() == {}

    second = customer.install()
    assert second.returncode == 0, second.stderr + second.stdout
    assert f"restored from {snapshots[-1].id}" in second.stdout + second.stderr
    assert (
        f"closing backup not needed: the stack runs the data of {snapshots[-1].id} unchanged"
        in second.stdout + second.stderr
    )
    assert len(list_snapshots(customer.backups(), customer.stack)) == 2  # the recovery re-read nothing it restored
    assert customer.records() == records
    assert customer.request("GET", "/files/upload.bin") == payload


def test_status_and_backups_report_what_runs_and_where_it_came_from(customer):
    assert customer.install().returncode == 0
    status = customer.incarnate("status", str(customer.repo))
    assert status.returncode == 0, status.stderr
    source = list_snapshots(customer.backups(), customer.stack)[0]
    assert f"stack {customer.stack} on host local: demo 1.0.0 (schema 1)" in status.stdout
    assert f"from snapshot {source.id}" in status.stdout
    # Docker's own word: its first check runs one interval (30 s) after the start; incarnate ran the checks itself.
    assert re.search(r"db        running (healthy|starting)", status.stdout)
    listing = customer.incarnate("backups", str(customer.repo))
    assert listing.returncode == 0
    assert f"stack {customer.stack}: 1 snapshot in " in listing.stdout  # the install recorded it as its backup
    assert "vanilla  release 1.0.0" in listing.stdout


def test_reinstall_of_a_running_stack_keeps_its_data(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "kept"}')
    before = customer.records()
    again = customer.install()
    assert again.returncode == 0, again.stderr
    assert customer.records() == before and before[-1]["title"] == "kept"


def test_init_on_the_host_itself_installs_then_changes_nothing(customer, tmp_path):
    registry = {"INCARNATE_CUSTOMERS": str(tmp_path / "customers.yaml")}
    first = customer.incarnate("init", str(customer.repo), env=registry)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "create host local: Docker Engine" in first.stdout + first.stderr
    assert f"stack {customer.stack} installed: release 1.0.0 at {customer.url}" in first.stdout
    containers = customer.containers()
    again = customer.incarnate("init", str(customer.repo), env=registry)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"stack {customer.stack} unchanged: release 1.0.0 at {customer.url}" in again.stdout
    assert customer.containers() == containers
    assert len(list_snapshots(customer.backups(), customer.stack)) == 1  # vanilla, the install's backup too

    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "pin 1.1.0")
    changed = customer.incarnate("init", str(customer.repo), env=registry)
    assert (
        changed.returncode == 2
        and "runs release 1.0.0" in changed.stderr
        and "run `incarnate update`" in changed.stderr
    )
    assert customer.containers() == containers
