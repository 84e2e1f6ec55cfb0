"""Removing a stack: only with its name typed again, after a last backup that holds every write, leaving nothing of
it on the host; its backups and secrets stay, so install brings it back as it was."""

import json

from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from incarnate import settings
from tests.e2e.conftest import left_on_host


def on_prefect_server(stack: str) -> list[str]:
    """The deployments that serve the stack (their schedules for it) and its concurrency limits, on the server."""
    from deployments.stacks import incarnate_deployments, stacks_of

    with get_client(sync_client=True) as client:
        found = [
            f"deployment {deployment.name}: {len([s for s in deployment.schedules if s.slug == stack])} schedule"
            for deployment in incarnate_deployments(client)
            if stack in stacks_of(deployment)
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

    from deployments.serve import flow_deployments
    from deployments.stacks import stacks_of
    from incarnate.config import StackConfig
    from incarnate.customers import Registration
    from incarnate.repo import CustomerConfig, load_customer_config

    # What `incarnate serve` makes of the registered stacks (here the backup deployment, for this stack and another)
    other = CustomerConfig(
        "/srv/other", "HEAD", "0" * 40, StackConfig(stack=f"{customer.stack}-other", product="demo", release="1.0.0")
    )
    served = [load_customer_config(str(customer.repo)), other]
    (backup,) = [
        made for made in flow_deployments(customer.stack, Registration(), served) if made.flow_name == "backup"
    ]
    deployment_id = backup.apply()
    assert on_prefect_server(customer.stack) == [
        f"deployment {customer.stack}: 1 schedule",
        f"limit stack-{customer.stack}",
    ]
    removed = customer.incarnate("remove", str(customer.repo), "--confirm", customer.stack)
    assert removed.returncode == 0, removed.stderr[-3000:]
    assert f"stack {customer.stack} removed from host local (" in removed.stdout + removed.stderr
    assert left_on_host(customer.stack) == []
    assert on_prefect_server(customer.stack) == []  # no nightly backup of a stack that is gone
    with get_client(sync_client=True) as client:  # the other stack keeps its schedule, and the deployment
        kept = client.read_deployment(deployment_id)
        client.delete_deployment(deployment_id)
    assert stacks_of(kept) == {other.config.stack: "/srv/other"}
    assert [schedule.slug for schedule in kept.schedules] == [other.config.stack]
    assert kept.parameter_openapi_schema["properties"]["repo"]["enum"] == ["/srv/other"]

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
