"""Backup: a consistent dump of each database and an archive of each volume, streamed and cut into chunks, new
chunks stored; the manifest last, so a backup without one does not exist."""

import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from incarnate import datasources, settings
from incarnate.backup_format import (
    MANIFEST,
    VOLUMES,
    Snapshot,
    SnapshotWriter,
    WriteStats,
    new_snapshot_prefix,
    read_manifest,
    stack_prefix,
)
from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings
from incarnate.datasources import DataSource, at_once
from incarnate.datasources.database import Database
from incarnate.errors import IncarnateError, StageError
from incarnate.hooks import run_hooks, running_only
from incarnate.releases import ReleaseDescriptor, customer_releases
from incarnate.state import StackState, read_state
from incarnate.stores import Store, lock_description
from incarnate.stores.sealed import encryption_of

NAME = "backup"


@dataclass(frozen=True)
class BackupResult:
    snapshot: Snapshot
    stats: WriteStats
    seconds: float
    lock: str  # what the store says of write-once protection, for the report
    encryption: str  # encrypted (with what) or not

    @property
    def protection(self) -> str:
        return f"{self.encryption}; {self.lock}"


def run(
    project: ComposeProject, store: Store, lock_days: int = 0, lock_mode: str = "locked", base: str = "logical"
) -> BackupResult:
    """The stack as it runs now (its state says which release), into `store`; its databases as `base` says
    (logical dumps, or physical bases where the engine has them)."""
    state, release = deployed_release(project, store, "back up")
    return back_up(
        project,
        release,
        store,
        new_snapshot_prefix(project.name),
        lock_days,
        lock_mode,
        base=base,
        stack=project.name,
        schema_version=state.schema_version,
        config_commit=state.config_commit,
        origin="backup",
    )


def volumes(
    project: ComposeProject, store: Store, lock_days: int = 0, lock_mode: str = "locked"
) -> BackupResult | None:
    """The stack's volumes as they are now (no database), into a snapshot of volumes only, between the release's
    backup hooks like any backup: what a recovery --at restores files from when it is newer than the base. None
    when the release backs up no volume."""
    state, release = deployed_release(project, store, "snapshot the volumes of")
    if not any(name.startswith("volume-") for name in release.artifact_names):
        return None
    return back_up(
        project,
        release,
        store,
        new_snapshot_prefix(project.name, VOLUMES),
        lock_days,
        lock_mode,
        kinds=("volume",),
        stack=project.name,
        schema_version=state.schema_version,
        config_commit=state.config_commit,
        origin="volumes",
    )


def deployed_release(project: ComposeProject, store: Store, doing: str) -> tuple[StackState, ReleaseDescriptor]:
    """The host's state of the stack and the release it runs, as the store's copy of the release describes it. The
    stack is the project's, named by the customer repo the caller loaded; the host's own state must agree, never
    decide."""
    state = deployed_state(project, doing)
    return state, release_of(state, store)


def release_of(state: StackState, store: Store) -> ReleaseDescriptor:
    """The release a deployed stack runs, as the store's copy of the release describes it."""
    return customer_releases(store).descriptor(state.product, state.release).activated(state.services)


def deployed_state(project: ComposeProject, doing: str) -> StackState:
    """The host's state of the stack, when it names the stack of the customer repo the caller loaded."""
    state = read_state(project)
    if state is None:
        raise StageError(
            f"stack {project.name} is not deployed on host {project.host.name}; there is nothing to {doing}."
        )
    if state.stack != project.name:
        raise StageError(
            f"host {project.host.name}: the state of stack {project.name} ({project.workdir}/state.json) names "
            f"stack {state.stack}; refusing to {doing} under another stack's name. Nothing was written; "
            f"re-deploy stack {project.name} to write its state anew."
        )
    return state


def last_sizes(store: Store, stack: str) -> dict[str, int]:
    """Each artifact's size in the stack's newest snapshot: what progress expects this backup to read. Only that
    manifest is read (a stack may have hundreds); none when it cannot be."""
    manifests = sorted(
        key.removesuffix(f"/{MANIFEST}") for key in store.list(stack_prefix(stack)) if key.endswith(f"/{MANIFEST}")
    )
    try:
        newest = (
            read_manifest(store, max(manifests, key=lambda prefix: prefix.rsplit("/", 1)[-1])) if manifests else None
        )
    except IncarnateError:
        return {}
    return {artifact.name: artifact.size for artifact in newest.artifacts} if newest else {}


def back_up(
    project: ComposeProject,
    release: ReleaseDescriptor,
    store: Store,
    prefix: str,
    lock_days: int = 0,
    lock_mode: str = "locked",
    base: str = "logical",
    kinds: tuple[str, ...] = ("database", "volume"),
    **manifest: object,
) -> BackupResult:
    """Every database and volume (of `kinds`) of `release` as `project` runs it, into a snapshot at `prefix` (a
    stack's backup, or a release's vanilla backup when it is published), between the release's before_backup and
    after_backup hooks (the latter runs whether or not the backup succeeded); `manifest` names whose snapshot it is."""
    backup_hooks(project, release, "before_backup")
    try:
        result = write_snapshot(project, release, store, prefix, lock_days, lock_mode, base, kinds, **manifest)
    except BaseException:
        try:
            backup_hooks(project, release, "after_backup")
        except IncarnateError as error:  # the backup's own failure is the one to raise; this one is said
            print(f"stack {project.name}: after the failed backup, {error}")
        raise
    backup_hooks(project, release, "after_backup")
    return result


def for_update(settings: BackupSettings, old: ReleaseDescriptor, new: ReleaseDescriptor) -> BackupSettings:
    """The pre-update backup's settings: dumps when the new release runs a database in another image (a physical
    base loads only into the server version it was taken of; a dump into any)."""
    moved = [spec.service for spec in old.databases if old.images.get(spec.service) != new.images.get(spec.service)]
    return settings.model_copy(update={"base": "logical"}) if moved else settings


def backup_hooks(project: ComposeProject, release: ReleaseDescriptor, point: str) -> None:
    run_hooks(project, point, running_only(project, point, release.hooks_at(point)), release.hidden_variables)


def write_snapshot(
    project: ComposeProject,
    release: ReleaseDescriptor,
    store: Store,
    prefix: str,
    lock_days: int,
    lock_mode: str,
    base: str = "logical",
    kinds: tuple[str, ...] = ("database", "volume"),
    **manifest: object,
) -> BackupResult:
    began = time.monotonic()
    lock_until = datetime.now(UTC) + timedelta(days=lock_days) if lock_days else None
    sources = [source for source in datasources.for_release(project, release, base) if source.kind in kinds]
    for source in sources:
        if isinstance(source, Database) and (reason := source.dumped_instead()):
            print(f"stack {project.name}: {source.artifact} dumped ({reason})")
    for source in sources:
        if ended := source.end_orphans():
            print(
                f"stack {project.name}: ended {ended} orphaned {source.program} of {source.artifact} left behind by "
                f"an earlier run that was killed"
            )
    expected = last_sizes(store, str(manifest["stack"]))
    with SnapshotWriter(store, prefix, lock_until=lock_until, lock_mode=lock_mode) as writer:

        def store_artifact(source: DataSource) -> None:
            with source.dump() as stream:
                writer.add(
                    source.artifact,
                    source.kind,
                    source.target,
                    source.engine,
                    stream,
                    source.row_counter(),
                    expected.get(source.artifact),
                )

        def end_dumps() -> None:
            for source in sources:
                with suppress(IncarnateError):  # the failure that brought us here is the one to report
                    source.end_orphans()  # a dump that stalled, or whose store failed, may still run in its container

        failures = at_once(store_artifact, sources, settings.parallel_artifacts(), end_dumps)
        if failures:
            end_dumps()
            raise failures[0]
        writer.order([source.artifact for source in sources])
        snapshot = writer.commit(product=release.product, release=release.release, **manifest)
    return BackupResult(
        snapshot,
        writer.stats,
        time.monotonic() - began,
        lock_description(store, lock_days, lock_mode),
        encryption_of(store),
    )
