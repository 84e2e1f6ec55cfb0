"""Retention: which snapshots to keep (daily/weekly/monthly), and pruning that respects write-once locks.

Pruning forgets snapshots outside the policy (deletes their manifests), then, holding the store's exclusive
lock (no backup, copy, restore or verify runs meanwhile), deletes the chunks no remaining snapshot of any stack
in the store references. It never deletes what the server still locks, no chunk while any manifest in the store
cannot be read, and when the lock cannot be had in time it skips the clean-up (a later prune does it): a prune
never fails because other stacks are busy.

With many stacks in one store, their prunes queue for the exclusive lock at 02:00, and each sweep lists every
chunk of the store while no backup may run. So a sweep marks its start and its end in the store

    sweeps/<token>.started, sweeps/<token>.done

and a prune whose turn comes after a sweep that started once its own forgetting was done (a start it had not
seen then) and finished, has nothing left to delete: it says so and lets the backups go on at once.
"""

import secrets
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from incarnate import settings
from incarnate.backup_format import MANIFEST, VOLUMES, Snapshot, list_snapshots, scan_snapshots
from incarnate.config import Retention
from incarnate.incarnations import rollback_targets
from incarnate.log_archive import log_chunk_ids, prune_logs
from incarnate.stores import Store
from incarnate.stores.locking import DONE, STARTED, SWEEPS, StoreBusy, exclusive_lock, sweep_marks


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
    log_pieces_deleted: int = 0  # archived log no kept snapshot needs
    volume_snapshots_forgotten: int = 0  # snapshots of volumes older than every kept snapshot
    clean_up_skipped: str | None = None  # why no chunk was deleted this time
    swept_by: str | None = None  # the sweep of another prune that deleted what this one forgot

    def summary(self) -> str:
        verb = "would forget" if self.dry_run else "forgot"
        text = (
            f"kept {len(self.kept)} snapshots, {verb} {len(self.forgotten)}"
            f"{f' ({len(self.locked_snapshots)} more still locked)' if self.locked_snapshots else ''}; "
            f"{'would delete' if self.dry_run else 'deleted'} {self.chunks_deleted} unreferenced chunks"
        )
        if self.chunks_locked:
            text += f", {self.chunks_locked} unreferenced chunks still locked"
        if self.volume_snapshots_forgotten:
            verb = "would forget" if self.dry_run else "forgot"
            text += f"; {verb} {self.volume_snapshots_forgotten} snapshots of volumes older than every kept snapshot"
        if self.log_pieces_deleted:
            text += f"; {'would delete' if self.dry_run else 'deleted'} {self.log_pieces_deleted} archived log pieces"
        if self.swept_by:
            text += f" (the store was swept after this prune forgot its snapshots, by {self.swept_by})"
        if self.clean_up_skipped:
            text += f"; chunk clean-up skipped: {self.clean_up_skipped}"
        return text


def _locked(store: Store, key: str, now: datetime) -> bool:
    until = store.locked_until(key)
    return until is not None and until > now


def forget(
    store: Store, stack: str, policy: Retention, result: PruneResult, now: datetime, protected: set[str]
) -> set[str]:
    """Delete the manifests of the stack's snapshots the policy does not keep (never one still locked, never one
    in `protected`: the backups of recent incarnations); their prefixes."""
    snapshots = list_snapshots(store, stack)
    kept = select_kept(snapshots, policy, now) | protected
    forgotten = set()
    for snapshot in snapshots:
        manifest_key = f"{snapshot.prefix}/{MANIFEST}"
        if snapshot.id in kept:
            result.kept.append(snapshot.id)
        elif _locked(store, manifest_key, now):
            result.locked_snapshots.append(snapshot.id)
        else:
            result.forgotten.append(snapshot.id)
            forgotten.add(snapshot.prefix)
            if not result.dry_run:
                store.delete(manifest_key)
    return forgotten


def forget_volume_snapshots(
    store: Store, stack: str, kept: list[Snapshot], result: PruneResult, now: datetime
) -> set[str]:
    """Delete the manifests of the stack's snapshots of volumes taken before its oldest kept snapshot (no recovery
    can start before that one; none is forgotten while no snapshot is kept) unless still locked; their prefixes."""
    oldest = min((snapshot.manifest.created() for snapshot in kept), default=None)
    forgotten = set()
    for snapshot in list_snapshots(store, stack, VOLUMES) if oldest else []:
        manifest_key = f"{snapshot.prefix}/{MANIFEST}"
        if snapshot.manifest.created() >= oldest or _locked(store, manifest_key, now):
            continue
        result.volume_snapshots_forgotten += 1
        forgotten.add(snapshot.prefix)
        if not result.dry_run:
            store.delete(manifest_key)
    return forgotten


def sweep(store: Store, forgotten: set[str], result: PruneResult, now: datetime) -> None:
    """Delete every chunk no readable snapshot (whole, or of volumes) references; nothing when any manifest cannot
    be read."""
    whole, unreadable = scan_snapshots(store)
    volumes, unreadable_volumes = scan_snapshots(store, root=VOLUMES)
    snapshots, unreadable = whole + volumes, unreadable + unreadable_volumes
    if unreadable:
        result.clean_up_skipped = (
            f"manifest {unreadable[0].prefix} cannot be read and may reference any chunk "
            f"({len(unreadable)} such); repair or remove it"
        )
        return
    logged, unreadable_piece = log_chunk_ids(store)
    if unreadable_piece:
        result.clean_up_skipped = f"archived log piece {unreadable_piece} cannot be read and may reference any chunk"
        return
    referenced = logged.union(
        *(snapshot.manifest.chunk_ids() for snapshot in snapshots if snapshot.prefix not in forgotten)
    )
    for key in store.list("chunks"):
        if key.rsplit("/", 1)[-1] in referenced:
            continue
        if _locked(store, key, now):
            result.chunks_locked += 1
            continue
        result.chunks_deleted += 1
        if not result.dry_run:
            store.delete(key)


def sweep_since(store: Store, seen: set[str]) -> str | None:
    """A sweep that started after `seen` was listed, and finished: it read the manifests after they were."""
    return next(
        (
            f"sweep {token}"
            for token, marks in sorted(sweep_marks(store).items())
            if token not in seen and marks == {STARTED, DONE}
        ),
        None,
    )


def marked_sweep(store: Store, forgotten: set[str], result: PruneResult, now: datetime) -> None:
    """Sweep, its start and end marked in the store; the marks of earlier sweeps go (this one covers what they did)."""
    token = secrets.token_hex(8)
    earlier = sweep_marks(store)
    store.put(f"{SWEEPS}/{token}{STARTED}", b"")
    sweep(store, forgotten, result, now)
    if result.clean_up_skipped:
        return  # it deleted nothing: a prune waiting for a sweep must not count on this one
    store.put(f"{SWEEPS}/{token}{DONE}", b"")
    for other, marks in earlier.items():
        for mark in marks:
            store.delete(f"{SWEEPS}/{other}{mark}")


def prune(
    store: Store,
    stack: str,
    policy: Retention,
    dry_run: bool = False,
    now: datetime | None = None,
    wait_seconds: float | None = None,
    protected: set[str] = frozenset(),
) -> PruneResult:
    now = now or datetime.now(UTC)
    result = PruneResult(dry_run=dry_run)
    forgotten = forget(store, stack, policy, result, now, protected)
    kept = [snapshot for snapshot in list_snapshots(store, stack) if snapshot.prefix not in forgotten]
    forgotten |= forget_volume_snapshots(store, stack, kept, result, now)
    logs = prune_logs(store, stack, kept, lambda key: _locked(store, key, now), dry_run)
    result.log_pieces_deleted = logs.pieces_deleted
    if dry_run:
        sweep(store, forgotten, result, now)  # only reads: needs no lock
        return result
    seen = set(sweep_marks(store))  # after forgetting: a sweep not yet started reads the manifests as they are now
    wait = settings.prune_wait() if wait_seconds is None else wait_seconds
    try:
        with exclusive_lock(store, f"prune of stack {stack}", wait):
            result.swept_by = sweep_since(store, seen)
            if not result.swept_by:
                marked_sweep(store, forgotten, result, now)
    except StoreBusy as busy:
        result.clean_up_skipped = f"{busy} A later prune deletes the unreferenced chunks."
    return result


def prune_stack(store: Store, repo: str, stack: str, policy: Retention, dry_run: bool = False) -> PruneResult:
    """A stack's retention as the backup flow and `incarnate prune` apply it: the backups its last
    `keep_incarnations` incarnations list (what `incarnate rollback` restores) are kept too."""
    protected = rollback_targets(repo, stack, policy.keep_incarnations)
    return prune(store, stack, policy, dry_run=dry_run, protected=protected)
