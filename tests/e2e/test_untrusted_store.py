"""Verify, don't trust: what the store holds is checked, and what cannot be read or verified is refused loudly, never
taken for a default that looks like success."""

import json
from pathlib import Path

from incarnate import settings
from incarnate.backup_format import MANIFEST
from incarnate.stores.local import LocalStore


def damage_every_manifest(customer) -> list[str]:
    """What a newer incarnate, a lost key configuration or a damaged disk leaves: manifests this one cannot read."""
    damaged = []
    for manifest in sorted((customer.store / "backups" / customer.stack).glob(f"*/{MANIFEST}")):
        manifest.unlink()
        manifest.write_bytes(b'{"format": 99, "written by": "a newer incarnate"}')
        damaged.append(manifest.parent.name)
    return damaged


def store_objects(customer) -> set[str]:
    return {str(path.relative_to(customer.store)) for path in customer.store.rglob("*") if path.is_file()}


def test_a_stack_whose_every_snapshot_is_unreadable_is_never_recovered_from_the_vanilla_backup(customer):
    """The disaster, then a store whose snapshots cannot be read: recovering would have seeded and restored the
    release's vanilla backup and said so successfully, an empty app. Recover, verify and import refuse instead."""
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "precious"}')
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    damaged = damage_every_manifest(customer)
    assert len(damaged) == 2  # the vanilla copy and the backup
    customer.remove_stack()
    before = store_objects(customer)

    recovered = customer.incarnate("recover", str(customer.repo))
    assert recovered.returncode == 2, recovered.stderr[-3000:]
    error = recovered.stderr.strip().splitlines()[-1]
    assert all(snapshot in error for snapshot in damaged) and "vanilla" in error and "Nothing was changed" in error
    assert customer.containers() == {}
    assert store_objects(customer) == before  # no vanilla backup copied in

    verified = customer.incarnate("verify", str(customer.repo))
    assert verified.returncode != 0 and all(snapshot in verified.stderr for snapshot in damaged)
    sampled = customer.incarnate("verify", str(customer.repo), "--sample", "100%")
    assert sampled.returncode == 1 and all(snapshot in sampled.stderr for snapshot in damaged)

    imported = customer.incarnate("import", str(customer.repo), "--dump", "demo=/dev/null")
    assert imported.returncode == 2 and "already has snapshots" in imported.stderr
    assert store_objects(customer) == before


def test_a_host_whose_state_names_another_stack_does_not_decide_where_the_backup_goes(customer):
    """The stack a backup is filed under comes from the customer repo the flow loaded, not from the host's own
    state.json: a host that says it runs another stack of a shared store is refused, and nothing is written there."""
    import json

    from incarnate import settings

    assert customer.install().returncode == 0
    state = settings.stacks_dir() / customer.stack / "state.json"
    planted = json.loads(state.read_text()) | {"stack": "victim"}
    state.write_text(json.dumps(planted))
    before = store_objects(customer)

    backed_up = customer.incarnate("backup", str(customer.repo))
    assert backed_up.returncode != 0, backed_up.stderr[-3000:]
    error = backed_up.stderr.strip().splitlines()[-1]
    assert "victim" in error and customer.stack in error, error
    assert not (customer.store / "backups" / "victim").exists()
    assert {name for name in store_objects(customer) - before if "/manifest.json" in name} == set()


def test_a_rollback_whose_backup_cannot_be_fetched_leaves_the_stack_running_and_is_recorded(customer):
    """Nothing changes until the first change: a rollback that stopped the app for its backup and then cannot fetch
    the incarnation's backup starts the app again, says the stack was not changed, and the failed rollback is an
    incarnation in the history like any failed deployment."""
    import json

    assert customer.install().returncode == 0
    first = customer.incarnate("history", str(customer.repo)).stdout.splitlines()[1].split()[0]
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "update to 1.1.0")
    assert customer.incarnate("update", str(customer.repo)).returncode == 0
    customer.request("POST", "/records", b'{"title": "written on 1.1.0"}')
    tag = next(line for line in customer.incarnate("history", str(customer.repo)).stdout.splitlines() if first in line)
    gone = tag.split("backup ")[1].split()[0]
    (customer.store / "backups" / customer.stack / gone / MANIFEST).unlink()  # its backup is gone from the store

    rolled = customer.incarnate("rollback", str(customer.repo), first)
    assert rolled.returncode != 0
    error = rolled.stderr.strip().splitlines()[-1]
    assert "was not changed" in error and gone in error, error
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.1.0"  # running again, as before
    assert [record["title"] for record in customer.records()] == ["written on 1.1.0"]
    history = customer.incarnate("history", str(customer.repo)).stdout.splitlines()[1:]
    assert [(line.split()[1], line.split()[2]) for line in history] == [
        ("install", "ok"),
        ("update", "ok"),
        ("rollback", "failed"),
    ]


def test_deleting_an_encrypted_store_s_config_does_not_switch_encryption_off(customer):
    """Encryption cannot be switched off by deleting a file: the next backup is refused (nothing written in the
    clear), and `incarnate key import` with the recovery passphrase puts keys/config.json back."""
    assert customer.install().returncode == 0
    exported = customer.incarnate("key", "export", str(customer.repo))
    passphrase = exported.stdout.split("recovery passphrase: ")[1].split()[0]
    customer.request("POST", "/records", b'{"title": "customer-secret-marker-4711"}')
    (customer.store / "keys" / "config.json").unlink()
    before = store_objects(customer)

    refused = customer.incarnate("backup", str(customer.repo))
    assert refused.returncode != 0
    error = refused.stderr.strip().splitlines()[-1]
    assert "keys/config.json is missing, but the store was encrypted" in error and "incarnate key import" in error
    assert store_objects(customer) == before

    imported = customer.incarnate("key", "import", str(customer.repo), input=passphrase + "\n")
    assert imported.returncode == 0, imported.stderr[-2000:]
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    stored = [path.read_bytes() for path in customer.store.rglob("*") if path.is_file()]
    assert not any(b"customer-secret-marker-4711" in data for data in stored)


def test_release_files_planted_in_the_customer_store_for_a_future_release_are_refused(customer):
    """Whoever can write the store plants release 1.1.0's files before the stack is updated to it: a compose.yaml
    that runs privileged with the host's / mounted. The update refuses them and changes nothing."""
    assert customer.install().returncode == 0
    running = customer.containers()
    genuine = LocalStore(Path(settings.releases())).get("demo/1.1.0/release.yaml")
    raw = LocalStore(customer.store)
    raw.put("releases/demo/1.1.0/release.yaml", genuine)
    raw.put(
        "releases/demo/1.1.0/compose.yaml",
        b"services:\n  app:\n    image: demo/app:1.1.0\n    privileged: true\n    volumes: ['/:/host']\n",
    )
    customer.write_stack_yaml(customer.stack_yaml(release="1.1.0"), "pin 1.1.0")
    refused = customer.incarnate("update", str(customer.repo))
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "demo/1.1.0/compose.yaml is not the published file" in last, last
    assert customer.containers() == running
    assert json.loads(customer.request("GET", "/health"))["release"] == "1.0.0"


def test_a_stack_whose_recorded_backups_vanished_from_the_store_is_never_recovered_as_a_new_one(customer):
    """Whoever can write the store deletes the stack's manifests (on Azure: deletes the current versions of locked
    blobs, which hides them): the store looks as if the stack never had a backup, but the customer repo records
    the deployments and their backups. Recover refuses instead of restoring the vanilla backup, an empty app."""
    assert customer.install().returncode == 0
    customer.request("POST", "/records", b'{"title": "must not be replaced by an empty app"}')
    assert customer.incarnate("backup", str(customer.repo)).returncode == 0
    for manifest in (customer.store / "backups" / customer.stack).glob(f"*/{MANIFEST}"):
        manifest.unlink()
    customer.remove_stack()
    refused = customer.incarnate("recover", str(customer.repo))
    assert refused.returncode == 2, refused.stderr[-2000:]
    last = refused.stderr.strip().splitlines()[-1]
    assert "the customer repo records" in last and "does not list it" in last, last
    assert customer.containers() == {}
