"""Restore drill: restore the newest backup into a scratch stack on the same engine, check it,
tear it down, report. The automated proof that the latest backup is restorable."""

from prefect import flow
from prefect.artifacts import create_table_artifact

from blocks import resolve
from flows.deploy import bring_up
from flows.prologue import stack_on_host
from flows.report import StageReport
from incarnate import product_settings, stages
from incarnate.config import DRILL_SUFFIX
from incarnate.errors import StoreError
from incarnate.fleet import report_key
from incarnate.host import free_port
from incarnate.log_archive import recovery_time
from incarnate.pinned import PinnedStack
from incarnate.product_settings import PUBLIC_URL
from incarnate.publish import check_policy
from incarnate.registry import check_pinned
from incarnate.releases import customer_releases, published_digests
from incarnate.repo import CustomerConfig, load_customer_config
from incarnate.stages.fetch_backup import choose, random_moment
from incarnate.stages.restore import Recovery
from tasks.chores import tear_down


@flow(name="restore-drill", log_prints=True)
def restore_drill(
    repo: str, docker_host: str | None = None, snapshot: str | None = None, http_port: int = 0, at: str | None = None
) -> dict:
    """Restore the newest (or a chosen) snapshot into a scratch stack `<stack>-drill`, check health, schema
    version and row counts, then remove the scratch stack.

    Args:
        repo: the customer repo (git URL or path).
        docker_host: the container host: empty for this machine, ssh://USER@HOST[:PORT], incarnate-ssh-host/NAME (a
        saved SSH host block), or a Docker engine address.
        snapshot: id of the snapshot to drill; empty for the newest.
        http_port: host port for the scratch stack's app; 0 picks a free one.
        at: drill a recovery to this time (ISO 8601 with a zone): the newest backup taken at or before it, its
        databases' archived logs replayed up to it; empty or `latest` replays everything archived; `random`: a
        random second since the oldest backup (the weekly drill's: older bases and the logs get tried too).
    """
    target = None if at == "random" else recovery_time(at)
    report = StageReport("restore-drill")
    with report.stage(stages.load_config.NAME) as row:
        customer = load_customer_config(repo)
        store = resolve.backup_store(customer.config)
        if at == "random" and not snapshot:
            target = random_moment(store, customer.config.stack)
        chosen = choose(store, customer.config.stack, snapshot, target)
        if chosen is None:
            raise StoreError(f"stack {customer.config.stack} has no snapshot in {store.location} to drill.")
        manifest = chosen.manifest
        copy = customer_releases(store)
        descriptor = copy.descriptor(manifest.product, manifest.release)
        release = descriptor.activated(customer.config.services)
        digests = published_digests(release, copy.published(manifest.product, manifest.release))
        scratch = customer.config.model_copy(
            update={"stack": f"{customer.config.stack}{DRILL_SUFFIX}", "http_port": http_port or free_port()}
        )
        registry = resolve.registry(customer.config.registry)
        check_pinned(registry, digests, f"{release.product} {release.release}")  # a recovery would need them
        check_policy(copy, descriptor, registry.address)
        given = {name: value for name, value in customer.config.settings.items() if name != PUBLIC_URL}
        pinned = PinnedStack(  # the customer's settings, but its public URL is the scratch stack's own
            CustomerConfig(repo, customer.ref, customer.commit, scratch),
            release,
            registry.address,
            digests,
            settings=product_settings.resolve(descriptor.settings, given, f"{repo}: stack.yaml", scratch.http_port),
            secrets_of=customer.config.stack,
            login=registry,
        )
        row["detail"] = f"snapshot {chosen.id}, release {manifest.release}" + (
            f", recovery to {target.isoformat(timespec='seconds')}" if target else ""
        )
    report.stack = customer.config.stack
    # The scratch stack is held like any stack: two drills of one stack would otherwise tear down each other's.
    with stack_on_host(report, scratch, docker_host, prepare=False, store=store) as held:
        with report.stage("clear scratch") as row:
            stale = tear_down(held.project)  # a killed drill's volumes would be kept as "not empty"
            if stale:
                row["detail"] = f"removed the stale scratch stack {scratch.stack} ({', '.join(stale)})"
        try:
            recovery = Recovery(at=target, apply_logs=not snapshot, record=False)
            brought = bring_up(report, held.project, pinned, store, chosen, check_rows=True, recovery=recovery)
            readiness, counts = brought.readiness, brought.rows
        finally:
            with report.stage("tear down"):
                tear_down(held.project)
    report.publish()
    create_table_artifact(
        key=report_key("restore-drill-result", customer.config.stack),
        table=[{"table": table, "rows": rows} for table, rows in counts.items()],
        description=f"snapshot {chosen.id} restored, healthy at {readiness.describe()}",
    )
    print(
        f"restore drill of stack {customer.config.stack}: snapshot {chosen.id} restored and healthy "
        f"({readiness.describe()}); rows: "
        + ", ".join(f"{table} {rows}" for table, rows in counts.items())
        + f"; recovery point {brought.recovery_point() or chosen.manifest.created_at}"
    )
    return {
        "stack": customer.config.stack,
        "snapshot": chosen.id,
        "health": readiness.as_dict(),
        "rows": counts,
        "recovery_point": brought.recovery_point(),
        "seconds": report.durations(),
    }
