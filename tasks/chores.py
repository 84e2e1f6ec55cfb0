"""The steps flows run between the stages, as tasks, so each shows as a task run in the UI with its own log.

None retries: each either acts on the running stack (a retry would hide why it failed) or reports.
"""

from prefect import task

from incarnate import datasources, retention
from incarnate.backup_format import Snapshot, verify_snapshot
from incarnate.compose import ComposeProject
from incarnate.config import Retention
from incarnate.releases import ReleaseDescriptor
from incarnate.stores import Store
from tasks import STAGE


@task(name="stop app", **STAGE)
def stop_app(project: ComposeProject, release: ReleaseDescriptor) -> list[str]:
    """Stop the app services (not the data services), so nothing writes while the data changes; which were stopped."""
    services = release.app_services
    project.stop(services)
    return services


@task(name="remove stack", **STAGE)
def remove_stack(project: ComposeProject) -> None:
    """Containers and volumes of the stack go: only ever after a verified backup of them exists."""
    project.down(volumes=True)


@task(name="tear down", **STAGE)
def tear_down(project: ComposeProject) -> None:
    """A scratch stack goes whole: containers, volumes, and its files here and on the host."""
    project.down(volumes=True)
    project.forget()


@task(name="check", **STAGE)
def check(project: ComposeProject, release: ReleaseDescriptor, registry: str) -> dict[str, int]:
    """Rows per table of every database of the stack, as `database.table`."""
    return datasources.row_counts(datasources.for_release(project, release, registry))


@task(name="verify", **STAGE)
def verify(store: Store, snapshot: Snapshot) -> list[str]:
    """Re-read every chunk of the snapshot; one line per missing or corrupt chunk."""
    return verify_snapshot(store, snapshot)


@task(name="prune", **STAGE)
def prune(store: Store, stack: str, policy: Retention) -> retention.PruneResult:
    """Apply the stack's retention to its snapshots, then delete chunks nothing references."""
    return retention.prune(store, stack, policy)
