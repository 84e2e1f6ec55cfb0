"""What stack.yaml chooses of a release: which optional services run (Compose profiles) and which size (limits and
environment per service), each changed by an update that keeps the data."""

import json
import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import INCARNATE

SUITE = Path(__file__).resolve().parent / "products" / "suite" / "1.1.0"


def stack_yaml(customer, services: list[str], size: str) -> str:
    return customer.stack_yaml(release="1.1.0") + f"services: [{', '.join(services)}]\nsize: {size}\n"


def running_services(customer) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "ps",
            "--filter",
            f"label=com.docker.compose.project={customer.stack}",
            "--format",
            '{{.Label "com.docker.compose.service"}}',
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


def container_of(customer, service: str) -> dict:
    name = f"{customer.stack}-{service}-1"
    return json.loads(subprocess.run(["docker", "inspect", name], capture_output=True, text=True, check=True).stdout)[0]


def archive_sql(customer, statement: str) -> str:
    return subprocess.run(
        [
            "docker",
            "exec",
            f"{customer.stack}-archive-1",
            "mariadb",
            "--batch",
            "--skip-column-names",
            "archive",
            "-e",
            statement,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_optional_services_and_sizes_follow_stack_yaml_through_updates_and_recovery(customer, tmp_path):
    releases = str(tmp_path / "releases")
    env = {"INCARNATE_RELEASES": releases}
    published = subprocess.run(
        [INCARNATE, "release", "publish", str(SUITE)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=900,
    )
    assert published.returncode == 0, published.stderr[-3000:]
    customer.product = "suite"

    customer.write_stack_yaml(stack_yaml(customer, ["archive"], "S"), "suite with the archive, size S")
    installed = customer.install(env=env)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert running_services(customer) == ["app", "archive", "db"]
    app = container_of(customer, "app")
    assert (app["HostConfig"]["NanoCpus"], app["HostConfig"]["Memory"]) == (500_000_000, 256 << 20)
    assert "WORKERS=1" in app["Config"]["Env"]
    archive_sql(customer, "CREATE TABLE kept (note TEXT); INSERT INTO kept VALUES ('archived record')")
    customer.request("POST", "/records", b'{"title": "core record"}')
    status = customer.incarnate("status", str(customer.repo), env=env).stdout
    assert "suite 1.1.0 (schema 2), size S, activated archive" in status

    # The optional service's database is in the backup, and comes back in a recovery.
    assert customer.incarnate("backup", str(customer.repo), env=env).returncode == 0
    customer.remove_stack()
    recovered = customer.incarnate("recover", str(customer.repo), env=env)
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert archive_sql(customer, "SELECT note FROM kept") == "archived record"

    # Activate the other one and grow to M: an update of the same release, data kept.
    customer.write_stack_yaml(stack_yaml(customer, ["archive", "wiki"], "M"), "add the wiki, size M")
    updated = customer.incarnate("update", str(customer.repo), env=env)
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert running_services(customer) == ["app", "archive", "db", "wiki"]
    app = container_of(customer, "app")
    assert (app["HostConfig"]["NanoCpus"], app["HostConfig"]["Memory"]) == (1_000_000_000, 512 << 20)
    assert "WORKERS=2" in app["Config"]["Env"] and container_of(customer, "db")["HostConfig"]["Memory"] == 1 << 30
    assert archive_sql(customer, "SELECT note FROM kept") == "archived record"
    assert [record["title"] for record in customer.records()] == ["core record"]

    # Deactivate the archive: its container goes, its volume stays, and the update says so.
    customer.write_stack_yaml(stack_yaml(customer, ["wiki"], "M"), "drop the archive")
    updated = customer.incarnate("update", str(customer.repo), env=env)
    assert updated.returncode == 0, updated.stderr[-3000:]
    assert "archive no longer activated: container removed, volumes kept" in updated.stdout + updated.stderr
    assert running_services(customer) == ["app", "db", "wiki"]
    volumes = subprocess.run(
        ["docker", "volume", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={customer.stack}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert f"{customer.stack}_archive-db" in volumes
    assert [record["title"] for record in customer.records()] == ["core record"]

    for services, size, expected in (
        (
            ["search"],
            "M",
            "service search is not an optional service of suite 1.1.0 (its optional services: archive, wiki).",
        ),
        (["wiki"], "XL", "size XL is not defined by suite 1.1.0 (its sizes: S, M)."),
    ):
        customer.write_stack_yaml(stack_yaml(customer, services, size), "a mistake")
        refused = customer.incarnate("update", str(customer.repo), env=env)
        assert refused.returncode == 2 and expected in refused.stderr, refused.stderr[-2000:]
    assert running_services(customer) == ["app", "db", "wiki"]
