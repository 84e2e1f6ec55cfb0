from prefect import task

from incarnate import pipeline
from incarnate.releases import ReleaseStore
from incarnate.snapshots import Snapshot
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name="fetch backup", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def fetch_backup(deployment: pipeline.Deployment, store: Store, releases: ReleaseStore, snapshot_id: str | None = None) -> Snapshot:
    """Newest (or chosen) complete snapshot; on a first install, the release's vanilla backup."""
    return pipeline.fetch_backup(deployment, store, releases, snapshot_id)
