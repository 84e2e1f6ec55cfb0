"""Backup: what the nightly deployment runs; a snapshot of the running stack into its store."""

from prefect import flow

from flows.report import StageReport
from incarnate import pipeline
from incarnate.host import Host
from incarnate.repo import load_customer_config
from tasks.backup import backup as backup_stage
from tasks.create_host import create_host


@flow(name="backup", log_prints=True)
def backup(repo: str, docker_host: str | None = None) -> dict:
    """Back up the stack a customer repo describes, as it runs now on its host.

    Args:
        repo: the customer repo (git URL or path); its stack.yaml names the stack and its store.
        docker_host: Docker engine address (DOCKER_HOST form); empty for this machine's engine.
    """
    report = StageReport("backup")
    with report.stage("load config"):
        config = load_customer_config(repo).config
    report.stack = config.stack
    store = pipeline.backup_store(config)
    with report.stage("create host"):
        project = create_host(Host(docker_host), config.stack)
    with report.stage("backup") as row:
        snapshot = backup_stage(project, store)
        sizes = sum(artifact.size for artifact in snapshot.manifest.artifacts)
        row["detail"] = f"{snapshot.id}: {len(snapshot.manifest.artifacts)} artifacts, {sizes} bytes stored"
    report.publish()
    print(f"stack {config.stack}: snapshot {snapshot.id} in {store.location}")
    return {"stack": config.stack, "snapshot": snapshot.id, "store": store.location, "seconds": report.durations()}
