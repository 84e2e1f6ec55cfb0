from prefect import task

from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings
from incarnate.stages import backup as stage
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def backup(project: ComposeProject, store: Store, settings: BackupSettings) -> stage.BackupResult:
    """Database dumps and volume archives, chunked into the store; the manifest last."""
    return stage.run(project, store, settings.lock_days, settings.lock_mode)
