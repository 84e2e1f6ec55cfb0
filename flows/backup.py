"""Backup: what the nightly deployment runs; a snapshot of the running stack, then retention."""

from prefect import flow, get_run_logger

from blocks import resolve
from flows.prologue import stack_on_host
from flows.report import StageReport, publish_backup
from incarnate import stages
from incarnate.config import StackConfig
from incarnate.repo import load_customer_config
from incarnate.secrets import keep_copy
from incarnate.stores import Store
from incarnate.stores.secret_copies import StoreSecrets
from tasks.backup import backup
from tasks.chores import prune as prune_snapshots


@flow(name="backup", log_prints=True)
def backup_stack(repo: str, docker_host: str | None = None, prune: bool = True) -> dict:
    """Back up the stack a customer repo describes, as it runs now on its host; then prune by its retention.

    Args:
        repo: the customer repo (git URL or path); its stack.yaml names the stack, its store and retention.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
        prune: apply stack.yaml's retention after a successful backup.
    """
    report = StageReport("backup")
    with report.stage(stages.load_config.NAME):
        config = load_customer_config(repo).config
    report.stack = config.stack
    with stack_on_host(report, config, docker_host, prepare=False) as held:
        with report.stage(stages.backup.NAME) as row:
            result = backup(held.project, held.store, config.backup)
            row["detail"] = (
                f"{result.snapshot.id}: {result.stats.raw_bytes:,} bytes, {result.stats.new_bytes:,} new; "
                f"{result.protection}"
            )
        copy_secrets(held.store, config.stack)
        pruned = prune_after_backup(report, held.store, repo, config, result.snapshot.id) if prune else None
    report.publish()
    publish_backup(config.stack, result)
    print(
        f"stack {config.stack}: snapshot {result.snapshot.id} in {held.store.location}; "
        f"{result.stats.raw_bytes:,} bytes read, {result.stats.new_bytes:,} new bytes stored; {result.protection}"
    )
    return {
        "stack": config.stack,
        "snapshot": result.snapshot.id,
        "store": held.store.location,
        "new_bytes": result.stats.new_bytes,
        "raw_bytes": result.stats.raw_bytes,
        "lock": result.lock,
        "encryption": result.encryption,
        "pruned": pruned,
        "seconds": report.durations(),
    }


def copy_secrets(store: Store, stack: str) -> None:
    """The store's sealed copy of the stack's secrets follows the vault (a stack deployed before copies existed gets
    one with its next backup); its failure is reported, never the run's: the snapshot exists."""
    try:
        values = resolve.stack_secrets().load(stack)
        if values is not None:
            keep_copy(StoreSecrets(store), stack, values)
    except Exception as error:  # noqa: BLE001 - the committed snapshot stands; the next backup tries again
        get_run_logger().warning(
            f"stack {stack}: the copy of its secrets in store {store.location} could not be brought up to date "
            f"({error}); the next backup tries again. Until then a recovery on a new Prefect server needs them."
        )


def prune_after_backup(report: StageReport, store: Store, repo: str, config: StackConfig, snapshot_id: str) -> str:
    """Retention after a committed backup; its failure is reported, never the run's: the snapshot exists."""
    try:
        with report.stage("prune") as row:
            row["detail"] = prune_snapshots(store, repo, config.stack, config.backup.retention).summary()
        return row["detail"]
    except Exception as error:  # noqa: BLE001 - any failure of the clean-up leaves the committed snapshot intact
        get_run_logger().warning(
            f"stack {config.stack}: prune after snapshot {snapshot_id} failed ({error}); the snapshot "
            f"is committed, and the next backup's prune (or `incarnate prune`) tries again."
        )
        return f"failed: {error}"
