from prefect import task

from blocks import resolve
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseStore
from incarnate.stages import fetch_backup as stage
from incarnate.stores import Store
from tasks import NETWORK_RETRIES, STAGE, transient


@task(name="fetch release", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def fetch_release(pinned: PinnedStack, store: Store, releases: ReleaseStore) -> None:
    """The release's files into the customer store (the first half of fetch backup), before anything changes."""
    stage.ensure_release_files(pinned, store, releases)


@task(name="check release copy", retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)
def record_release_copy(store: Store, product: str, release: str) -> None:
    """The running release's copy in the customer store carries its publication record (a stack deployed before
    copies did gets it now, checked against the release store)."""
    stage.record_release_copy(store, product, release, resolve.release_store)


# The stage itself, as a task: newest (or chosen, or the newest taken at or before a recovery time) complete
# snapshot; on a first install, the release's vanilla backup.
fetch_backup = task(name=stage.NAME, retry_condition_fn=transient, **NETWORK_RETRIES, **STAGE)(stage.run)
