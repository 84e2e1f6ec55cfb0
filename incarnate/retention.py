"""Retention: which snapshots to keep (daily/weekly/monthly), and pruning that respects write-once locks.

Pruning forgets snapshots outside the policy (deletes their manifests), then deletes the
chunks no remaining snapshot of any stack in the store references. It never deletes what
the server still locks, and it leaves chunks alone while a backup is under way.
"""

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from incarnate.config import Retention
from incarnate.backup_format import MANIFEST, PENDING, Snapshot, list_snapshots
from incarnate.stores import Store

PENDING_EXPIRY = timedelta(hours=24)  # a marker older than this belongs to a killed backup


def _age_order(snapshot: Snapshot) -> tuple[datetime, str]:
    """Creation time, then id: ids sort by time to the second and break ties within it."""
    return snapshot.manifest.created(), snapshot.id


def _newest_per_bucket(snapshots: list[Snapshot], bucket: Callable[[datetime], Hashable], count: int) -> set[str]:
    """The newest snapshot in each of the `count` newest buckets (days, weeks, months) that have one."""
    kept, seen = set(), []
    for snapshot in sorted(snapshots, key=_age_order, reverse=True):
        key = bucket(snapshot.manifest.created())
        if key in seen:
            continue
        if len(seen) == count:
            break
        seen.append(key)
        kept.add(snapshot.id)
    return kept


def select_kept(snapshots: list[Snapshot], policy: Retention, now: datetime) -> set[str]:
    """Ids the policy keeps: the newest always, anything younger than min_age_days, and per bucket the newest."""
    if not snapshots:
        return set()
    kept = {max(snapshots, key=_age_order).id}
    kept |= {s.id for s in snapshots if now - s.manifest.created() < timedelta(days=policy.min_age_days)}
    kept |= _newest_per_bucket(snapshots, lambda t: t.date(), policy.keep_daily)
    kept |= _newest_per_bucket(snapshots, lambda t: t.isocalendar()[:2], policy.keep_weekly)
    kept |= _newest_per_bucket(snapshots, lambda t: (t.year, t.month), policy.keep_monthly)
    return kept


@dataclass
class PruneResult:
    dry_run: bool
    kept: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    locked_snapshots: list[str] = field(default_factory=list)
    chunks_deleted: int = 0
    chunks_locked: int = 0
    chunks_skipped_busy: bool = False

    def summary(self) -> str:
        verb = "would forget" if self.dry_run else "forgot"
        text = (f"kept {len(self.kept)} snapshots, {verb} {len(self.forgotten)}"
                f"{f' ({len(self.locked_snapshots)} more still locked)' if self.locked_snapshots else ''}; "
                f"{'would delete' if self.dry_run else 'deleted'} {self.chunks_deleted} unreferenced chunks")
        if self.chunks_locked:
            text += f", {self.chunks_locked} unreferenced chunks still locked"
        if self.chunks_skipped_busy:
            text += "; chunk clean-up skipped: a backup is under way in this store"
        return text


def _locked(store: Store, key: str, now: datetime) -> bool:
    until = store.locked_until(key)
    return until is not None and until > now


def backups_under_way(store: Store, now: datetime) -> bool:
    """Whether a backup has started and not committed (its new chunks are not referenced yet)."""
    busy = False
    for key in store.list(PENDING):
        try:
            started = datetime.fromisoformat(store.get(key).decode())
        except (ValueError, UnicodeDecodeError):
            started = now
        if now - started < PENDING_EXPIRY:
            busy = True
    return busy


def prune(store: Store, stack: str, policy: Retention, dry_run: bool = False, now: datetime | None = None) -> PruneResult:
    now = now or datetime.now(UTC)
    result = PruneResult(dry_run=dry_run)
    snapshots = list_snapshots(store, stack)
    kept = select_kept(snapshots, policy, now)
    for snapshot in snapshots:
        manifest_key = f"{snapshot.prefix}/{MANIFEST}"
        if snapshot.id in kept:
            result.kept.append(snapshot.id)
        elif _locked(store, manifest_key, now):
            result.locked_snapshots.append(snapshot.id)
        else:
            result.forgotten.append(snapshot.id)
            if not dry_run:
                store.delete(manifest_key)
    if backups_under_way(store, now):
        result.chunks_skipped_busy = True
        return result
    forgotten = {snapshot.prefix for snapshot in snapshots if snapshot.id in result.forgotten}
    # Read the store's manifests again, after the check for running backups: a backup of any
    # stack that committed since the first read must protect the chunks it references.
    remaining = [snapshot for snapshot in list_snapshots(store) if snapshot.prefix not in forgotten]
    referenced = set().union(*(snapshot.manifest.chunk_ids() for snapshot in remaining))
    for key in store.list("chunks"):
        if key.rsplit("/", 1)[-1] in referenced:
            continue
        if _locked(store, key, now):
            result.chunks_locked += 1
            continue
        result.chunks_deleted += 1
        if not dry_run:
            store.delete(key)
    return result
