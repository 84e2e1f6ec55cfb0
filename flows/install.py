"""Install: the whole pipeline, from the newest backup in the customer store (or the vanilla one)."""

from prefect import flow

from flows.report import StageReport, publish_backup
from incarnate import pipeline, settings
from incarnate.host import Host
from tasks.backup import backup
from tasks.create_host import create_host
from tasks.fetch_backup import fetch_backup
from tasks.load_config import load_config
from tasks.migrate import migrate
from tasks.restore import restore
from tasks.start import start


@flow(name="install", log_prints=True)
def install(repo: str, ref: str = "HEAD", docker_host: str | None = None, snapshot: str | None = None) -> dict:
    """Deploy a customer repo's stack: restore its newest backup (or `snapshot`), start, migrate, back up.

    Args:
        repo: the customer repo (git URL or path) whose stack.yaml says what to deploy.
        ref: branch, tag or commit of the customer repo to deploy.
        docker_host: Docker engine address (DOCKER_HOST form); empty for this machine's engine.
        snapshot: id of the snapshot to restore; empty for the newest.
    """
    report = StageReport("install")
    releases, registry = pipeline.default_release_store(), settings.registry()
    with report.stage("load config"):
        deployment = load_config(repo, ref, releases, registry)
    report.stack = deployment.stack
    store = pipeline.backup_store(deployment.customer.config)
    with report.stage("create host"):
        project = create_host(Host(docker_host), deployment.stack)
    with report.stage("fetch backup") as row:
        source = fetch_backup(deployment, store, releases, snapshot)
        row["detail"] = f"{source.id} ({source.manifest.origin}, release {source.manifest.release})"
    with report.stage("restore") as row:
        row["detail"] = ", ".join(f"{name}: {outcome}" for name, outcome in restore(project, deployment, store, source).items())
    with report.stage("start"):
        start(project, deployment)
    with report.stage("migrate") as row:
        health = migrate(project, deployment, source)
        row["detail"] = f"release {health['release']}, schema {health['schema_version']}"
    with report.stage("backup") as row:
        after = backup(project, store, deployment.customer.config.backup.lock_days)
        row["detail"] = f"{after.snapshot.id}: {after.stats.new_bytes:,} new bytes; {after.lock}"
    report.publish()
    publish_backup(deployment.stack, after)
    url = pipeline.app_url(deployment)
    print(f"stack {deployment.stack} runs release {deployment.release.release} at {url} (restored from {source.id})")
    return {"stack": deployment.stack, "release": deployment.release.release, "url": url,
            "restored_from": source.id, "backup": after.snapshot.id, "seconds": report.durations()}
