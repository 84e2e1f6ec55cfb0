"""Roll back to an earlier incarnation: its commit of the customer repo, with the backup taken
right after it was deployed. What runs now is stopped and backed up first, so nothing is lost."""

from prefect import flow

from blocks import resolve
from flows.deploy import bring_up, closing_backup
from flows.incarnation_record import incarnation as make_incarnation
from flows.incarnation_record import now, record_incarnation
from flows.prologue import before_any_change, stack_on_host
from flows.report import StageReport
from incarnate import incarnations, stages
from incarnate.backup_format import Snapshot
from incarnate.errors import ReleaseError
from incarnate.releases import customer_releases
from incarnate.repo import load_customer_config
from tasks.backup import backup
from tasks.chores import remove_stack
from tasks.fetch_backup import fetch_backup
from tasks.load_config import load_config


@flow(name="rollback", log_prints=True)
def rollback(repo: str, incarnation: str, docker_host: str | None = None) -> dict:
    """Deploy an earlier incarnation (its commit and its own backup) in place of what runs now.

    Args:
        repo: the customer repo (git URL or path).
        incarnation: the incarnation's tag, or its last part (the time), as `incarnate history` lists it.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
    """
    report, started = StageReport("rollback"), now()
    with report.stage(stages.load_config.NAME):
        stack = load_customer_config(repo).config.stack
        wanted = incarnations.find(repo, stack, incarnation)
        if not wanted.backup:
            raise ReleaseError(
                f"incarnation {wanted.tag} has no backup of its own ({wanted.result}); choose one `incarnate history` "
                f"shows with a backup."
            )
        then = load_customer_config(repo, wanted.commit)
        store = resolve.backup_store(then.config)
        releases = customer_releases(store)
        target = load_config(repo, wanted.commit, releases, then)
    report.stack = stack
    backup_settings = target.customer.config.backup
    with stack_on_host(report, target.customer.config, docker_host, store=store) as held:

        def fetch() -> Snapshot:
            with report.stage(stages.fetch_backup.NAME) as row:
                found = fetch_backup(target, store, releases, wanted.backup)
                row["detail"] = found.id
            return found

        source: Snapshot | None = None
        try:
            if held.running:  # nothing changes until the first change: a failure up to it starts the app again
                running = held.running
                with before_any_change(
                    report,
                    held.project,
                    f"rollback of stack {stack} to incarnation {wanted.tag}",
                    f"it runs release {running.release}",
                ) as stop:
                    stop(releases.descriptor(running.product, running.release).activated(running.services))
                    with report.stage(f"{stages.backup.NAME} (before rollback)") as row:
                        row["detail"] = backup(held.project, store, backup_settings).snapshot.id
                    source = fetch()
            else:
                source = fetch()
            with report.stage("remove stack"):
                remove_stack(held.project)
            brought = bring_up(report, held.project, target, store, source)
            closing = closing_backup(report, held.project, target, store, source, brought)
        except Exception as error:
            record_incarnation(
                report,
                make_incarnation("rollback", target, held.host, started, "failed", source and source.id, error=error),
                repo,
            )
            raise
        report.publish()
        record = record_incarnation(
            report, make_incarnation("rollback", target, held.host, started, "ok", source.id, closing.snapshot_id), repo
        )
    print(
        f"stack {stack} rolled back to incarnation {wanted.tag}: release {target.release.release}, data of {source.id}"
    )
    return {
        "stack": stack,
        "release": target.release.release,
        "restored_from": source.id,
        "incarnation": record.tag,
        "seconds": report.durations(),
    }
