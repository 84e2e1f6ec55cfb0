"""The archiver: a deployed stack's database logs shipped into its store, round after round (incarnate.log_archive
says how one database's log is shipped)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from incarnate import datasources, log_archive
from incarnate.backup_format import newest_taken
from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings
from incarnate.datasources.database import Database
from incarnate.errors import IncarnateError
from incarnate.log_archive import Shipped, ship
from incarnate.stages.backup import deployed_state, release_of, volumes
from incarnate.state import StackState
from incarnate.stores import Store


@dataclass(frozen=True)
class Round:
    """One round of a stack's archiving."""

    stack: str
    shipped: list[Shipped]  # per database that writes a log
    not_archived: list[str]  # databases whose recovery point stays the last backup, and why
    volumes: str | None = None  # the snapshot of volumes this round took (backup.volume_interval), or why it failed

    def newest_event(self) -> datetime | None:
        newest = max((result.newest_event or 0 for result in self.shipped), default=0)
        return datetime.fromtimestamp(newest, UTC) if newest else None

    def describe(self) -> str:
        return f"stack {self.stack}: " + "; ".join(
            [result.describe() for result in self.shipped]
            + [f"{reason} (recovery point: last backup)" for reason in self.not_archived]
            + ([self.volumes] if self.volumes else [])
        )


@dataclass
class Kept:
    """A stack's databases as its last round met them, kept while the host's state of the stack stays the same (one
    deployment): a round then asks each server for its log only, not again for its settings and container (three
    `docker` processes a stack became one: a hundred stacks a round on one host core took 64 s)."""

    state: StackState | None = None
    databases: list[Database] = field(default_factory=list)


def ship_stack(
    project: ComposeProject, store: Store, backup: BackupSettings, look_up: bool = False, kept: Kept | None = None
) -> Round:
    """Ship what the store lacks of the log of every database of the stack as it runs now; with `look_up`, the
    newest write archived before this round is read from the store when this round shipped none. With `kept`, the
    databases met by the last round are asked first, and met afresh when that fails (a container replaced)."""
    state = deployed_state(project, "archive")
    if kept is not None and kept.state == state:
        try:
            return ship_databases(project, store, backup, kept.databases, look_up)
        except IncarnateError:
            pass  # what failed is asked again below of the databases as they run now, and said if it fails again
    sources = datasources.for_release(project, release_of(state, store), backup.base)
    databases = [source for source in sources if isinstance(source, Database)]
    result = ship_databases(project, store, backup, databases, look_up)
    if kept is not None:
        kept.state, kept.databases = state, databases
    return result


def ship_databases(
    project: ComposeProject, store: Store, backup: BackupSettings, databases: list[Database], look_up: bool
) -> Round:
    lock_until = datetime.now(UTC) + timedelta(days=backup.lock_days) if backup.lock_days else None
    shipped, not_archived = [], []
    for source in databases:
        result = ship(store, project.name, source, lock_until, backup.lock_mode)
        if result is None:
            not_archived.append(f"{source.artifact}: {source.archiving()}")
            continue
        if look_up and result.newest_event is None:
            result.newest_event = log_archive.newest_event(store, project.name, source.artifact)
        shipped.append(result)
    # Only once every database began its history: a stack being restored has loaded volumes only in part.
    begun = bool(shipped) and not any(result.unbegun for result in shipped)
    volumes = snapshot_volumes_if_due(project, store, backup) if begun else None
    return Round(project.name, shipped, not_archived, volumes)


def snapshot_volumes_if_due(project: ComposeProject, store: Store, backup: BackupSettings) -> str | None:
    """A snapshot of the stack's volumes when its newest snapshot is older than backup.volume_interval; what it
    took, or why it failed (said, not raised: the logs were shipped, and the next round tries again)."""
    every = backup.volume_seconds()
    newest = newest_taken(store, project.name) if every else None
    if not every or (newest is not None and (datetime.now(UTC) - newest).total_seconds() < every):
        return None
    try:
        result = volumes(project, store, backup.lock_days, backup.lock_mode)
    except IncarnateError as error:
        return f"snapshot of volumes failed: {error}"
    if result is None:
        return None
    stats = result.stats
    return f"snapshot of volumes {result.snapshot.id} ({stats.raw_bytes:,} bytes, {stats.new_bytes:,} new)"
