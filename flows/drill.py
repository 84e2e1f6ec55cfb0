"""Restore drill: restore the newest backup into a scratch stack on the same engine, check it,
tear it down, report. The automated proof that the latest backup is restorable."""

from prefect import flow
from prefect.artifacts import create_table_artifact

from flows.common import bring_up
from flows.report import StageReport, artifact_key
from incarnate import pipeline, settings
from incarnate.errors import StoreError
from incarnate.host import resolve_host
from incarnate.repo import CustomerConfig, load_customer_config
from incarnate.snapshots import find_snapshot
from tasks.create_host import create_host


@flow(name="restore-drill", log_prints=True)
def restore_drill(repo: str, docker_host: str | None = None, snapshot: str | None = None, http_port: int = 0) -> dict:
    """Restore the newest (or a chosen) snapshot into a scratch stack `<stack>-drill`, check health, schema
    version and row counts, then remove the scratch stack.

    Args:
        repo: the customer repo (git URL or path).
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to drill; empty for the newest.
        http_port: host port for the scratch stack's app; 0 picks a free one.
    """
    report = StageReport("restore-drill")
    with report.stage("load config") as row:
        customer = load_customer_config(repo)
        store = pipeline.backup_store(customer.config)
        chosen = find_snapshot(store, customer.config.stack, snapshot)
        if chosen is None:
            raise StoreError(f"stack {customer.config.stack} has no snapshot in {store.location} to drill.")
        manifest = chosen.manifest
        descriptor = pipeline.customer_releases(store).descriptor(manifest.product, manifest.release)
        scratch = customer.config.model_copy(update={"stack": f"{customer.config.stack}-drill", "http_port": http_port or pipeline.free_port()})
        deployment = pipeline.Deployment(CustomerConfig(repo, customer.ref, customer.commit, scratch), descriptor, settings.registry())
        row["detail"] = f"snapshot {chosen.id}, release {manifest.release}"
    report.stack = customer.config.stack
    host, project = resolve_host(docker_host), None
    try:
        with report.stage("create host"):
            project = create_host(host, scratch.stack)
        health = bring_up(report, project, deployment, store, chosen)
        with report.stage("check") as row:
            counts = pipeline.row_counts(project, descriptor)
            row["detail"] = ", ".join(f"{table}: {rows}" for table, rows in counts.items())
    finally:
        if project is not None:
            with report.stage("tear down"):
                pipeline.remove_stack(project)
                pipeline.forget_workdir(project)
        host.close()
    report.publish()
    create_table_artifact(key=artifact_key("restore-drill-result", customer.config.stack),
                          table=[{"table": table, "rows": rows} for table, rows in counts.items()],
                          description=f"snapshot {chosen.id} restored, healthy at release {health['release']}, schema {health['schema_version']}")
    print(f"restore drill of stack {customer.config.stack}: snapshot {chosen.id} restored and healthy "
          f"(release {health['release']}, schema {health['schema_version']}); rows: "
          + ", ".join(f"{table} {rows}" for table, rows in counts.items()))
    return {"stack": customer.config.stack, "snapshot": chosen.id, "health": health, "rows": counts, "seconds": report.durations()}
