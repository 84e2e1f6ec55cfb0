"""The sequence every deploying flow runs: restore, start, migrate; then the closing backup."""

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

from flows.report import StageReport, publish_backup
from incarnate import stages
from incarnate.backup_format import Snapshot
from incarnate.compose import ComposeProject
from incarnate.pinned import PinnedStack
from incarnate.readiness import Readiness
from incarnate.releases import ReleaseDescriptor
from incarnate.stages.backup import BackupResult
from incarnate.stages.restore import LOADED, Recovery, Replayed, describe_origin, kept_all, runs_snapshot_data
from incarnate.stores import Store
from tasks.backup import backup
from tasks.chores import check
from tasks.migrate import migrate
from tasks.restore import replay, restore
from tasks.start import hooks, start

AS_SNAPSHOT = Recovery(apply_logs=False)  # a rollback's, an update's: no log replayed onto the snapshot


@dataclass(frozen=True)
class BroughtUp:
    outcome: dict[str, str]  # per artifact: loaded, or kept (not empty)
    readiness: Readiness  # what the stack reported once it ran the release
    hooked: list[str]  # the hook points that ran commands (which may have changed the data)
    rows: dict[str, int]  # per table, as restored (counted before the app started), when asked to check them
    replayed: Replayed | None  # what the replay of archived logs reached (None: nothing was loaded to replay onto)

    def origin(self, snapshot_id: str) -> str:
        return describe_origin(snapshot_id, self.outcome)

    def recovery_point(self) -> str | None:
        """The newest write the stack's data holds by its backup and archived logs (None: nothing was loaded)."""
        point = self.replayed.recovery_point() if self.replayed else None
        return point.isoformat(timespec="seconds") if point else None


def bring_up(
    report: StageReport | None,
    project: ComposeProject,
    pinned: PinnedStack,
    store: Store,
    snapshot: Snapshot,
    adopt_data: bool = False,
    update: bool = False,
    check_rows: bool = False,
    restored: Callable[[], dict[str, str]] | None = None,
    suffix: str = "",
    recovery: Recovery = AS_SNAPSHOT,
) -> BroughtUp:
    """Restore, start (with the release's hooks), migrate: the stages every deploying flow runs in this order, each
    reported (unless `report` is None: an update's rollback reports them as one step of its own). With `check_rows`
    the restored rows are checked against the backup's counts before the app starts (a running app changes them).
    `restored` loads the data instead of the customer's restore (publishing's proof of a vanilla backup); `suffix`
    follows each stage's name in the report. Once their rows are checked, the databases loaded are brought forward
    by their archived logs as `recovery` says (a rollback or an update restores its snapshot as it was)."""
    stage = (lambda name: report.stage(f"{name}{suffix}")) if report else lambda name: nullcontext({})
    with stage(stages.restore.NAME) as row:
        if recovery.apply_logs and not restored:  # files from the newest snapshot of volumes the recovery may use
            newer = stages.fetch_backup.volumes_for(store, snapshot.manifest.stack, snapshot, recovery.at)
            recovery = replace(recovery, volumes=newer)
        outcome = restored() if restored else restore(project, pinned, store, snapshot, adopt_data, recovery.volumes)
        row["detail"] = ", ".join(f"{artifact}: {result}" for artifact, result in outcome.items())
    rows = {}
    if check_rows:
        with stage("check") as row:
            rows = check(project, pinned.release, snapshot)
            row["detail"] = describe_rows(snapshot, rows)
    replayed = None
    if LOADED in outcome.values() or recovery.at is not None:
        with stage(stages.restore.REPLAY) as row:
            backup = pinned.customer.config.backup
            locked = replace(recovery, lock_days=backup.lock_days, lock_mode=backup.lock_mode, base=backup.base)
            replayed = replay(project, pinned.release, store, snapshot, outcome, locked)
            row["detail"] = replayed.describe()
    with stage(stages.start.NAME) as row:
        if removed := start(project):
            row["detail"] = f"{', '.join(removed)} no longer activated: container removed, volumes kept"
    from_vanilla = snapshot.manifest.origin == "vanilla" and LOADED in outcome.values()
    hooked = run_hook_points(stage, project, pinned.release, stages.start.hook_points(from_vanilla, update))
    with stage(stages.migrate.NAME) as row:
        readiness = migrate(project, pinned, snapshot, kept_all(outcome))
        row["detail"] = readiness.describe()
    return BroughtUp(outcome, readiness, hooked, rows, replayed)


def run_hook_points(
    stage: Callable[[str], AbstractContextManager[dict]],
    project: ComposeProject,
    release: ReleaseDescriptor,
    points: list[str],
) -> list[str]:
    """The release's hooks at each of `points` that has any, each point a reported stage; the points that ran."""
    ran = [point for point in points if release.hooks_at(point)]
    for point in ran:
        with stage(f"{point} hooks") as row:
            row["detail"] = hooks(project, release, point)
    return ran


def describe_rows(snapshot: Snapshot, rows: dict[str, int]) -> str:
    compared = "rows as backed up" if snapshot.manifest.rows() is not None else "rows (not counted by this backup)"
    return f"{compared}: " + ", ".join(f"{table} {count}" for table, count in rows.items())


@dataclass(frozen=True)
class Closing:
    snapshot_id: str  # the deployment's backup: a new snapshot, or the restored one when the data is exactly its
    result: BackupResult | None  # None: no backup ran


def closing_backup(
    report: StageReport,
    project: ComposeProject,
    pinned: PinnedStack,
    store: Store,
    source: Snapshot,
    brought: BroughtUp,
) -> Closing:
    """The backup a deployment ends with, unless the stack runs exactly the data it restored (every artifact loaded
    from `source`, no log replayed, no migration, no hook) and its databases' logs can be replayed onto `source`
    (PostgreSQL's only onto a physical base): then `source` already is that backup, and re-reading it all would store
    nothing."""
    with report.stage(stages.backup.NAME) as row:
        replayed = brought.replayed is not None and (brought.replayed.applied or brought.replayed.needs_base)
        if runs_snapshot_data(source, brought.outcome, pinned.release) and not brought.hooked and not replayed:
            row["detail"] = (
                f"not needed: the stack runs the data of {source.id} unchanged (schema "
                f"{source.manifest.schema_version}, nothing kept, no migration, no hook); recorded as this "
                f"deployment's backup"
            )
            print(f"stack {pinned.stack}: closing backup {row['detail']}")
            return Closing(source.id, None)
        after = backup(project, store, pinned.customer.config.backup)
        row["detail"] = f"{after.snapshot.id}: {after.stats.new_bytes:,} new bytes; {after.protection}"
    publish_backup(pinned.stack, after)
    return Closing(after.snapshot.id, after)
