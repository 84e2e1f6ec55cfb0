"""Data sources: what a snapshot holds, one artifact each, either a database of some engine or a file volume.

Every source offers the same operations, so backup and restore loop once over a release's data
instead of branching on its kind:

    is_empty() -> bool                 restore loads only into an empty target
    dump()     -> context manager      yielding the raw stream a backup chunks into the store
    load(stream)                       restore writes a verified stream into the target
    reset()                            back to empty after a failed load

A database engine is one module here with a `Database` subclass, named in ENGINES: adding an
engine is adding a file. `volume.py` archives Compose volumes through a helper container.
"""

import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol, TypeVar

from incarnate.backup_format import Artifact
from incarnate.compose import ComposeProject
from incarnate.datasources.database import Database, RowCounter
from incarnate.datasources.mariadb import MariaDB
from incarnate.datasources.postgresql import PostgreSQL
from incarnate.datasources.volume import Volume
from incarnate.errors import IntegrityError


class DeclaredDatabase(Protocol):
    name: str
    service: str
    engine: str


class DeclaredVolume(Protocol):
    name: str


class DeclaredData(Protocol):
    """What a release declares of its data (release.yaml's `databases` and `volumes`); releases.py validates engine
    names against ENGINES, so this package does not import it."""

    databases: Sequence[DeclaredDatabase]
    volumes: Sequence[DeclaredVolume]


ENGINES: dict[str, type[Database]] = {engine.engine: engine for engine in (MariaDB, PostgreSQL)}


class DataSource(Protocol):
    kind: str  # "database" or "volume", as the manifest records it
    target: str  # the database's or the Compose volume's name
    engine: str | None  # the database engine; None for a volume
    program: str  # what dumps it, as an operator reads it (mariadb-dump, pg_dump, archive helper)

    @property
    def artifact(self) -> str:
        """The artifact's name in a manifest."""

    def is_empty(self) -> bool: ...

    def wait_until_serving(self, seconds: float) -> None:
        """Until the target answers as the server that stays (a database); at once for a volume."""

    def dump(self) -> AbstractContextManager[BinaryIO]: ...

    def load(self, source: BinaryIO) -> None: ...

    def reset(self) -> None: ...

    def row_counter(self) -> RowCounter | None:
        """Counts the rows of the dump as it streams; None for a volume."""

    def end_orphans(self) -> int:
        """End what a killed run left dumping this source; how many were ended."""


def for_release(project: ComposeProject, release: DeclaredData, base: str = "logical") -> list[DataSource]:
    """The stack's data as its release declares it: every database, then every volume; `base` says how databases
    are backed up (logical dumps, or physical bases where the engine has them)."""
    return [
        *(ENGINES[spec.engine](project, spec.name, spec.service, base) for spec in release.databases),
        *(Volume(project, spec.name) for spec in release.volumes),
    ]


def for_artifacts(
    sources: list[DataSource], artifacts: list[Artifact], project: ComposeProject, where: str
) -> Iterator[tuple[Artifact, DataSource]]:
    """Each artifact of a snapshot with the source it restores into. A volume the release no longer declares is
    still restored (Compose keeps unknown volumes); a database it does not declare has no service to load it."""
    by_name = {source.artifact: source for source in sources}
    for artifact in artifacts:
        source = by_name.get(artifact.name)
        if source is None and artifact.kind == "volume":
            source = Volume(project, artifact.target)
        if source is None:
            raise IntegrityError(
                f"{where}: artifact {artifact.name} is a database the release does not declare; restore refused."
            )
        yield artifact, source


Item = TypeVar("Item")


def at_once(
    work: Callable[[Item], None], items: list[Item], parallel: int, stop: Callable[[], None]
) -> list[BaseException]:
    """`work` for every item (a source to dump, an artifact to load), up to `parallel` at a time: a database and a
    volume use different things (the database's CPU, the volume's disk). The failures, first the first. Once one
    failed, no other starts, and `stop` ends what the others still do (a failed backup does not wait for the rest
    of a large volume)."""
    failures: list[BaseException] = []
    guard = threading.Lock()

    def guarded(item: Item) -> None:
        if failures:
            return
        try:
            work(item)
        except BaseException as failure:  # noqa: BLE001 - handed to the caller, which raises it
            with guard:
                failures.append(failure)
                first = len(failures) == 1
            if first:
                stop()

    # Each in a copy of the caller's context: progress displays and Prefect's run logging live there.
    contexts = [contextvars.copy_context() for _ in items]
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="artifact") as pool:
        list(pool.map(lambda context, item: context.run(guarded, item), contexts, items))
    return failures


def row_differences(restored: dict[str, int], backed_up: dict[str, int]) -> list[str]:
    """Each table whose restored rows differ from what the backup counted, as `db.table: N restored, M backed up`."""
    return [
        f"{table}: {restored.get(table, 0)} restored, {backed_up.get(table, 0)} backed up"
        for table in sorted(set(restored) | set(backed_up))
        if restored.get(table, 0) != backed_up.get(table, 0)
    ]


def row_counts(sources: list[DataSource]) -> dict[str, int]:
    """Rows per table of every database among the sources, as `database.table`."""
    counts = {}
    for source in sources:
        if isinstance(source, Database):
            counts.update({f"{source.target}.{table}": rows for table, rows in source.row_counts().items()})
    return counts
