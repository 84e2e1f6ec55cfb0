from prefect import task

from incarnate import pipeline
from incarnate.compose import ComposeProject
from incarnate.snapshots import Snapshot
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name="backup", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def backup(project: ComposeProject, store: Store) -> Snapshot:
    """Database dumps and volume archives, streamed into the store; the manifest last."""
    return pipeline.backup(project, store)
