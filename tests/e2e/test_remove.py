"""Removing a stack: only with its name typed again, after a last backup that holds every write, leaving nothing of
it on the host; its backups and secrets stay, so install brings it back as it was."""

import json

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from incarnate import settings
from tests.e2e.conftest import left_on_host


def on_prefect_server(stack: str) -> list[str]:
    """The stack's deployments (by their tag) and concurrency limits the Prefect server has."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    with get_client(sync_client=True) as client:
        found = [
            f"deployment {deployment.name}"
            for deployment in client.read_deployments(
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[f"stack:{stack}"]))
            )
        ]
        for name in (f"stack-{stack}", f"stack-{stack}-drill"):
            try:
                client.read_global_concurrency_limit_by_name(name)
                found.append(f"limit {name}")
            except ObjectNotFound:
                pass
    return found


def test_a_stack_is_removed_after_a_last_backup_and_install_brings_it_back_as_it_was(customer):
    assert customer.install().returncode == 0
    customer.request("POST", "/records", json.dumps({"title": "written after the last nightly backup"}).encode())
    written = customer.records()

    unconfirmed = customer.incarnate("remove", str(customer.repo))
    assert unconfirmed.returncode == 2
    assert unconfirmed.stderr.strip().splitlines()[-1] == (
        f"error: removing stack {customer.stack} deletes its containers and volumes on its host; give --confirm "
        f"{customer.stack} (the stack's name) to go ahead. Nothing was changed."
    )
    assert customer.records() == written

    from flows.backup import backup_stack

    # what `incarnate serve` makes of a registered stack: its deployments, tagged with it (here one, made by hand)
    backup_stack.to_deployment(name=customer.stack, tags=[f"stack:{customer.stack}"]).apply()
    assert on_prefect_server(customer.stack) == [f"deployment {customer.stack}", f"limit stack-{customer.stack}"]
    removed = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack)
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert f"stack {customer.stack} removed from host local (" in removed.stdout + removed.stderr
    assert left_on_host(customer.stack) == []
    assert on_prefect_server(customer.stack) == []  # no nightly backup of a stack that is gone

    back = customer.install()
    assert back.returncode == 0, back.stderr[-3000:]
    assert customer.records() == written  # the last backup held the write made after the install


def test_what_a_failed_first_install_left_is_removed_only_when_its_data_may_go(customer):
    """No deployment recorded anything (the folder's state is gone): there is nothing to back up, so the operator
    says that what is left may go."""
    assert customer.install().returncode == 0
    (settings.stacks_dir() / customer.stack / "state.json").unlink()
    refused = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: removal of stack {customer.stack} failed before it changed the stack (no last ")
    assert "give --discard-data if what is left of it on host local may go); it stays as before and was not" in last
    assert left_on_host(customer.stack) != []

    removed = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack, "--discard-data")
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert left_on_host(customer.stack) == []
