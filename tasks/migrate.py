from prefect import task

from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.pinned import PinnedStack
from incarnate.readiness import Readiness
from incarnate.stages import migrate as stage
from tasks import STAGE


@task(name=stage.NAME, **STAGE)
def migrate(project: ComposeProject, pinned: PinnedStack, snapshot: Snapshot, kept_data: bool = False) -> Readiness:
    """Wait until the stack reports the pinned release and schema version; record the deployment."""
    return stage.run(project, pinned, snapshot, kept_data)
