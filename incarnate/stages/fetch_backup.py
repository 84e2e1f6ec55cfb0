"""Fetch backup: the newest (or chosen) complete snapshot in the customer store; a first install seeds the
store with the release's vanilla backup. The release's files are copied into the customer store too."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from incarnate.backup_format import MANIFEST, Snapshot, copy_snapshot, find_snapshot, stack_prefix
from incarnate.errors import UnreadableSnapshots
from incarnate.incarnations import history
from incarnate.pinned import PinnedStack
from incarnate.releases import ReleaseStore, customer_releases, keep_checked_copy
from incarnate.stores import Store

NAME = "fetch backup"


def ensure_release_files(pinned: PinnedStack, store: Store, releases: ReleaseStore) -> None:
    """Copy the release's files and publication record into the customer store, checked against the publication,
    so recovery never needs the release store."""
    config = pinned.customer.config
    backup = config.backup
    until = datetime.now(UTC) + timedelta(days=backup.lock_days) if backup.lock_days else None
    keep_checked_copy(releases, customer_releases(store), config.product, config.release, until, backup.lock_mode)


def refuse_vanished_backup(pinned: PinnedStack, store: Store, newest: Snapshot | None) -> None:
    """The customer repo records each deployment's backup, and retention keeps the recent ones: when the store no
    longer lists the newest recorded one, someone deleted or hid it (on Azure, a deleted current version of a locked
    blob stays as a hidden previous version), and the store's newest, or its having none, cannot be trusted."""
    recorded = [
        incarnation for incarnation in history(pinned.customer.repo, pinned.stack) if incarnation.backup is not None
    ]
    if not recorded:
        return
    wanted = recorded[-1]
    if store.exists(f"{stack_prefix(pinned.stack)}/{wanted.backup}/{MANIFEST}"):
        return
    raise UnreadableSnapshots(
        f"stack {pinned.stack}: the customer repo records backup {wanted.backup} of its deployment {wanted.tag}, and "
        f"store {store.location} does not list it: it was deleted or hidden (on Azure, deleting the current version "
        f"of a locked blob keeps it as a previous version), so the store's "
        f"{f'newest snapshot ({newest.id})' if newest else 'having no snapshot'} cannot be trusted and nothing was "
        f"changed. Bring the backup back, or choose a snapshot the store lists with --snapshot."
    )


def record_release_copy(store: Store, product: str, release: str, releases: Callable[[], ReleaseStore]) -> None:
    """A release copy without its publication record (written before copies carried one) gets it, checked against
    the release store (`releases`, opened only then), so every later read of its files can be checked."""
    copy = customer_releases(store)
    if copy.publication(product, release) is None:
        keep_checked_copy(releases(), copy, product, release)


def run(pinned: PinnedStack, store: Store, releases: ReleaseStore, snapshot_id: str | None = None) -> Snapshot:
    config = pinned.customer.config
    snapshot = find_snapshot(store, config.stack, snapshot_id)
    if snapshot_id is None and config.backup.retention.keep_incarnations:
        refuse_vanished_backup(pinned, store, snapshot)
    if snapshot is None:
        releases.refuse_withdrawn(config.product, config.release, f"new stack {config.stack} (it has no backup yet)")
    ensure_release_files(pinned, store, releases)
    if snapshot is None:
        vanilla = releases.vanilla(config.product, config.release)
        snapshot = copy_snapshot(releases.store, vanilla, store, config.stack)
    pinned.refuse_downgrade(snapshot.manifest.schema_version, f"snapshot {snapshot.id}")
    return snapshot
