"""Continuous archiving: a database's log shipped into the stack's store as it grows, replayed by a recovery.

    logs/<stack>/<artifact>/<file>/<offset>-<end>[.final].json     bytes offset..end of one log file (.final: and
                                                                    the server had closed the file there)

A piece holds whole events only, is chunked, sealed, create-only and locked as a snapshot's artifacts are, and
names its byte range, so the store's listing alone says how far each file is archived. A base backup (a snapshot's
database artifact) records where the log stood when its dump was consistent (`log_start`); a recovery loads that
dump and replays the archived log from there, to its end or up to a chosen second.

Each history of a database gets a number of its own, which its log files' names say: a restore that loads a
database starts a new history (MariaDB: RESET MASTER TO the next range of RANGE file numbers; PostgreSQL: the next
timeline, incarnate.wal), so the pieces of the server that was lost and of the one that replaced it never share a
file name, and a replay never runs from one history into another.
"""

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from incarnate import wal
from incarnate.backup_format import Artifact, Snapshot, SnapshotWriter, chunk_stream
from incarnate.errors import ConfigError, IntegrityError, ObjectMissing
from incarnate.stores import Store

LOGS = "logs"
FORMAT = 1
RANGE = 100_000  # log file numbers of one history of a database: 100,000 files of up to ROTATE_BYTES each
READ_LIMIT = 64 << 20  # read of a log file per piece: memory stays bounded whatever the shipper fell behind
ROTATE_BYTES = 16 << 20  # a log file longer is closed (the next written): a replay holds one file in memory
UNBEGUN = (
    "not archived: the server's log has not begun a history of incarnate's (a restore is under way, or the stack "
    "was deployed before archiving existed or with logical bases of PostgreSQL: its next deployment begins one)"
)
PIECE = re.compile(r"^(?P<file>[^/]+)/(?P<offset>\d{16})-(?P<end>\d{16})(?P<final>\.final)?\.json$")


class LogFile(NamedTuple):
    name: str
    size: int


class LogSource(Protocol):
    """A database whose engine can archive its log (incarnate.datasources' engines)."""

    artifact: str
    target: str

    def log_files(self) -> list[LogFile] | None:
        """The log files the server keeps, oldest first (the last is being written); None when it writes none."""

    def read_log(self, name: str, offset: int, limit: int) -> bytes:
        """At most `limit` bytes of log file `name` from `offset`."""

    def whole_events(self, name: str, data: bytes, offset: int) -> tuple[int, int | None, int | None]:
        """How many bytes of `data` (file `name`'s from `offset`) may be shipped (whole events); the first and last
        time a transaction ended in them."""

    def cut_before(self, data: bytes, offset: int, second: int) -> tuple[int, int | None]:
        """Where to cut `data` (a file's from `offset`) so it holds only what was written before `second`; the
        time of the last event it keeps."""

    def purge_logs_before(self, name: str) -> None:
        """Let the server delete its log files older than `name` (they are archived)."""

    def rotate_log(self) -> None:
        """Close the log file being written and begin the next."""

    def begin_history(self, history: int) -> None:
        """Start the server's log anew as history `history` (a restored server: its log so far is the restore's)."""

    def replay(self, data: bytes, start: int, what: str) -> None:
        """Apply a log file's events from byte `start` onto the database."""


class LogPiece(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    stack: str
    database: str  # the artifact's name, as a snapshot's manifest has it
    file: str
    offset: int
    final: bool  # the server had closed the file: nothing follows this piece in it
    first_event: int | None  # seconds since the epoch, UTC, as the database server's clock said
    last_event: int | None
    shipped_at: str
    data: Artifact

    @property
    def end(self) -> int:
        return self.offset + self.data.size


def log_prefix(stack: str, database: str) -> str:
    return f"{LOGS}/{stack}/{database}"


def piece_key(stack: str, database: str, file: str, offset: int, end: int, final: bool) -> str:
    return f"{log_prefix(stack, database)}/{file}/{offset:016d}-{end:016d}{'.final' if final else ''}.json"


def file_number(name: str) -> int:
    """A log file's number in its history (mariadb-bin.100042: 100042; a WAL file: its segment)."""
    if wal.is_wal(name):
        return wal.segment(name)
    suffix = name.rsplit(".", 1)[-1]
    if not suffix.isdigit():
        raise IntegrityError(f"log file {name!r} has no number at the end of its name.")
    return int(suffix)


def history_of(name: str) -> int:
    return wal.history(name) if wal.is_wal(name) else file_number(name) // RANGE


def first_number(history: int) -> int:
    """The number of the first binlog file of a history (history 2: mariadb-bin.200001)."""
    return history * RANGE + 1


def newest_first(name: str) -> tuple[int, int]:
    return history_of(name), file_number(name)


@dataclass
class Listing:
    """What the store holds of one database's log, from its listing alone: per file, its pieces' byte ranges."""

    # file: (offset, end, final, key), sorted
    pieces: dict[str, list[tuple[int, int, bool, str]]] = field(default_factory=dict)

    def archived_to(self, name: str) -> int:
        """Up to which byte the file is archived without a gap from its start."""
        end = 0
        for offset, piece_end, _, _ in self.pieces.get(name, []):
            if offset > end:
                break
            end = max(end, piece_end)  # two archivers may ship overlapping pieces: the same bytes of one file
        return end

    def closed(self, name: str) -> bool:
        """Whether the file is archived to the end the server closed it at."""
        ranges, end = self.pieces.get(name, []), self.archived_to(name)
        return any(final and piece_end == end for _, piece_end, final, _ in ranges)

    def histories(self) -> set[int]:
        return {history_of(name) for name in self.pieces}


def listing(store: Store, stack: str, database: str) -> Listing:
    prefix = log_prefix(stack, database) + "/"
    found = Listing()
    for key in store.list(prefix.rstrip("/")):
        match = PIECE.match(key.removeprefix(prefix))
        if match:
            found.pieces.setdefault(match["file"], []).append(
                (int(match["offset"]), int(match["end"]), bool(match["final"]), key)
            )
    for ranges in found.pieces.values():
        ranges.sort()
    return found


def read_piece(store: Store, key: str) -> LogPiece:
    try:
        return LogPiece.model_validate_json(store.get(key))
    except ObjectMissing:
        raise IntegrityError(f"archived log piece {key} is missing from store {store.location}.") from None
    except (ValidationError, ValueError):
        raise IntegrityError(f"archived log piece {key} in store {store.location} cannot be read.") from None


def next_history(store: Store, stack: str, database: str, base: tuple[str, int] | None) -> int:
    """The number of a new history of the database: past every history archived, every one begun (its server may
    have written nothing archived yet) and the base's."""
    numbers = listing(store, stack, database).histories()
    numbers |= {
        history_of(start.databases[database].first) for start in histories(store, stack) if database in start.databases
    }
    if base is not None:
        numbers.add(history_of(base[0]))
    return max(numbers, default=0) + 1


@dataclass
class Shipped:
    """One round of shipping of one database."""

    database: str
    pieces: int = 0
    bytes: int = 0
    newest_event: int | None = None  # the newest event archived (this round, or looked up), seconds since epoch
    purged_before: str | None = None
    rotated: bool = False
    unbegun: bool = False  # the server's log has no history of incarnate's yet: nothing of it is archived

    def describe(self) -> str:
        if self.unbegun:
            return f"{self.database}: {UNBEGUN}"
        newest = datetime.fromtimestamp(self.newest_event, UTC) if self.newest_event else None
        return (
            f"{self.database}: {self.pieces} new piece(s), {self.bytes:,} bytes"
            + (f"; newest archived write {newest.isoformat(timespec='seconds')}" if newest else "")
            + (f"; server's files before {self.purged_before} purged" if self.purged_before else "")
        )


def ship(
    store: Store,
    stack: str,
    source: LogSource,
    lock_until: datetime | None = None,
    lock_mode: str = "locked",
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Shipped | None:
    """Ship what the store lacks of the server's log files, whole events only; then let the server purge the
    files archived whole, and close a file grown past ROTATE_BYTES. None when the server writes no log."""
    files = source.log_files()
    if files is None:
        return None
    result = Shipped(source.artifact)
    # History 0 is a server no deployment of incarnate began a history on: one being restored right now (its log
    # holds the load, which a new history then drops), or one deployed before archiving existed.
    files = [log for log in files if history_of(log.name) > 0]
    result.unbegun = not files
    archived = listing(store, stack, source.artifact)
    writer = None
    try:
        for index, log in enumerate(files):
            closed = index < len(files) - 1
            done, ended = archived.archived_to(log.name), archived.closed(log.name)
            if done > log.size:
                raise IntegrityError(
                    f"stack {stack}: store {store.location} holds {done:,} bytes of log file {log.name} of "
                    f"{source.artifact}, the server only {log.size:,}: the server's file is another history's, and "
                    f"nothing was shipped from it (a restore starts a new numbering; was the server's log reset?)."
                )
            while not ended and (done < log.size or closed):
                # No further than the listing said: a WAL file is written in place, past its end lies old content.
                data = source.read_log(log.name, done, min(READ_LIMIT, log.size - done)) if done < log.size else b""
                length, _, last = source.whole_events(log.name, data, done) if data else (0, None, None)
                if length == 0 and done < log.size:
                    if not closed:
                        break  # only part of an event is written yet: the next round takes it
                    raise IntegrityError(
                        f"stack {stack}: log file {log.name} of {source.artifact} ends in part of an event at byte "
                        f"{done:,} although the server closed it; it is archived up to there."
                    )
                ended = closed and done + length >= log.size
                writer = writer or SnapshotWriter(store, log_prefix(stack, source.artifact), lock_until, 2, lock_mode)
                _write_piece(writer, stack, source, log.name, done, data[:length], ended, now())
                archived.pieces.setdefault(log.name, []).append((done, done + length, ended, ""))
                result.pieces, result.bytes = result.pieces + 1, result.bytes + length
                result.newest_event = last or result.newest_event
                done += length
        whole = {log.name for log in files[:-1] if archived.closed(log.name)}
        purge_to = next((log.name for log in files if log.name not in whole), None)
        if purge_to and purge_to != files[0].name:
            source.purge_logs_before(purge_to)
            result.purged_before = purge_to
        if files and files[-1].size > ROTATE_BYTES:
            source.rotate_log()
            result.rotated = True
    finally:
        if writer is not None:
            writer.close()
    return result


def _write_piece(
    writer: SnapshotWriter,
    stack: str,
    source: LogSource,
    name: str,
    offset: int,
    data: bytes,
    final: bool,
    now: datetime,
) -> LogPiece:
    _, first, last = source.whole_events(name, data, offset) if data else (0, None, None)
    stored = writer.add(source.artifact, "database", source.target, None, io.BytesIO(data))
    piece = LogPiece(
        stack=stack,
        database=source.artifact,
        file=name,
        offset=offset,
        final=final,
        first_event=first,
        last_event=last,
        shipped_at=now.isoformat(timespec="seconds"),
        data=stored,
    )
    key = piece_key(stack, source.artifact, name, offset, piece.end, final)
    writer.record(key, piece.model_dump_json().encode(), {chunk for chunk, _ in stored.chunks})
    return piece


def newest_event(store: Store, stack: str, database: str) -> int | None:
    """The time of the newest write archived for the database (its newest piece's last event)."""
    found = listing(store, stack, database)
    for name in sorted(found.pieces, key=newest_first, reverse=True):
        for _, _, _, key in reversed(found.pieces[name]):
            piece = read_piece(store, key)
            if piece.last_event is not None:
                return piece.last_event
    return None


@dataclass(frozen=True)
class LogFilePlan:
    name: str
    start: int  # where the replay begins in it (the base's position in the first file, else 0)
    pieces: list[LogPiece]


@dataclass(frozen=True)
class ReplayPlan:
    database: str
    files: list[LogFilePlan]
    gap: str | None  # why the archive ends where it does, when it ends at a gap rather than at its newest piece


def plan_replay(store: Store, stack: str, database: str, base: tuple[str, int]) -> ReplayPlan:
    """The archived log a replay from `base` (file, byte) reads: that file and the next ones of the same history,
    each from its start without a gap, up to the first gap or the newest piece."""
    found, (first, position) = listing(store, stack, database), base
    number = file_number(first)
    names = {file_number(name): name for name in found.pieces if history_of(name) == history_of(first)}
    if number not in names:
        later = any(other > number for other in names)
        return ReplayPlan(database, [], f"log file {first} is not archived, later ones are" if later else None)
    files, gap = [], None
    while number in names:
        name, pieces, end = names[number], [], 0
        for offset, piece_end, _, key in found.pieces[name]:
            if piece_end <= end and pieces:
                continue  # within what the pieces taken hold already (shipped twice)
            if offset > end:
                gap = f"log file {name} is archived to byte {end:,}, then only from byte {offset:,}"
                break
            pieces.append(_checked_piece(store, key, name, offset, piece_end))
            end = piece_end
        if end < position:
            gap = gap or f"log file {name} is archived to byte {end:,}, the base needs it from byte {position:,}"
            break
        files.append(LogFilePlan(name, position, pieces))
        if gap:
            break
        position, number = 0, number + 1
        if not found.closed(name) and any(other >= number for other in names):
            gap = f"log file {name} was not archived to its end (byte {end:,}) before later ones were"
        elif number not in names and any(other > number for other in names):
            gap = f"log file number {number} is not archived, later ones are"
    return ReplayPlan(database, files, gap)


def _checked_piece(store: Store, key: str, name: str, offset: int, end: int) -> LogPiece:
    """A piece, which must say of itself what its key says (a plain store's objects could be swapped)."""
    piece = read_piece(store, key)
    if (piece.file, piece.offset, piece.end) != (name, offset, end):
        raise IntegrityError(f"archived log piece {key} in store {store.location} holds another range than its name.")
    return piece


def log_bytes(store: Store, plan: LogFilePlan) -> bytes:
    """A log file's archived bytes from its start, every chunk verified."""
    data = bytearray()
    for piece in plan.pieces:
        held = bytearray()
        for chunk in chunk_stream(store, f"archived log {plan.name} at byte {piece.offset}", piece.data):
            held += chunk
        data += held[len(data) - piece.offset :]  # an overlapping piece holds the same bytes where it overlaps
    return bytes(data)


def recovery_time(text: str | None) -> datetime | None:
    """A recovery target as an operator gives it: ISO 8601 with a zone (`2026-12-03T14:05:00+01:00`, `...Z`), or
    empty / `latest` for everything archived (None)."""
    if text is None or text.strip() in ("", "latest"):
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"recovery time {text!r} is not an ISO 8601 time (e.g. 2026-12-03T14:05:00Z) nor `latest`."
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"recovery time {text!r} has no time zone; give one (e.g. Z or +01:00).")
    return moment


def at_second(moment: datetime) -> int:
    """A recovery target as whole seconds since the epoch (a binlog's clock has no finer grain)."""
    return int(moment.timestamp())


def pieces_of(store: Store, stack: str) -> tuple[list[tuple[str, Artifact]], list[str]]:
    """The stack's archived log pieces (where each is, what it holds), and one line per piece that cannot be read."""
    found, problems = [], []
    for key in store.list(f"{LOGS}/{stack}"):
        if not key.endswith(".json") or f"/{HISTORIES}/" in key:
            continue
        try:
            found.append((f"archived log piece {key}", read_piece(store, key).data))
        except IntegrityError as error:
            problems.append(str(error))
    return found, problems


def log_chunk_ids(store: Store) -> tuple[set[str], str | None]:
    """Every chunk an archived log piece references, and the first piece that cannot be read (then any chunk may
    be referenced)."""
    chunk_ids: set[str] = set()
    for key in store.list(LOGS):
        if not key.endswith(".json") or f"/{HISTORIES}/" in key:
            continue
        try:
            piece = read_piece(store, key)
        except IntegrityError:
            return chunk_ids, key
        chunk_ids.update(chunk for chunk, _ in piece.data.chunks)
    return chunk_ids, None


# A history's start: which snapshot a restore loaded and which archived log it replayed onto it, per database.
HISTORIES = "histories"
Position = tuple[str, int]  # a log file and a byte in it


class Segment(BaseModel):
    """Log replayed in one history: from a position to another (both in the same history)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: Position
    end: Position


class DatabaseStart(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    first: str  # the new history's first log file
    replayed: list[Segment]  # what was replayed onto the snapshot's dump before it began, oldest first


class HistoryStart(BaseModel):
    """Written by every deployment that loaded the stack's databases: its data is the snapshot's with the segments
    replayed, and every later write is in the new history. A recovery into this history before it has a backup of
    its own restores the same snapshot, replays the same segments, then this history."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    stack: str
    began_at: str
    snapshot: str
    at: str | None  # the recovery time the deployment was asked for; None: everything archived
    databases: dict[str, DatabaseStart]
    volumes: str | None = None  # the snapshot of volumes its files came from; None: the snapshot's own

    def began(self) -> datetime:
        return datetime.fromisoformat(self.began_at)

    def holds(self, artifact: str, log_start: Position | None) -> bool:
        """Whether a dump whose log stood at `log_start` was taken in this history."""
        start = self.databases.get(artifact)
        return bool(start and log_start) and history_of(log_start[0]) == history_of(start.first)


def history_key(stack: str, began: datetime, first: str) -> str:
    return f"{LOGS}/{stack}/{HISTORIES}/{began.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{file_number(first)}.json"


def histories(store: Store, stack: str) -> list[HistoryStart]:
    """Every history start of the stack, oldest first; one that cannot be read is refused (it decides what a
    recovery restores)."""
    found = []
    for key in store.list(f"{LOGS}/{stack}/{HISTORIES}"):
        try:
            found.append(HistoryStart.model_validate_json(store.get(key)))
        except ObjectMissing:
            continue
        except (ValidationError, ValueError):
            raise IntegrityError(
                f"history start {key} in store {store.location} cannot be read; it says which snapshot and logs a "
                f"recovery of stack {stack} needs, so none was chosen. Repair or remove it."
            ) from None
    return sorted(found, key=lambda start: start.began())


def live_history(store: Store, stack: str, moment: datetime) -> HistoryStart | None:
    """The history the stack's databases were writing at `moment`: the newest that began at or before it."""
    begun = [start for start in histories(store, stack) if start.began() <= moment]
    return begun[-1] if begun else None


def record_history(store: Store, start: HistoryStart, lock_until: datetime | None, lock_mode: str) -> None:
    key = history_key(start.stack, start.began(), next(iter(start.databases.values())).first)
    if not store.put(key, start.model_dump_json(indent=1).encode()):
        raise IntegrityError(f"store {store.location}: history start {key} exists already.")
    if lock_until is not None:
        store.lock(key, lock_until, lock_mode)


Needed = tuple[int, int, float]  # a history, and the first and last log file number of it


def _onwards(name: str) -> Needed:
    """From log file `name` to the end of its history."""
    return history_of(name), file_number(name), float("inf")


def needed_numbers(snapshots: list[Snapshot], starts: list[HistoryStart]) -> dict[str, list[Needed]]:
    """Per database, the log files a recovery from these snapshots may replay: from each base's position to the end
    of its history, and for each history begun from one of them, the segments it began with and all of itself."""
    needed: dict[str, list[Needed]] = {}
    for snapshot in snapshots:
        for artifact in snapshot.manifest.artifacts:
            if artifact.log_start:
                needed.setdefault(artifact.name, []).append(_onwards(artifact.log_start[0]))
    ids = {snapshot.id for snapshot in snapshots}
    for start in starts:
        if start.snapshot not in ids:
            continue
        for database, begun in start.databases.items():
            ranges = needed.setdefault(database, [])
            ranges += [
                (history_of(seg.start[0]), file_number(seg.start[0]), file_number(seg.end[0])) for seg in begun.replayed
            ]
            ranges.append(_onwards(begun.first))
    return needed


@dataclass
class LogPrune:
    pieces_deleted: int = 0
    pieces_locked: int = 0
    histories_deleted: int = 0


def prune_logs(
    store: Store, stack: str, kept: list[Snapshot], locked: Callable[[str], bool], dry_run: bool = False
) -> LogPrune:
    """Delete the archived log no kept snapshot needs (never an object still locked), and the history starts whose
    snapshot is gone, except the newest: it says which history is live."""
    starts = histories(store, stack)
    needed = needed_numbers(kept, starts)
    result = LogPrune()
    for key in store.list(f"{LOGS}/{stack}"):
        relative = key.removeprefix(f"{LOGS}/{stack}/")
        database, _, rest = relative.partition("/")
        match = PIECE.match(rest)
        if database == HISTORIES or match is None:
            continue
        history, number = history_of(match["file"]), file_number(match["file"])
        if any(history == of and low <= number <= high for of, low, high in needed.get(database, [])):
            continue
        if locked(key):
            result.pieces_locked += 1
            continue
        result.pieces_deleted += 1
        if not dry_run:
            store.delete(key)
    ids = {snapshot.id for snapshot in kept}
    for start in starts[:-1]:
        key = history_key(stack, start.began(), next(iter(start.databases.values())).first)
        if start.snapshot not in ids and not locked(key):
            result.histories_deleted += 1
            if not dry_run:
                store.delete(key)
    return result
