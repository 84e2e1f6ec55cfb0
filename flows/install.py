"""Install and disaster recovery: the whole pipeline, from the newest (or a chosen) backup.

Both are the same deployment; disaster recovery names the other host and is reported as
such. A first install restores the release's vanilla backup.
"""

from prefect import flow

from flows.common import bring_up, deployment_on_host, incarnation, now, record_incarnation
from flows.report import StageReport, publish_backup
from incarnate import pipeline
from incarnate.errors import ReleaseError
from tasks.backup import backup
from tasks.fetch_backup import fetch_backup


def deploy(name: str, repo: str, ref: str, docker_host: str | None, snapshot: str | None,
           unless_current: bool = False) -> dict:
    report, started = StageReport(name), now()
    with deployment_on_host(report, repo, ref, docker_host) as held:
        deployment, host, project, running = held.deployment, held.host, held.project, held.running
        if unless_current and running and running.release != deployment.release.release:
            raise ReleaseError(f"stack {deployment.stack} runs release {running.release} on host {host.name} and "
                               f"{repo} now pins {deployment.release.release}: run `incarnate update` (verified "
                               f"pre-update backup, automatic rollback); the running stack was not touched.")
        if unless_current and snapshot is None and running and pipeline.runs_as_deployed(project, deployment, running):
            url = pipeline.app_address(host, deployment.customer.config.http_port)
            print(f"stack {deployment.stack} already runs release {deployment.release.release} of config commit "
                  f"{deployment.customer.commit[:10]} at {url}, healthy; nothing changed.")
            return {"stack": deployment.stack, "release": deployment.release.release, "url": url, "host": host.name,
                    "unchanged": True}
        source = None
        try:
            with report.stage("fetch backup") as row:
                source = fetch_backup(deployment, held.store, held.releases, snapshot)
                row["detail"] = f"{source.id} ({source.manifest.origin}, release {source.manifest.release})"
            bring_up(report, project, deployment, held.store, source)
            with report.stage("backup") as row:
                after = backup(project, held.store, deployment.customer.config.backup.lock_days)
                row["detail"] = f"{after.snapshot.id}: {after.stats.new_bytes:,} new bytes; {after.lock}"
        except Exception as error:
            record_incarnation(report, incarnation(name, deployment, host, started, "failed", source and source.id, error=error), repo)
            raise
        report.publish()
        publish_backup(deployment.stack, after)
        record = record_incarnation(report, incarnation(name, deployment, host, started, "ok", source.id, after.snapshot.id), repo)
    url = pipeline.app_address(host, deployment.customer.config.http_port)
    print(f"stack {deployment.stack} runs release {deployment.release.release} at {url} "
          f"(restored from {source.id}); seconds per stage: "
          + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in report.durations().items()))
    return {"stack": deployment.stack, "release": deployment.release.release, "url": url, "host": host.name,
            "restored_from": source.id, "backup": after.snapshot.id, "incarnation": record.tag, "seconds": report.durations(),
            "unchanged": False}


@flow(name="install", log_prints=True)
def install(repo: str, ref: str = "HEAD", docker_host: str | None = None, snapshot: str | None = None,
            unless_current: bool = False) -> dict:
    """Deploy a customer repo's stack: restore its newest backup (or `snapshot`), start, migrate, back up.

    Args:
        repo: the customer repo (git URL or path) whose stack.yaml says what to deploy.
        ref: branch, tag or commit of the customer repo to deploy.
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to restore; empty for the newest.
        unless_current: change nothing when the stack already runs this release and config commit, healthy.
    """
    return deploy("install", repo, ref, docker_host, snapshot, unless_current)


@flow(name="disaster-recovery", log_prints=True)
def disaster_recovery(repo: str, docker_host: str | None = None, snapshot: str | None = None, ref: str = "HEAD") -> dict:
    """Bring a stack up on another host from its newest (or a chosen) backup; reports the time of each stage (RTO).

    Args:
        repo: the customer repo (git URL or path).
        docker_host: the host to recover onto: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to restore; empty for the newest.
        ref: branch, tag or commit of the customer repo.
    """
    return deploy("disaster-recovery", repo, ref, docker_host, snapshot)
