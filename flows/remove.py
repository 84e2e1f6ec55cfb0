"""Remove: a stack goes from its host (containers, volumes, networks, its files there) after a last backup; its
backups and its secrets stay, so `incarnate install` brings it back, and it is no longer registered for serve."""

from contextlib import suppress

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.events import emit_event
from prefect.exceptions import ObjectNotFound

from deployments.alerts import STACK_REMOVED
from deployments.stacks import forget_stack
from flows.prologue import OnHost, before_any_change, stack_on_host
from flows.report import StageReport
from incarnate import stages
from incarnate.config import StackConfig
from incarnate.customers import unregister
from incarnate.errors import ConfigError, kind_of
from incarnate.releases import customer_releases
from incarnate.repo import load_customer_config
from tasks.backup import backup, stack_resource
from tasks.chores import tear_down


@flow(name="remove", log_prints=True)
def remove_stack(repo: str, confirm: str = "", docker_host: str | None = None, discard_data: bool = False) -> dict:
    """Remove the stack a customer repo describes from its host, after a last backup of what runs there.

    Args:
        repo: the customer repo (git URL or path).
        confirm: the stack's name, typed again: removing deletes its containers and volumes on the host.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
        discard_data: remove without the last backup (a failed first install, or data nobody needs).
    """
    report = StageReport("remove")
    with report.stage(stages.load_config.NAME):
        config = load_customer_config(repo).config
    report.stack = config.stack
    if confirm != config.stack:
        raise ConfigError(
            f"removing stack {config.stack} deletes its containers and volumes on its host; give --confirm "
            f"{config.stack} (the stack's name) to go ahead. Nothing was changed."
        )
    with stack_on_host(report, config, docker_host, prepare=False) as held:
        with before_any_change(report, held.project, f"removal of stack {config.stack}", "it stays") as stop:
            if held.running and not discard_data:  # nothing may write after the last backup
                running = held.running
                stop(
                    customer_releases(held.store)
                    .descriptor(running.product, running.release)
                    .activated(running.services)
                )
            with report.stage("last backup") as row:
                row["detail"] = last_backup(held, config, discard_data)
        with report.stage("tear down") as row:
            removed = tear_down(held.project)
            row["detail"] = ", ".join(removed) or "nothing was there"
    unregister(repo)
    # Its alert windows close: a removed stack is not one whose backups stopped.
    emit_event(
        event=STACK_REMOVED,
        resource={"prefect.resource.id": stack_resource(config.stack), "prefect.resource.name": config.stack},
    )
    with report.stage("forget deployments") as row:  # after the stack's lock is let go: its limit goes too
        row["detail"] = ", ".join(forget_on_server(config.stack)) or "none"
    report.publish()
    print(
        f"stack {config.stack} removed from host {held.host.name} ({', '.join(removed) or 'nothing was there'}); its "
        f"backups in {held.store.location} and its secrets stay: `incarnate install {repo}` brings it back."
    )
    return {"stack": config.stack, "removed": removed}


def forget_on_server(stack: str) -> list[str]:
    """The stack leaves the deployments `serve` made of its registration (its schedules, its place in the buttons'
    choice) and its concurrency limits go from the Prefect server; what went."""
    gone = []
    with get_client(sync_client=True) as client:
        gone.extend(forget_stack(client, stack))
        for name in (f"stack-{stack}", f"stack-{stack}-drill"):
            with suppress(ObjectNotFound):
                client.delete_global_concurrency_limit_by_name(name)
                gone.append(f"concurrency limit {name}")
    return gone


def last_backup(held: OnHost, config: StackConfig, discard_data: bool) -> str:
    """A backup of the stack as it ran, its app stopped: nothing written since the nightly one is lost. Refused when
    it cannot be made, unless the data may go."""
    if discard_data:
        return "none: --discard-data"
    try:
        result = backup(held.project, held.store, config.backup)
    except Exception as failure:
        raise kind_of(failure)(
            f"no last backup could be made ({failure}); give --discard-data if what is left of it on host "
            f"{held.host.name} may go"
        ) from None
    return f"{result.snapshot.id}: {result.stats.raw_bytes:,} bytes"
