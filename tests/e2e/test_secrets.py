"""Stack secrets (generated once, kept in a Prefect Secret block, only ever in the stack's 0600 env file) and the
Prefect API's password that protects them."""

import base64
import json
import os
import shutil
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from blocks.secrets import PrefectSecretVault
from incarnate import settings


def stack_secret(stack: str) -> str:
    return Secret.load(f"incarnate-stack-{stack}").get()["db_password"]


class ProcessWatcher(threading.Thread):
    """Every process's command line on this machine, sampled while runs go on."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.seen.update(subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines())
            time.sleep(0.1)


def everything_written_about(customer, since) -> dict[str, str]:
    """What an operator or an attacker with read access to the usual places would read: run logs, artifacts,
    the customer repo with its incarnation tags, the store's manifests."""
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp

    def every(read) -> list:  # the API answers at most 200 at a time
        found, batch = [], None
        while batch is None or len(batch) == 200:
            batch = read(offset=len(found))
            found += batch
        return found

    with get_client(sync_client=True) as client:
        logs = every(
            lambda offset: client.read_logs(
                log_filter=LogFilter(timestamp=LogFilterTimestamp(after_=since)), limit=200, offset=offset
            )
        )
        artifacts = every(lambda offset: client.read_artifacts(limit=200, offset=offset))
    repo = subprocess.run(
        ["git", "-C", str(customer.repo), "log", "-p", "--all"], capture_output=True, text=True
    ).stdout
    tags = subprocess.run(
        ["git", "-C", str(customer.repo), "for-each-ref", "--format=%(contents)", "refs/tags"],
        capture_output=True,
        text=True,
    ).stdout
    store = customer.backups()  # manifests are sealed: read as incarnate reads them
    manifests = "".join(store.get(key).decode() for key in store.list("backups") if key.endswith("/manifest.json"))
    return {
        "logs": "\n".join(log.message for log in logs),
        "artifacts": "\n".join(str(artifact.data) for artifact in artifacts),
        "customer repo": repo + tags,
        "manifests": manifests,
    }


def test_secrets_are_generated_once_kept_across_update_and_recovery_and_never_written_elsewhere(
    customer, second_engine
):
    from datetime import datetime

    since = datetime.now(UTC)
    watcher = ProcessWatcher()
    watcher.start()
    try:
        assert customer.install().returncode == 0
        secret = stack_secret(customer.stack)
        assert len(secret) >= 40
        env_file = settings.stacks_dir() / customer.stack / "incarnate.env"
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600 and f"DB_PASSWORD={secret}" in env_file.read_text()
        customer.request("POST", "/records", b'{"title": "kept"}')

        customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
        updated = customer.incarnate("update", str(customer.repo))
        assert updated.returncode == 0, updated.stderr[-3000:]
        assert stack_secret(customer.stack) == secret

        customer.remove_stack()  # the disaster; the new host has never seen the stack
        try:
            recovered = customer.incarnate("recover", str(customer.repo), "--host", second_engine)
            assert recovered.returncode == 0, recovered.stderr[-3000:]
            assert [record["title"] for record in customer.records()] == ["kept"]
            assert stack_secret(customer.stack) == secret
        finally:
            customer.remove_from(second_engine)
    finally:
        watcher.stop.set()
        watcher.join()
    store_id = json.loads((customer.store / "keys" / "config.json").read_text())["store"]
    store_key = PrefectSecretVault(prefix="incarnate-store-key-").load(store_id)
    kept = [secret, store_key["master_key"], store_key["passphrase"]]  # the stack's, and its store's key and passphrase
    assert not [line for line in watcher.seen if any(value in line for value in kept)], (
        "a process's arguments held a secret"
    )
    for place, text in everything_written_about(customer, since).items():
        assert not any(value in text for value in kept), f"a secret appears in the {place}"


def test_a_stack_with_data_whose_secrets_and_their_store_copy_are_gone_is_refused_saying_how_to_restore_them(customer):
    assert customer.install().returncode == 0
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    running = customer.containers()
    with get_client(sync_client=True) as client:
        block = client.read_block_document_by_name(f"incarnate-stack-{customer.stack}", "secret")
        client.delete_block_document(block.id)
    customer.remove_stack()
    shutil.rmtree(customer.store / "secrets" / customer.stack)  # and their copy in the store
    result = customer.install()
    assert result.returncode == 2
    assert f"error: stack {customer.stack} has data (snapshot " in result.stderr
    assert (
        f"but Prefect Secret block incarnate-stack-{customer.stack} does not exist and the sealed copy in store "
        f"{customer.store} (secrets/{customer.stack}/) holds none, so its secrets (db_password) are missing; restore "
        f"that block" in result.stderr
    )
    assert running  # it ran before; nothing was generated in place of the lost secret
    with pytest.raises(ValueError):
        Secret.load(f"incarnate-stack-{customer.stack}")


def test_the_prefect_api_refuses_a_request_without_its_password():
    api = os.environ["PREFECT_API_URL"]
    auth_file = settings.home() / "prefect-api-auth"
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600

    def ask(headers: dict) -> int:
        request = urllib.request.Request(
            f"{api}/flows/filter", data=b"{}", method="POST", headers={"Content-Type": "application/json", **headers}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    assert ask({}) == 401
    assert ask({"Authorization": "Basic " + base64.b64encode(b"incarnate:guess").decode()}) == 401
    assert ask({"Authorization": "Basic " + base64.b64encode(auth_file.read_text().strip().encode()).decode()}) == 200


def test_the_caller_s_environment_never_reaches_a_stack(customer):
    """docker and compose get PATH, HOME and the Docker connection settings, nothing else: Compose lets the
    process environment win over the stack's env file, so an exported DB_PASSWORD or HTTP_PORT replaced the
    vault's password and the stack's port, and a compose file could read PREFECT_API_AUTH_STRING."""
    marker = f"caller-{os.urandom(6).hex()}"
    result = customer.install(env={"DB_PASSWORD": marker, "HTTP_PORT": "1", "SOME_TOKEN": marker})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(customer.request("GET", "/health"))["status"] == "ok"  # on the stack's own port
    for container in customer.containers().values():
        environment = subprocess.run(
            ["docker", "inspect", "--format", "{{json .Config.Env}}", container],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert marker not in environment
        assert os.environ["PREFECT_API_AUTH_STRING"] not in environment
