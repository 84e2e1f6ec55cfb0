from prefect import task

from incarnate.compose import ComposeProject
from incarnate.stages import backup as stage
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def backup(project: ComposeProject, store: Store, lock_days: int = 0) -> stage.BackupResult:
    """Database dumps and volume archives, chunked into the store; the manifest last."""
    return stage.run(project, store, lock_days)
