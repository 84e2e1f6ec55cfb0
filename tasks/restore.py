from prefect import task

from blocks import resolve
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.pinned import PinnedStack
from incarnate.stages import restore as stage
from incarnate.stores import Store
from tasks import STAGE, shows_progress


@task(name=stage.NAME, **STAGE)
@shows_progress
def restore(
    project: ComposeProject,
    pinned: PinnedStack,
    store: Store,
    snapshot: Snapshot,
    adopt_data: bool = False,
    volumes: Snapshot | None = None,
) -> dict[str, str]:
    """The stack's files and secrets (from its Prefect Secret block); data services up; each artifact loaded into
    its database or volume if that is empty (data no deployment recorded is refused, or kept with `adopt_data`); the
    volumes from `volumes`, a newer snapshot of them, where it holds them."""
    return stage.run(project, pinned, store, snapshot, resolve.stack_secrets(), adopt_data, volumes)


# The stage itself, as a task, never retried: a failure empties the databases it replayed into again, and the
# deployment is run again whole.
replay = task(name=stage.REPLAY, **STAGE)(stage.replay)
