"""In-place update to the release the customer repo now pins, with automatic rollback.

The app services are stopped first, then a verified pre-update backup is taken: it holds every write
the app acknowledged. Until then nothing has changed, and a failure starts the app again. If any later
stage fails (restore, pull, start, migrate, health), the stack is rolled back: its containers and
volumes are removed and the pre-update backup is restored with the previous release, through the same
stages.
"""

from prefect import flow

from blocks import resolve
from flows.deploy import bring_up, closing_backup
from flows.incarnation_record import incarnation, now, record_incarnation
from flows.prologue import before_any_change, deployment_on_host
from flows.report import StageReport
from incarnate import stages
from incarnate.errors import IntegrityError, StageError
from incarnate.releases import customer_releases
from tasks.backup import backup
from tasks.chores import remove_stack, start_data_services, verify
from tasks.fetch_backup import fetch_backup, fetch_release
from tasks.load_config import load_config


@flow(name="update", log_prints=True)
def update(repo: str, ref: str = "HEAD", docker_host: str | None = None) -> dict:
    """Update a running stack to the release its customer repo pins at `ref`; roll back automatically on failure.

    Args:
        repo: the customer repo (git URL or path).
        ref: branch, tag or commit whose stack.yaml pins the new release.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
    """
    report, started, releases = StageReport("update"), now(), resolve.release_store()
    with deployment_on_host(report, repo, ref, docker_host, releases) as (target, held):
        store, host, project, running = held.store, held.host, held.project, held.running
        backup_settings = target.customer.config.backup
        if running is None:
            raise StageError(
                f"stack {target.stack} is not deployed on host {host.name}; install it first (`incarnate install`)."
            )
        previous = load_config(running.repo, running.config_commit, customer_releases(store))
        moving = f"{previous.release.release}→{target.release.release}"
        report.about(target.stack, target.release.product, moving)
        if target.release.release != previous.release.release:
            releases.refuse_withdrawn(target.release.product, target.release.release, f"update of stack {target.stack}")
        with before_any_change(
            report,
            project,
            f"update of stack {target.stack} to release {target.release.release}",
            f"it runs release {previous.release.release}",
        ) as stop:
            with report.stage("fetch release") as row:
                fetch_release(target, store, releases)
                row["detail"] = f"release {target.release.release} files in the customer store"
            stop(previous.release)
            if woken := start_data_services(project, previous.release):
                print(f"stack {target.stack}: {', '.join(woken)} did not run; started for the pre-update backup")
            with report.stage(f"{stages.backup.NAME} (pre-update)") as row:
                before = backup(
                    project, store, stages.backup.for_update(backup_settings, previous.release, target.release)
                )
                problems = verify(store, [before.snapshot]).problems
                if problems:
                    raise IntegrityError(f"pre-update backup {before.snapshot.id} does not verify ({problems[0]}).")
                row["detail"] = f"{before.snapshot.id}, verified"
            with report.stage(stages.fetch_backup.NAME) as row:
                source = fetch_backup(target, store, releases, before.snapshot.id)
                row["detail"] = f"{source.id}; release {target.release.release} files in the customer store"
        try:
            brought = bring_up(report, project, target, store, source, update=True)
        except Exception as failure:
            with report.stage("rollback") as row:
                try:
                    remove_stack(project)
                    bring_up(None, project, previous, store, before.snapshot)
                except Exception as error:
                    raise StageError(
                        f"update of stack {target.stack} to {target.release.release} failed ({failure}) and so did its "
                        f"rollback ({error}); the verified pre-update backup {before.snapshot.id} is intact: run "
                        f"`incarnate install {repo} --ref {running.config_commit} --snapshot {before.snapshot.id}`."
                    ) from failure
                row["detail"] = f"release {previous.release.release} with the data of {before.snapshot.id}"
            record_incarnation(
                report,
                incarnation(
                    "update", target, host, started, "rolled back", before.snapshot.id, before.snapshot.id, failure
                ),
                repo,
            )
            raise StageError(
                f"update of stack {target.stack} to release {target.release.release} failed ({failure}); rolled back "
                f"to release {previous.release.release} with the data of pre-update backup {before.snapshot.id}."
            ) from failure
        closing = closing_backup(report, project, target, store, source, brought)
        report.publish()
        record = record_incarnation(
            report, incarnation("update", target, host, started, "ok", before.snapshot.id, closing.snapshot_id), repo
        )
    print(
        f"stack {target.stack} updated from {previous.release.release} to {target.release.release} "
        f"(pre-update backup {before.snapshot.id})"
    )
    return {
        "stack": target.stack,
        "from": previous.release.release,
        "release": target.release.release,
        "pre_update_backup": before.snapshot.id,
        "backup": closing.snapshot_id,
        "incarnation": record.tag,
        "seconds": report.durations(),
    }
