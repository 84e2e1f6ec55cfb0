from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name="backup", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def backup(project: ComposeProject, store: Store, lock_days: int = 0) -> pipeline.BackupResult:
    """Database dumps and volume archives, chunked into the store; the manifest last."""
    return pipeline.backup(project, store, lock_days)
