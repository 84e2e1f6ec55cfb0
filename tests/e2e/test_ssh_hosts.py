"""Remote container hosts over SSH, against a real sshd whose sessions reach the second Docker
engine: `init` from a DevOps machine, disaster recovery onto the SSH host, and the faults an
operator meets (wrong key, changed or unknown host key, unreachable host, no sudo)."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from incarnate import settings
from incarnate.backup_format import list_snapshots
from incarnate.hostprep import with_managed_line
from tests.conftest import NO_SUDO_USER


def ssh_options(server, user: str = "root", key: Path | None = None, known_hosts: Path | None = None) -> list[str]:
    return [
        "--host",
        server.url(user),
        "--identity",
        str(key or server.client_key),
        "--known-hosts",
        str(known_hosts or server.known_hosts),
    ]


def remote_containers(engine: str, stack: str) -> list[str]:
    out = subprocess.run(
        [
            "docker",
            "-H",
            engine,
            "ps",
            "--all",
            "--filter",
            f"label=com.docker.compose.project={stack}",
            "--format",
            "{{.Names}}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(out.split())


def forget_dns_names(stack: str) -> None:
    hosts = Path("/etc/hosts")
    hosts.write_text(with_managed_line(hosts.read_text(), f"# incarnate:{stack}", None))


@pytest.fixture
def registry_file(tmp_path) -> dict[str, str]:
    """Keep `init`'s registration out of this machine's customers.yaml."""
    return {"INCARNATE_CUSTOMERS": str(tmp_path / "customers.yaml")}


def test_init_from_a_devops_machine_prepares_the_ssh_host_and_installs(
    customer, ssh_server, second_engine, samba_server, registry_file, tmp_path
):
    directory = tmp_path / "host-dir" / "uploads"
    name = f"{customer.stack}.incarnate.test"
    customer.write_stack_yaml(
        customer.stack_yaml() + f"host:\n  dns_names: [{name}]\n  directories: [{directory}]\n"
        f"  backup_share: {{kind: smb, server: 127.0.0.1, port: {samba_server.port}, share: {samba_server.share}}}\n",
        "host settings",
    )
    try:
        result = customer.incarnate("init", str(customer.repo), *ssh_options(ssh_server), env=registry_file)
        assert result.returncode == 0, result.stderr[-3000:]
        output = result.stdout + result.stderr
        host = ssh_server.url()
        for step in (
            "logged in as root",
            "Debian GNU/Linux 12",
            "Docker Engine 20.10",
            "Compose ",
            f"directories {directory}: created {directory}",
            f"DNS names {name} added to /etc/hosts",
            f"SMB server 127.0.0.1:{samba_server.port} (//127.0.0.1/{samba_server.share}) reachable",
        ):
            assert f"create host {host}: {step}" in output, step
        for stage in ("fetch backup", "restore", "start", "migrate", "backup"):
            assert f"install {customer.stack}: {stage} ok" in output, stage
        assert (
            f"stack {customer.stack} installed: release 1.0.0 at http://127.0.0.1:{customer.port} on {host}"
            in result.stdout
        )
        assert remote_containers(second_engine, customer.stack) == [f"{customer.stack}-app-1", f"{customer.stack}-db-1"]
        assert (
            subprocess.run(
                ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={customer.stack}"],
                capture_output=True,
                text=True,
            ).stdout
            == ""
        )  # nothing on this machine's engine
        assert directory.is_dir()
        assert f"127.0.0.1 {name} # incarnate:{customer.stack}" in Path("/etc/hosts").read_text()
        # The remote publishes on its own loopback; this test shares the machine, so it can look directly.
        assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"
        assert "host: " + host in Path(registry_file["INCARNATE_CUSTOMERS"]).read_text()

        customer.request("POST", "/records", b'{"title": "written on the ssh host"}')
        snapshots = len(list_snapshots(customer.backups(), customer.stack))
        # Another DevOps machine has no copy of the stack's files: the host's own copy tells what runs there.
        [workdir] = settings.stacks_dir().glob(f"@ssh-root-127.0.0.1-{ssh_server.port}/{customer.stack}")
        shutil.rmtree(workdir)
        again = customer.incarnate("init", str(customer.repo), *ssh_options(ssh_server), env=registry_file)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "healthy; nothing changed." in again.stdout + again.stderr
        assert f"DNS names {name} present in /etc/hosts" in again.stdout + again.stderr
        assert len(list_snapshots(customer.backups(), customer.stack)) == snapshots
        assert [record["title"] for record in customer.records()] == ["written on the ssh host"]

        status = customer.incarnate("status", str(customer.repo), *ssh_options(ssh_server))
        assert f"stack {customer.stack} on host {host}: demo 1.0.0" in status.stdout, status.stderr
    finally:
        customer.remove_from(second_engine)
        forget_dns_names(customer.stack)


def test_disaster_recovery_of_a_local_stack_onto_a_saved_ssh_host(customer, ssh_server, second_engine):
    from pydantic import SecretStr

    from blocks.hosts import SshHost

    assert customer.install().returncode == 0
    for title in ("first", "second"):
        customer.request("POST", "/records", json.dumps({"title": title}).encode())
    customer.request("PUT", "/files/keep.bin", os.urandom(300_000))
    records, payload = customer.records(), customer.request("GET", "/files/keep.bin")
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    newest = list_snapshots(customer.backups(), customer.stack)[-1]
    customer.remove_stack()  # the disaster: this host is gone

    block = f"test-{uuid.uuid4().hex[:8]}"
    SshHost(
        address="127.0.0.1",
        port=ssh_server.port,
        user="root",
        private_key=SecretStr(ssh_server.client_key.read_text()),
        host_key=ssh_server.host_key,
    ).save(block)
    try:
        result = customer.incarnate("recover", str(customer.repo), "--host", f"incarnate-ssh-host/{block}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert f"on {ssh_server.url()} (restored from {newest.id})" in result.stdout + result.stderr
        assert remote_containers(second_engine, customer.stack) == [f"{customer.stack}-app-1", f"{customer.stack}-db-1"]
        assert customer.records() == records
        assert customer.request("GET", "/files/keep.bin") == payload
        assert ssh_server.client_key.read_text().strip() not in result.stdout + result.stderr

        customer.request("POST", "/records", b'{"title": "after the recovery"}')
        nightly = customer.incarnate("backup", str(customer.repo), "--host", f"incarnate-ssh-host/{block}")
        assert nightly.returncode == 0, nightly.stderr[-3000:]
        newest = list_snapshots(customer.backups(), customer.stack)[-1]
        assert f"snapshot {newest.id}" in nightly.stdout + nightly.stderr and newest.manifest.origin == "backup"
        # The OpenSSH connections that carried the engine ended with the commands (none is left holding the host).
        processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert "incarnate-ssh-" not in processes
    finally:
        customer.remove_from(second_engine)


@pytest.mark.parametrize("fault", ["wrong key", "changed host key", "unknown host key", "unreachable host", "no sudo"])
def test_ssh_faults_give_one_sentence_and_change_nothing(
    fault, customer, ssh_server, second_engine, registry_file, tmp_path
):
    options = ssh_options(ssh_server)
    expected = {
        "wrong key": f"SSH login as root@127.0.0.1:{ssh_server.port} was refused for key SHA256:",
        "changed host key": f"host key of 127.0.0.1:{ssh_server.port} changed: it offers SHA256:",
        "unknown host key": f"host key of 127.0.0.1:{ssh_server.port} (SHA256:",
        "unreachable host": "cannot reach root@127.0.0.1:",
        "no sudo": f"user {NO_SUDO_USER} on host {ssh_server.url(NO_SUDO_USER)} is not root and has no password-less "
        f"sudo",
    }[fault]
    if fault == "wrong key":
        options = ssh_options(ssh_server, key=ssh_server.new_key("stranger"))
    elif fault in ("changed host key", "unknown host key"):
        pins = tmp_path / "known_hosts"
        other = " ".join(ssh_server.new_key("impostor").with_suffix(".pub").read_text().split()[:2])
        pins.write_text(f"[127.0.0.1]:{ssh_server.port} {other}\n" if fault == "changed host key" else "")
        options = ssh_options(ssh_server, known_hosts=pins)
    elif fault == "unreachable host":
        from tests.servers import free_port

        options[1] = f"ssh://root@127.0.0.1:{free_port()}"
    elif fault == "no sudo":
        options = ssh_options(ssh_server, user=NO_SUDO_USER)

    result = customer.incarnate("init", str(customer.repo), *options, env=registry_file)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: ") and expected in error, error
    assert error.endswith("Nothing was changed.") and "Traceback" not in result.stderr
    assert remote_containers(second_engine, customer.stack) == []
    assert list_snapshots(customer.backups(), customer.stack) == []
    assert not Path(registry_file["INCARNATE_CUSTOMERS"]).exists()
