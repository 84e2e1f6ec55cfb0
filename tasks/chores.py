"""The steps flows run between the stages, as tasks, so each shows as a task run in the UI with its own log.

None retries: each either acts on the running stack (a retry would hide why it failed) or reports.
"""

from prefect import task

from incarnate import datasources, retention
from incarnate.backup_format import Artifact, Sample, Snapshot, Verified, verify_chunks
from incarnate.compose import ComposeProject
from incarnate.config import Retention
from incarnate.errors import StageError
from incarnate.releases import ReleaseDescriptor
from incarnate.stores import Store
from tasks import STAGE


@task(name="stop app", **STAGE)
def stop_app(project: ComposeProject, release: ReleaseDescriptor) -> list[str]:
    """Stop the app services (not the data services), so nothing writes while the data changes; which were stopped."""
    services = release.app_services
    project.stop(services)
    return services


@task(name="start data services", **STAGE)
def start_data_services(project: ComposeProject, release: ReleaseDescriptor) -> list[str]:
    """The data services a backup reads, started from the host's files where they do not run (their containers
    were removed; the volumes stay); which were started."""
    running = {service.get("Service") for service in project.services() if service.get("State") == "running"}
    missing = [service for service in release.data_services if service not in running]
    if missing:
        project.up(missing)
    return missing


@task(name="remove stack", **STAGE)
def remove_stack(project: ComposeProject) -> None:
    """Containers and volumes of the stack go: only ever after a verified backup of them exists."""
    project.down(volumes=True)


@task(name="tear down", **STAGE)
def tear_down(project: ComposeProject) -> list[str]:
    """A scratch stack goes whole: containers, volumes, networks, and its files here and on the host; what went."""
    removed = project.remove_all()
    project.forget()
    return removed


@task(name="check", **STAGE)
def check(project: ComposeProject, release: ReleaseDescriptor, snapshot: Snapshot) -> dict[str, int]:
    """Rows per table of every database of the stack, as `database.table`; they must be the rows the snapshot's
    backup counted as it dumped (a snapshot of an older format did not count them)."""
    counts = datasources.row_counts(datasources.for_release(project, release))
    backed_up = snapshot.manifest.rows()
    differences = datasources.row_differences(counts, backed_up) if backed_up is not None else []
    if differences:
        raise StageError(
            f"snapshot {snapshot.id} was restored with other rows than its backup counted: {'; '.join(differences)}."
        )
    return counts


@task(name="verify", **STAGE)
def verify(
    store: Store, snapshots: list[Snapshot], sample: Sample | None = None, more: list[tuple[str, Artifact]] = ()
) -> Verified:
    """Re-read the chunks of these snapshots and of `more` (archived log pieces), all or a sample; one line per
    missing or corrupt chunk."""
    return verify_chunks(store, snapshots, sample, more=more)


@task(name="prune", **STAGE)
def prune(store: Store, repo: str, stack: str, policy: Retention) -> retention.PruneResult:
    """Apply the stack's retention to its snapshots (keeping its recent incarnations' backups), then delete chunks
    nothing references."""
    return retention.prune_stack(store, repo, stack, policy)
