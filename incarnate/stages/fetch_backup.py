"""Fetch backup: the newest (or chosen) complete snapshot in the customer store; a first install seeds the
store with the release's vanilla backup. The release's files are copied into the customer store too."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from incarnate.backup_format import (
    MANIFEST,
    VOLUMES,
    Snapshot,
    copy_snapshot,
    find_snapshot,
    list_snapshots,
    stack_prefix,
)
from incarnate.errors import ConfigError, IntegrityError, UnreadableSnapshots
from incarnate.incarnations import history
from incarnate.log_archive import HistoryStart, live_history
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


def snapshot_at(store: Store, stack: str, at: datetime) -> Snapshot:
    """The newest backup of the stack taken at or before `at`: the base a recovery to `at` replays logs onto."""
    if at > datetime.now(UTC):
        raise ConfigError(f"stack {stack}: recovery time {at.isoformat()} is in the future; nothing was changed.")
    snapshots = [snapshot for snapshot in list_snapshots(store, stack) if snapshot.manifest.origin == "backup"]
    before = [snapshot for snapshot in snapshots if snapshot.manifest.created() <= at]
    if not before:
        oldest = min((snapshot.manifest.created() for snapshot in snapshots), default=None)
        raise ConfigError(
            f"stack {stack}: no backup in store {store.location} was taken at or before {at.isoformat()} "
            + (f"(the oldest kept was taken {oldest.isoformat()})" if oldest else "(it holds none)")
            + "; a recovery cannot go back before its oldest base, and nothing was changed. Choose a later --at."
        )
    return newest(before)


def random_moment(store: Store, stack: str) -> datetime | None:
    """A random whole second between the stack's oldest backup and now (None without a backup): what the weekly
    drill recovers to, so every base and the log after it get tried over the weeks."""
    taken = [
        snapshot.manifest.created() for snapshot in list_snapshots(store, stack) if snapshot.manifest.origin == "backup"
    ]
    if not taken:
        return None
    oldest, now = min(taken), datetime.now(UTC)
    return (oldest + (now - oldest) * random.SystemRandom().random()).replace(microsecond=0)


def volumes_for(store: Store, stack: str, snapshot: Snapshot, at: datetime | None) -> Snapshot | None:
    """The snapshot of volumes a recovery from `snapshot` to `at` (None: now) restores files from, when one is newer
    than `snapshot`: the newest taken in the history live at that moment, at or before it, of the same release and
    schema; else the one that history began with. None: the files are the snapshot's own."""
    moment = at or datetime.now(UTC)
    live = live_history(store, stack, moment)
    if live is None:
        return None
    manifest = snapshot.manifest
    taken = [
        volumes
        for volumes in list_snapshots(store, stack, VOLUMES)
        if volumes.manifest.release == manifest.release and volumes.manifest.schema_version == manifest.schema_version
    ]
    own = [volumes for volumes in taken if max(live.began(), manifest.created()) < volumes.manifest.created() <= moment]
    if own:
        return newest(own)
    if live.volumes is None or live.snapshot != snapshot.id:
        return None
    return listed(
        taken,
        live.volumes,
        f"stack {stack}: its history live at {moment.isoformat(timespec='seconds')} began with the files of snapshot "
        f"of volumes {live.volumes}, which store {store.location} no longer lists; nothing was changed. Restore the "
        f"snapshot as it is (--snapshot {snapshot.id}), or recover --at a later time.",
    )


def newest(snapshots: list[Snapshot]) -> Snapshot:
    return max(snapshots, key=lambda snapshot: (snapshot.manifest.created(), snapshot.id))


def listed(snapshots: list[Snapshot], snapshot_id: str, refusal: str) -> Snapshot:
    """The snapshot named among those listed; IntegrityError `refusal` when it is not (someone removed it)."""
    found = next((snapshot for snapshot in snapshots if snapshot.id == snapshot_id), None)
    if found is None:
        raise IntegrityError(refusal)
    return found


def taken_in(snapshot: Snapshot, live: HistoryStart) -> bool:
    """Whether a snapshot holds data of the history `live`: where its dumps say the log stood, or, when they say
    nothing (a database without a binlog, an import), whether it was taken after the history began."""
    databases = [artifact for artifact in snapshot.manifest.artifacts if artifact.kind == "database"]
    positions = [(artifact.name, artifact.log_start) for artifact in databases if artifact.log_start]
    if positions:
        return all(live.holds(name, position) for name, position in positions)
    return snapshot.manifest.created() >= live.began().replace(microsecond=0)


def recovery_base(store: Store, stack: str, at: datetime | None) -> Snapshot | None:
    """The snapshot a recovery to `at` (None: now, everything archived) restores once the stack's databases have
    begun histories of their logs: the newest backup taken in the history live at that moment, else the snapshot
    that history began from (its start says which log to replay onto it). None when no history applies."""
    moment = at or datetime.now(UTC)
    live = live_history(store, stack, moment)
    if live is None:
        return None
    snapshots = list_snapshots(store, stack)
    own = [snapshot for snapshot in snapshots if snapshot.manifest.created() <= moment and taken_in(snapshot, live)]
    if own:
        return newest(own)
    return listed(
        snapshots,
        live.snapshot,
        f"stack {stack}: its databases' history live at {moment.isoformat(timespec='seconds')} began from snapshot "
        f"{live.snapshot} (restored {live.began_at}), which store {store.location} no longer lists, and no backup was "
        f"taken in it; nothing was changed. Restore a snapshot the store lists with --snapshot.",
    )


def choose(store: Store, stack: str, snapshot_id: str | None, at: datetime | None) -> Snapshot | None:
    """The snapshot a deployment restores: the one named, or the base of a recovery to `at` (None: to the newest
    write), which the histories of the stack's databases decide once they exist; None when the stack has none."""
    if at is not None and snapshot_id is not None:
        raise ConfigError("choose either a snapshot or a recovery time (--at), not both; nothing was changed.")
    if snapshot_id is not None:
        return find_snapshot(store, stack, snapshot_id)
    return recovery_base(store, stack, at) or (snapshot_at(store, stack, at) if at else find_snapshot(store, stack))


def run(
    pinned: PinnedStack,
    store: Store,
    releases: ReleaseStore,
    snapshot_id: str | None = None,
    at: datetime | None = None,
) -> Snapshot:
    config = pinned.customer.config
    if snapshot_id is None and at is None:  # refusals that name what is wrong with the store, before the choice
        newest = find_snapshot(store, config.stack)
        if config.backup.retention.keep_incarnations:
            refuse_vanished_backup(pinned, store, newest)
    snapshot = choose(store, config.stack, snapshot_id, at)
    if snapshot is None:
        releases.refuse_withdrawn(config.product, config.release, f"new stack {config.stack} (it has no backup yet)")
    ensure_release_files(pinned, store, releases)
    if snapshot is None:
        vanilla = releases.vanilla(config.product, config.release)
        snapshot = copy_snapshot(releases.store, vanilla, store, config.stack)
    pinned.refuse_downgrade(snapshot.manifest.schema_version, f"snapshot {snapshot.id}")
    return snapshot
