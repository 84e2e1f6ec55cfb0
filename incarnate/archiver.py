"""The archiver: a deployed stack's database logs shipped into its store, round after round (incarnate.log_archive
says how one database's log is shipped)."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from incarnate import datasources, log_archive
from incarnate.compose import ComposeProject
from incarnate.config import BackupSettings
from incarnate.datasources.database import Database
from incarnate.log_archive import Shipped, ship
from incarnate.stages.backup import deployed_release
from incarnate.stores import Store


@dataclass(frozen=True)
class Round:
    """One round of a stack's archiving."""

    stack: str
    shipped: list[Shipped]  # per database that writes a log
    not_archived: list[str]  # databases whose recovery point stays the last backup, and why

    def newest_event(self) -> datetime | None:
        newest = max((result.newest_event or 0 for result in self.shipped), default=0)
        return datetime.fromtimestamp(newest, UTC) if newest else None

    def describe(self) -> str:
        return f"stack {self.stack}: " + "; ".join(
            [result.describe() for result in self.shipped]
            + [f"{reason} (recovery point: last backup)" for reason in self.not_archived]
        )


def ship_stack(project: ComposeProject, store: Store, backup: BackupSettings, look_up: bool = False) -> Round:
    """Ship what the store lacks of the log of every database of the stack as it runs now; with `look_up`, the
    newest write archived before this round is read from the store when this round shipped none."""
    _, release = deployed_release(project, store, "archive")
    lock_until = datetime.now(UTC) + timedelta(days=backup.lock_days) if backup.lock_days else None
    shipped, not_archived = [], []
    for source in datasources.for_release(project, release, backup.base):
        if not isinstance(source, Database):
            continue
        result = ship(store, project.name, source, lock_until, backup.lock_mode)
        if result is None:
            not_archived.append(f"{source.artifact}: {source.archiving()}")
            continue
        if look_up and result.newest_event is None:
            result.newest_event = log_archive.newest_event(store, project.name, source.artifact)
        shipped.append(result)
    return Round(project.name, shipped, not_archived)
