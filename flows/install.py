"""Install and disaster recovery: the whole pipeline, from the newest (or a chosen) backup.

Both are the same deployment; disaster recovery names the other host and is reported as
such. A first install restores the release's vanilla backup.
"""

from prefect import flow

from blocks import resolve
from flows.deploy import bring_up, closing_backup
from flows.incarnation_record import incarnation, now, record_incarnation
from flows.prologue import deployment_on_host
from flows.report import StageReport
from incarnate import stages
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.errors import ReleaseError, kind_of
from incarnate.log_archive import recovery_time
from incarnate.stages.restore import Recovery, kept_all
from incarnate.state import runs_as_deployed
from tasks.chores import tear_down
from tasks.fetch_backup import fetch_backup


def install_from_backup(
    name: str,
    repo: str,
    ref: str,
    docker_host: str | None,
    snapshot: str | None,
    unless_current: bool = False,
    adopt_data: bool = False,
    at: str | None = None,
) -> dict:
    """The body of the install, disaster-recovery and import flows; `name` is the flow reported."""
    report, started, releases = StageReport(name), now(), resolve.release_store()
    target = recovery_time(at)
    with deployment_on_host(report, repo, ref, docker_host, releases) as (pinned, held):
        host, project, running = held.host, held.project, held.running
        if running and running.release != pinned.release.release:
            runs = "runs" if project.services() else "was deployed (its containers are gone, its data stays) with"
            raise ReleaseError(
                f"stack {pinned.stack} {runs} release {running.release} on host {host.name} and "
                f"{repo} now pins {pinned.release.release}: run `incarnate update` (verified "
                f"pre-update backup, automatic rollback); the stack was not touched."
            )
        chosen = snapshot is not None or target is not None
        if unless_current and not chosen and running and runs_as_deployed(project, pinned, running):
            url = host.app_address(pinned.customer.config.http_port)
            print(
                f"stack {pinned.stack} already runs release {pinned.release.release} of config commit "
                f"{pinned.customer.commit[:10]} at {url}, healthy; nothing changed."
            )
            return {
                "stack": pinned.stack,
                "release": pinned.release.release,
                "url": url,
                "host": host.name,
                "unchanged": True,
            }
        source = None
        try:
            with report.stage(stages.fetch_backup.NAME) as row:
                source = fetch_backup(pinned, held.store, releases, snapshot, target)
                row["detail"] = f"{source.id} ({source.manifest.origin}, release {source.manifest.release})"
            recovery = Recovery(at=target, apply_logs=snapshot is None)
            brought = bring_up(report, project, pinned, held.store, source, adopt_data, recovery=recovery)
            closing = closing_backup(report, project, pinned, held.store, source, brought)
        except Exception as error:
            record_incarnation(
                report, incarnation(name, pinned, host, started, "failed", source and source.id, error=error), repo
            )
            if running is None and not adopt_data and report.passed(stages.restore.NAME):
                undo_first_deployment(report, project, source, error)
            raise
        report.publish()
        kept = kept_all(brought.outcome)
        record = record_incarnation(
            report,
            incarnation(
                name,
                pinned,
                host,
                started,
                "ok",
                source.id,
                closing.snapshot_id,
                kept_data=kept,
                recovery_point=brought.recovery_point(),
            ),
            repo,
        )
    url = host.app_address(pinned.customer.config.http_port)
    print(
        f"stack {pinned.stack} runs release {pinned.release.release} at {url} "
        f"({brought.origin(source.id)}); seconds per stage: "
        + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in report.durations().items())
    )
    return {
        "stack": pinned.stack,
        "release": pinned.release.release,
        "url": url,
        "host": host.name,
        "restored_from": None if kept else source.id,
        "kept_data": kept,
        "backup": closing.snapshot_id,
        "recovery_point": brought.recovery_point(),
        "incarnation": record.tag,
        "seconds": report.durations(),
        "unchanged": False,
    }


def undo_first_deployment(report: StageReport, project: ComposeProject, source: Snapshot, error: Exception) -> None:
    """A stack that was not deployed on the host, whose deployment failed after its restore: what it loaded (every
    target was empty: data no deployment recorded is refused), started and maybe half-migrated goes (it came from
    `source`, which is intact), so the next attempt restores the snapshot whole. Raises the failure, saying so."""
    kind = kind_of(error)
    try:
        with report.stage("remove what was started"):
            tear_down(project)
    except Exception as cleanup:  # noqa: BLE001 - both failures are reported, the first one's kind
        raise kind(
            f"{error}; removing what this first deployment had started failed too ({cleanup}): remove it "
            f"(`docker compose -p {project.name} down --volumes` on the host) before installing again."
        ) from error
    raise kind(
        f"{error}; the stack was not deployed on this host before, so this run removed what it had started (its "
        f"containers and volumes; snapshot {source.id} is intact): install again once the cause is fixed."
    ) from error


@flow(name="install", log_prints=True)
def install(
    repo: str,
    ref: str = "HEAD",
    docker_host: str | None = None,
    snapshot: str | None = None,
    unless_current: bool = False,
    adopt_data: bool = False,
    at: str | None = None,
) -> dict:
    """Deploy a customer repo's stack: restore its newest backup (or `snapshot`), start, migrate, back up.

    Args:
        repo: the customer repo (git URL or path) whose stack.yaml says what to deploy.
        ref: branch, tag or commit of the customer repo to deploy.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to restore; empty for the newest.
        unless_current: change nothing when the stack already runs this release and config commit, healthy.
        adopt_data: keep the stack's data found on the host although no deployment recorded it (the stack's folder
        was lost): the release migrates it as it is; without it, such data is refused.
        at: recover to this time (ISO 8601 with a zone, e.g. 2026-12-03T14:05:00Z): the newest backup taken at or
        before it, its databases' archived logs replayed up to it; empty or `latest` replays everything archived.
    """
    return install_from_backup("install", repo, ref, docker_host, snapshot, unless_current, adopt_data, at)


@flow(name="disaster-recovery", log_prints=True)
def disaster_recovery(
    repo: str, docker_host: str | None = None, snapshot: str | None = None, ref: str = "HEAD", at: str | None = None
) -> dict:
    """Bring a stack up on another host from its newest (or a chosen) backup; reports the time of each stage (RTO).

    Args:
        repo: the customer repo (git URL or path).
        docker_host: the host to recover onto: empty for this machine, ssh://USER@HOST[:PORT],
        incarnate-ssh-host/NAME (a saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to restore; empty for the newest.
        ref: branch, tag or commit of the customer repo.
        at: recover to this time (ISO 8601 with a zone, e.g. 2026-12-03T14:05:00Z): the newest backup taken at or
        before it, its databases' archived logs replayed up to it; empty or `latest` replays everything archived.
    """
    return install_from_backup("disaster-recovery", repo, ref, docker_host, snapshot, at=at)
