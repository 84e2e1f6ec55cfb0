"""Roll back to an earlier incarnation: its commit of the customer repo, with the backup taken
right after it was deployed. What runs now is backed up first, so nothing is lost."""

from contextlib import closing

from prefect import flow

from flows.common import incarnation as make_incarnation
from flows.common import bring_up, now, record_incarnation, stack_lock
from flows.report import StageReport
from incarnate import incarnations, pipeline, settings
from incarnate.errors import ReleaseError
from incarnate.host import resolve_host
from incarnate.repo import load_customer_config
from tasks.backup import backup
from tasks.create_host import create_host
from tasks.fetch_backup import fetch_backup
from tasks.load_config import load_config


@flow(name="rollback", log_prints=True)
def rollback(repo: str, incarnation: str, docker_host: str | None = None) -> dict:
    """Deploy an earlier incarnation (its commit and its own backup) in place of what runs now.

    Args:
        repo: the customer repo (git URL or path).
        incarnation: the incarnation's tag, or its last part (the time), as `incarnate history` lists it.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a saved SSH host block), or a Docker engine address.
    """
    report, started = StageReport("rollback"), now()
    with report.stage("load config"):
        stack = load_customer_config(repo).config.stack
        wanted = incarnations.find(repo, stack, incarnation)
        if not wanted.backup:
            raise ReleaseError(f"incarnation {wanted.tag} has no backup of its own ({wanted.result}); choose one `incarnate history` shows with a backup.")
        store = pipeline.backup_store(load_customer_config(repo, wanted.commit).config)
        target = load_config(repo, wanted.commit, pipeline.customer_releases(store), settings.registry())
    report.stack = stack
    host = resolve_host(docker_host)
    with stack_lock(stack), closing(host):
        with report.stage("create host"):
            project = create_host(host, stack, target.customer.config.host)
        if pipeline.read_state(project):
            with report.stage("backup (before rollback)") as row:
                row["detail"] = backup(project, store, target.customer.config.backup.lock_days).snapshot.id
        with report.stage("fetch backup") as row:
            source = fetch_backup(target, store, pipeline.customer_releases(store), wanted.backup)
            row["detail"] = source.id
        with report.stage("remove stack"):
            pipeline.remove_stack(project)
        bring_up(report, project, target, store, source)
        with report.stage("backup") as row:
            after = backup(project, store, target.customer.config.backup.lock_days)
            row["detail"] = after.snapshot.id
        report.publish()
        record = record_incarnation(report, make_incarnation("rollback", target, host, started, "ok", source.id, after.snapshot.id), repo)
    print(f"stack {stack} rolled back to incarnation {wanted.tag}: release {target.release.release}, data of {source.id}")
    return {"stack": stack, "release": target.release.release, "restored_from": source.id, "incarnation": record.tag,
            "seconds": report.durations()}
