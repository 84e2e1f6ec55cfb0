"""Fetch backup: the newest (or chosen) complete snapshot in the customer store; a first install seeds the
store with the release's vanilla backup. The release's files are copied into the customer store too."""

from incarnate.backup_format import Snapshot, copy_snapshot, find_snapshot
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseStore, customer_releases
from incarnate.stores import Store

NAME = "fetch backup"


def ensure_release_files(pinned: PinnedStack, store: Store, releases: ReleaseStore) -> None:
    """Copy the release's files into the customer store, so recovery never needs the release store."""
    config = pinned.customer.config
    own_copy = customer_releases(store)
    if not own_copy.has(config.product, config.release):
        own_copy.add(config.product, config.release, releases.files(config.product, config.release))


def run(pinned: PinnedStack, store: Store, releases: ReleaseStore, snapshot_id: str | None = None) -> Snapshot:
    config = pinned.customer.config
    ensure_release_files(pinned, store, releases)
    snapshot = find_snapshot(store, config.stack, snapshot_id)
    if snapshot is None:
        vanilla = releases.vanilla(config.product, config.release)
        snapshot = copy_snapshot(releases.store, vanilla, store, config.stack)
    pinned.refuse_downgrade(snapshot.manifest.schema_version, f"snapshot {snapshot.id}")
    return snapshot
