"""An encrypted store's key, kept in a Prefect Secret block, and the way back without it: the store and its recovery
passphrase alone (the Prefect server lost), through the CLI as an operator would."""

import shutil
import subprocess

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from incarnate import settings
from tests.e2e.conftest import INCARNATE, forget_store_key, free_port, store_key_block


def test_recovery_needs_only_the_store_and_the_passphrase(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "kept through the key loss"}')
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    records = customer.records()
    listing = customer.incarnate("backups", str(customer.repo))
    assert "encrypted (AES-256-GCM, chunk names HMAC-SHA-256; key incarnate-store-key-" in listing.stdout

    exported = customer.incarnate("key", "export", str(customer.repo))
    assert exported.returncode == 0, exported.stderr
    passphrase = next(line for line in exported.stdout.splitlines() if line.startswith("recovery passphrase: ")).split(
        ": "
    )[1]
    again = customer.incarnate("key", "export", str(customer.repo))
    assert again.returncode == 2 and "pass --again to print it once more" in again.stderr

    forget_store_key(customer.store)  # the Prefect server and its blocks are gone
    customer.remove_stack()
    refused = customer.incarnate("recover", str(customer.repo))
    assert refused.returncode == 2
    assert "is encrypted and its key (Prefect Secret block incarnate-store-key-" in refused.stderr
    assert "`incarnate key import CUSTOMER_REPO`" in refused.stderr and customer.containers() == {}

    wrong = subprocess.run(
        [INCARNATE, "key", "import", str(customer.repo)], input="NOT-THE-PASSPHRASE\n", capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "the passphrase opens none of the key files" in wrong.stderr
    assert not key_block_exists(customer)
    right = subprocess.run(
        [INCARNATE, "key", "import", str(customer.repo)], input=f"{passphrase}\n", capture_output=True, text=True
    )
    assert right.returncode == 0, right.stderr
    assert passphrase not in right.stdout + right.stderr

    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert customer.records() == records


def key_block_exists(customer) -> bool:
    name = store_key_block(customer.store)
    with get_client(sync_client=True) as client:
        try:
            client.read_block_document_by_name(name, "secret")
            return True
        except ObjectNotFound:
            return False


def test_a_brand_new_management_machine_recovers_a_stack_from_repo_store_and_passphrase(customer, tmp_path):
    """The management machine is lost with its Prefect database (every Secret block: the store's key and the
    stack's database password). A new machine has a new INCARNATE_HOME and a new Prefect server; the customer repo,
    the store and the passphrase bring the stack back with its data, and the app logs in to its database."""
    from tests.e2e.test_prefect_database import prefect_server_script

    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "kept through the loss of the machine"}')
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    records = customer.records()
    exported = customer.incarnate("key", "export", str(customer.repo))
    passphrase = next(line for line in exported.stdout.splitlines() if line.startswith("recovery passphrase: "))
    customer.remove_stack()  # the disaster: the host, the machine and its Prefect server are gone

    home, port = tmp_path / "new-machine", free_port()
    try:
        started = prefect_server_script(home, port)
        assert started.returncode == 0, started.stderr[-2000:]
        new_machine = {
            "INCARNATE_HOME": str(home),
            "INCARNATE_RELEASES": str(settings.releases()),  # the vendor's release store, not the lost machine's
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_API_AUTH_STRING": (home / "prefect-api-auth").read_text().strip(),
        }
        imported = customer.incarnate(
            "key", "import", str(customer.repo), env=new_machine, input=passphrase.split(": ")[1] + "\n"
        )
        assert imported.returncode == 0, imported.stderr[-2000:]
        recovered = customer.incarnate("recover", str(customer.repo), env=new_machine)
        assert recovered.returncode == 0, recovered.stderr[-3000:]
        assert (
            f"stack {customer.stack}: secrets recovered from the sealed copy in store"
            in recovered.stdout + recovered.stderr
        )
        assert customer.records() == records  # served by the app, logged in to its database with the old password
    finally:
        subprocess.run(["pkill", "-f", f"prefect server start --host 127.0.0.1 --port {port}"])
        shutil.rmtree(settings.stacks_dir() / customer.stack, ignore_errors=True)
