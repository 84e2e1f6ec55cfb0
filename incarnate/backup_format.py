"""The backup format: content-defined chunks stored once, and a manifest per snapshot, written last.

    chunks/<id[:2]>/<id>                  zstd of one chunk; id = SHA-256 of its raw bytes
    backups/<stack>/<UTC time>-<id>/manifest.json
    volumes/<stack>/<UTC time>-<id>/manifest.json    a snapshot of the stack's volumes only (backup.volume_interval)

In an encrypted store (incarnate.stores.sealed) both are sealed with AES-256-GCM after compression, and a chunk's id
is an HMAC-SHA-256 of its raw bytes under the store's key: the codec says which, and the layout stays the same.

A stream (database dump, volume tar) is cut with FastCDC (about 1 MiB per chunk), so
what did not change between two nights cuts into the same chunks and is stored once.
Streams are never compressed before chunking: that would defeat deduplication. A
folder without a manifest is not a snapshot, so an interrupted backup never shows.
"""

import hashlib
import io
import json
import random
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO, Literal, Protocol

import zstandard
from pydantic import BaseModel, ConfigDict
from pyfastcdc import FastCDC

from incarnate import __version__
from incarnate.encryption import PLAIN, Codec
from incarnate.errors import (
    ConfigError,
    EncryptionLost,
    IntegrityError,
    ObjectMissing,
    StageError,
    StoreError,
    UnreadableSnapshots,
)
from incarnate.progress import Meter, track
from incarnate.stores import Store
from incarnate.stores.locking import shared_lock
from incarnate.stores.sealed import SealedStore

MANIFEST = "manifest.json"
# 3: artifacts record the rows per table their dump held; 4: and where the database's log stood; 5: whether a database
# artifact is a dump or the server's files, and of which server version
FORMAT = 5
AVERAGE_CHUNK = 1 << 20
PARALLEL = 8  # chunk uploads and downloads in flight; memory stays below PARALLEL * 2 * 4 MiB


class RowSink(Protocol):
    """What counts a database dump's rows as it streams past (a data source's engine knows how)."""

    log_start: tuple[str, int] | None  # where the database's log stood when the dump was consistent
    base: str  # "logical" (a dump) or "physical" (the server's files)
    engine_version: str | None  # the server's major version, which a physical base can only be loaded into

    def feed(self, data: bytes) -> None: ...

    def result(self) -> dict[str, int] | None: ...


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: Literal["database", "volume"]
    target: str  # database name or Compose volume name
    engine: str | None = None  # database engine (mariadb, postgresql); None for volumes
    size: int  # raw bytes of the stream
    sha256: str  # of the whole raw stream
    chunks: list[tuple[str, int]]  # (chunk id, raw length), in stream order
    rows: dict[str, int] | None = None  # rows per table in a database dump, as it streamed past; None: not counted
    # where the database's log stood when the dump was consistent (file, byte): replay of archived logs starts there
    log_start: tuple[str, int] | None = None
    base: Literal["logical", "physical"] = "logical"  # a dump, or the server's files (a tar of its data directory)
    engine_version: str | None = None  # the major version of the server a physical base was taken of


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    stack: str
    product: str
    release: str
    schema_version: int
    config_commit: str | None
    origin: Literal["vanilla", "backup", "import", "volumes"]
    created_at: str
    tool_version: str = __version__
    artifacts: list[Artifact]

    def artifact(self, name: str) -> Artifact:
        return next(artifact for artifact in self.artifacts if artifact.name == name)

    def rows(self) -> dict[str, int] | None:
        """Rows per table of every database, as `database.table`, as the backup counted them; None if it did not."""
        databases = [artifact for artifact in self.artifacts if artifact.kind == "database"]
        if any(artifact.rows is None for artifact in databases):
            return None
        return {f"{artifact.target}.{table}": count for artifact in databases for table, count in artifact.rows.items()}

    def chunk_ids(self) -> set[str]:
        return {chunk for artifact in self.artifacts for chunk, _ in artifact.chunks}

    def size(self) -> int:
        """Raw bytes of every artifact."""
        return sum(artifact.size for artifact in self.artifacts)

    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)


class Snapshot(BaseModel):
    """A complete snapshot: where its manifest is and what it says."""

    model_config = ConfigDict(frozen=True)

    prefix: str  # e.g. backups/acme/20261125T020000Z-1a2b3c
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.prefix.rsplit("/", 1)[-1]


def artifact_name(kind: str, target: str) -> str:
    """An artifact's name in a manifest: `database-<name>` or `volume-<name>`."""
    return f"{kind}-{target}"


def chunk_key(chunk_id: str) -> str:
    return f"chunks/{chunk_id[:2]}/{chunk_id}"


def new_snapshot_id(now: datetime | None = None) -> str:
    """Sortable by time (to the microsecond, so the newest of two in one second is known), unique."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(3)}"


def snapshot_time(snapshot_id: str) -> datetime | None:
    """When a snapshot was taken, as its name says (None for a name incarnate did not make)."""
    try:
        return datetime.strptime(snapshot_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


BACKUPS, VOLUMES = "backups", "volumes"  # whole snapshots; snapshots of a stack's volumes only


def stack_prefix(stack: str, root: str = BACKUPS) -> str:
    return f"{root}/{stack}"


def new_snapshot_prefix(stack: str, root: str = BACKUPS) -> str:
    return f"{stack_prefix(stack, root)}/{new_snapshot_id()}"


def codec_of(store: Store, writing: bool = False) -> Codec:
    """How the store names and seals chunks: a customer's store says; any other store (releases) is plain."""
    return store.codec(writing) if isinstance(store, SealedStore) else PLAIN


def read_manifest(store: Store, prefix: str) -> Manifest:
    """The manifest at `prefix`; IntegrityError naming it when it cannot be read, or comes from a newer incarnate."""
    where = f"store {store.location}: {prefix}/{MANIFEST}"
    try:
        raw = store.get(f"{prefix}/{MANIFEST}")
    except EncryptionLost:
        raise  # says what the store lost and the way out; not this manifest's fault
    except IntegrityError:
        raise IntegrityError(
            f"{where} is not a valid manifest (fails authentication: altered, or sealed with another key)."
        ) from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise IntegrityError(f"{where} is not a valid manifest (not JSON).") from None
    written = data.get("format") if isinstance(data, dict) else None
    if isinstance(written, int) and written > FORMAT:
        raise IntegrityError(
            f"{where} has format {written}, written by a newer incarnate (this one reads up to format "
            f"{FORMAT}); restore it with that version."
        )
    try:
        return Manifest.model_validate(data)
    except ValueError as error:
        raise IntegrityError(f"{where} is not a valid manifest ({error.__class__.__name__}).") from None


@dataclass(frozen=True)
class Unreadable:
    """A snapshot folder whose manifest exists but cannot be read: never chosen, never swept, always named."""

    prefix: str
    reason: str

    @property
    def id(self) -> str:
        return self.prefix.rsplit("/", 1)[-1]


def newest_taken(store: Store, stack: str) -> datetime | None:
    """When the stack's newest snapshot, whole or of volumes, was taken, as the names say (no manifest is read)."""
    ids = [
        key.removesuffix(f"/{MANIFEST}").rsplit("/", 1)[-1]
        for root in (BACKUPS, VOLUMES)
        for key in store.list(stack_prefix(stack, root))
        if key.endswith(f"/{MANIFEST}")
    ]
    # A name from the future (planted, or another machine's clock) must not hold the next snapshot off for ever.
    soon = datetime.now(UTC) + timedelta(minutes=1)
    taken = [moment for moment in map(snapshot_time, ids) if moment is not None and moment <= soon]
    return max(taken, default=None)


def scan_snapshots(
    store: Store, stack: str | None = None, root: str = BACKUPS
) -> tuple[list[Snapshot], list[Unreadable]]:
    """Complete snapshots of a stack (or of every stack in the store), oldest first, and the unreadable ones; whole
    ones, or with `root` VOLUMES those of volumes only."""
    keys = store.list(stack_prefix(stack, root) if stack else root)
    snapshots, unreadable = [], []
    for prefix in (key.removesuffix(f"/{MANIFEST}") for key in keys if key.endswith(f"/{MANIFEST}")):
        try:
            snapshots.append(Snapshot(prefix=prefix, manifest=read_manifest(store, prefix)))
        except ObjectMissing:
            continue  # forgotten by a prune since the listing
        except IntegrityError as error:
            unreadable.append(Unreadable(prefix, str(error)))
    return sorted(snapshots, key=lambda snapshot: (snapshot.id, snapshot.prefix)), unreadable


def list_snapshots(store: Store, stack: str | None = None, root: str = BACKUPS) -> list[Snapshot]:
    """Complete, readable snapshots of a stack (or of every stack in the store), oldest first."""
    return scan_snapshots(store, stack, root)[0]


def find_snapshot(store: Store, stack: str, snapshot_id: str | None = None) -> Snapshot | None:
    """The named snapshot, or the newest readable one (saying which newer ones were skipped, and why); None when
    the stack has none."""
    snapshots, unreadable = scan_snapshots(store, stack)
    if snapshot_id is not None:
        for snapshot in snapshots:
            if snapshot.id == snapshot_id:
                return snapshot
        for bad in unreadable:
            if bad.id == snapshot_id:
                raise IntegrityError(f"snapshot {snapshot_id} cannot be restored: {bad.reason}")
        raise StoreError(f"store {store.location}: stack {stack} has no complete snapshot {snapshot_id}.")
    if unreadable and not snapshots:
        named = "; ".join(f"{bad.id}: {bad.reason}" for bad in unreadable)
        raise UnreadableSnapshots(
            f"store {store.location}: stack {stack} has {len(unreadable)} snapshot{'s' if len(unreadable) > 1 else ''} "
            f"and none can be read ({named}); refusing to take it for a stack without backups, whose deployment "
            f"would restore the release's vanilla backup. Make them readable (restore keys/config.json, the store "
            f"key, or use a newer incarnate). Nothing was changed."
        )
    newest = snapshots[-1] if snapshots else None
    for bad in unreadable:
        if newest is None or bad.id > newest.id:
            print(f"skipping snapshot {bad.id} of stack {stack}: {bad.reason}")
    return newest


@dataclass
class WriteStats:
    """What one snapshot cost: raw bytes read, chunks and bytes it had to store anew."""

    raw_bytes: int = 0
    chunks: int = 0
    new_chunks: int = 0
    new_bytes: int = 0
    per_artifact: dict[str, dict[str, float]] = field(default_factory=dict)


class SnapshotWriter:
    """Chunks artifacts into the store, then writes the manifest; without `commit` no snapshot exists.

    From its creation until `commit` or `close` it holds the store's shared lock, so no prune deletes a chunk
    it found present and reuses. Use it as a context manager: a failed backup releases the lock at once."""

    def __init__(
        self,
        store: Store,
        prefix: str,
        lock_until: datetime | None = None,
        parallel: int = PARALLEL,
        lock_mode: str = "locked",
    ) -> None:
        self.store, self.prefix, self.lock_until, self.parallel, self.lock_mode = (
            store,
            prefix,
            lock_until,
            parallel,
            lock_mode,
        )
        self.artifacts: list[Artifact] = []
        self.stats = WriteStats()
        self._seen: set[str] = set()
        self._adding = threading.Lock()  # artifacts may be added from several threads at once
        self.codec = codec_of(store, writing=True)  # before the lock: a store whose key is missing refuses first
        self._held = ExitStack()
        self._lock = self._held.enter_context(shared_lock(store, f"snapshot {prefix}", say=print))

    def __enter__(self) -> "SnapshotWriter":
        return self

    def __exit__(self, *failure: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store's lock; chunks stored without a manifest are removed by a later prune."""
        self._held.close()

    def _store_chunk(self, chunk_id: str, data: bytes) -> int:
        """Store one chunk unless present; the stored bytes it added (0 for a reused chunk)."""
        key = chunk_key(chunk_id)
        added = 0
        if not self.store.exists(key):
            compressed = zstandard.ZstdCompressor(level=3).compress(data)
            if self.store.put(key, compressed):
                added = len(compressed)
        if self.lock_until is not None:
            self.store.lock(
                key, self.lock_until, self.lock_mode
            )  # a reused chunk's lock is extended to cover this snapshot
        return added

    def add(
        self,
        name: str,
        kind: str,
        target: str,
        engine: str | None,
        source: BinaryIO,
        rows: RowSink | None = None,
        expected: int | None = None,
    ) -> Artifact:
        """Cut a raw stream into chunks and store the new ones in parallel, in bounded memory; `rows` counts the
        rows of a database dump as it passes; `expected` (the last backup's size) lets progress say how far it is."""
        stream_digest, size, chunks = hashlib.sha256(), 0, []
        new_chunks = new_bytes = 0
        in_flight: deque[Future[int]] = deque()
        chunker = FastCDC(AVERAGE_CHUNK, min_size=AVERAGE_CHUNK // 4, max_size=AVERAGE_CHUNK * 4)
        with (
            ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="chunk-upload") as pool,
            track(f"backup of {name}", expected, estimated=True) as meter,
        ):
            try:
                for piece in chunker.cut_stream(source):
                    data = bytes(piece.data)  # the chunker reuses its buffer for the next chunk
                    meter.advance(len(data))
                    if rows is not None:
                        rows.feed(data)
                    chunk_id = self.codec.chunk_id(data)
                    stream_digest.update(data)
                    size += len(data)
                    chunks.append((chunk_id, len(data)))
                    with self._adding:
                        if chunk_id in self._seen:
                            continue
                        self._seen.add(chunk_id)
                    in_flight.append(pool.submit(self._store_chunk, chunk_id, data))
                    while len(in_flight) >= self.parallel * 2:
                        added = in_flight.popleft().result()
                        new_chunks, new_bytes = new_chunks + bool(added), new_bytes + added
                while in_flight:
                    added = in_flight.popleft().result()
                    new_chunks, new_bytes = new_chunks + bool(added), new_bytes + added
            except BaseException:
                for future in in_flight:
                    future.cancel()
                raise
        artifact = Artifact(
            name=name,
            kind=kind,
            target=target,
            engine=engine,
            size=size,
            sha256=stream_digest.hexdigest(),
            chunks=chunks,
            rows=rows.result() if rows else None,
            log_start=rows.log_start if rows else None,
            base=rows.base if rows else "logical",
            engine_version=rows.engine_version if rows else None,
        )
        with self._adding:
            self.artifacts.append(artifact)
            self.stats.raw_bytes += size
            self.stats.chunks += len(chunks)
            self.stats.new_chunks += new_chunks
            self.stats.new_bytes += new_bytes
            self.stats.per_artifact[name] = {
                "raw_bytes": size,
                "chunks": len(chunks),
                "new_chunks": new_chunks,
                "new_bytes": new_bytes,
            }
        return artifact

    def order(self, names: list[str]) -> None:
        """Artifacts added at once arrive in any order; the manifest lists them as the release declares them."""
        self.artifacts.sort(key=lambda artifact: names.index(artifact.name) if artifact.name in names else len(names))

    def commit(self, **fields: object) -> Snapshot:
        """Write the manifest, which makes the snapshot exist."""
        manifest = Manifest(
            artifacts=self.artifacts, created_at=datetime.now(UTC).isoformat(timespec="seconds"), **fields
        )
        self.record(f"{self.prefix}/{MANIFEST}", manifest.model_dump_json(indent=1).encode(), manifest.chunk_ids())
        self.close()
        return Snapshot(prefix=self.prefix, manifest=manifest)

    def record(self, key: str, body: bytes, chunk_ids: set[str]) -> None:
        """Write the object that makes chunks stored by `add` count (a manifest, an archived log piece), create-only,
        once it is sure no clean-up took any of `chunk_ids` meanwhile; locked like the chunks."""
        self._lock.check_held(key, map(chunk_key, chunk_ids))
        if not self.store.put(key, body):
            raise StoreError(f"store {self.store.location}: {key} exists already.")
        if self.lock_until is not None:
            for locked in [key, *(self.store.key_objects() if isinstance(self.store, SealedStore) else [])]:
                self.store.lock(locked, self.lock_until, self.lock_mode)


def fetch_chunk(store: Store, chunk_id: str, where: str) -> tuple[bytes, bytes]:
    """A chunk compressed (as stored, once unsealed) and as raw bytes, proven by its id; IntegrityError names where
    it was wanted."""
    try:
        stored = store.get(chunk_key(chunk_id))
    except ObjectMissing:
        raise IntegrityError(f"{where}, chunk {chunk_id}: missing from store {store.location}.") from None
    except IntegrityError:
        raise IntegrityError(
            f"{where}, chunk {chunk_id}: corrupt (fails authentication) in store {store.location}."
        ) from None
    try:
        data = zstandard.ZstdDecompressor().decompress(stored, max_output_size=AVERAGE_CHUNK * 8)
    except zstandard.ZstdError:
        data = b""
    if codec_of(store).chunk_id(data) != chunk_id:
        raise IntegrityError(f"{where}, chunk {chunk_id}: corrupt (checksum mismatch) in store {store.location}.")
    return stored, data


def chunk_stream(
    store: Store,
    where: str,
    artifact: Artifact,
    parallel: int = PARALLEL,
    meter: Meter | None = None,
    stop: threading.Event | None = None,
) -> Iterator[bytes]:
    """The artifact's raw bytes chunk by chunk, fetched ahead in parallel, each verified (a failure names `where`);
    ends with StageError once `stop` is set (another artifact of the same restore failed)."""
    chunk_ids = [chunk_id for chunk_id, _ in artifact.chunks]
    digest = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="chunk-download") as pool:
        ahead: deque[Future[tuple[bytes, bytes]]] = deque()
        submitted = 0
        try:
            while submitted < len(chunk_ids) or ahead:
                while submitted < len(chunk_ids) and len(ahead) < parallel * 2:
                    ahead.append(pool.submit(fetch_chunk, store, chunk_ids[submitted], where))
                    submitted += 1
                _, data = ahead.popleft().result()
                if stop is not None and stop.is_set():
                    raise StageError(f"{where}: stopped, another artifact of the same restore failed.")
                digest.update(data)
                if meter is not None:
                    meter.advance(len(data))
                yield data
        finally:
            for future in ahead:
                future.cancel()
    if digest.hexdigest() != artifact.sha256:
        raise IntegrityError(f"{where}: the whole stream's checksum does not match the manifest.")


class _IterReader(io.RawIOBase):
    """A readable file over an iterator of byte strings."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces, self.buffer = pieces, b""

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while not self.buffer:
            piece = next(self.pieces, None)
            if piece is None:
                return 0
            self.buffer = piece
        size = min(len(target), len(self.buffer))
        target[:size], self.buffer = self.buffer[:size], self.buffer[size:]
        return size


def open_artifact(
    store: Store,
    snapshot: Snapshot,
    artifact: Artifact,
    parallel: int = PARALLEL,
    meter: Meter | None = None,
    stop: threading.Event | None = None,
) -> BinaryIO:
    """A stream of the artifact's raw bytes; reading raises IntegrityError at the first bad chunk, StageError
    once `stop` is set."""
    where = f"snapshot {snapshot.id}, artifact {artifact.name}"
    return io.BufferedReader(
        _IterReader(chunk_stream(store, where, artifact, parallel, meter, stop)), buffer_size=1 << 20
    )


def restore_artifact(
    store: Store,
    snapshot: Snapshot,
    artifact: Artifact,
    consume: Callable[[BinaryIO], None],
    stop: threading.Event | None = None,
) -> None:
    """Feed an artifact's verified raw stream to `consume`, and make sure all of it was read; `stop` ends it early."""
    where = f"snapshot {snapshot.id}, artifact {artifact.name}"
    with (
        track(f"restore of {artifact.name}", artifact.size) as meter,
        open_artifact(store, snapshot, artifact, meter=meter, stop=stop) as stream,
    ):
        try:
            consume(stream)
        except IntegrityError as error:
            if str(error).startswith(where):
                raise
            raise IntegrityError(f"{where}: {error}") from None  # e.g. an unsafe archive entry, named by the consumer
        if stream.read(1):
            raise IntegrityError(
                f"snapshot {snapshot.id}, artifact {artifact.name}: the consumer stopped before the end."
            )


@dataclass(frozen=True)
class Sample:
    """Which share of the chunks a verify re-reads, as `restic check --read-data-subset` does: a percentage (`10%`)
    or a byte budget (`500M`, `2G`); the choice is random, so scheduled runs cover the whole store over time."""

    fraction: float | None = None
    budget: int | None = None

    @classmethod
    def parse(cls, text: str) -> "Sample":
        value = text.strip().upper()
        try:
            if value.endswith("%"):
                fraction = float(value[:-1]) / 100
                if 0 < fraction <= 1:
                    return cls(fraction=fraction)
            else:
                number, unit = (value[:-1], value[-1]) if value[-1:] in "KMGT" else (value, "")
                budget = int(float(number) * 1024 ** (" KMGT".index(unit) if unit else 0))
                if budget > 0:
                    return cls(budget=budget)
        except ValueError:
            pass
        raise ConfigError(
            f"sample {text!r}: expected a percentage such as 10% (above 0, at most 100) or a byte budget "
            f"such as 500M or 2G."
        )

    def choose(self, sizes: dict[str, int]) -> list[str]:
        chosen = list(sizes)
        random.SystemRandom().shuffle(chosen)
        if self.fraction is not None:
            return chosen[: max(1, round(len(chosen) * self.fraction))]
        picked, spent = [], 0
        for chunk_id in chosen:
            if picked and spent + sizes[chunk_id] > (self.budget or 0):
                break
            picked.append(chunk_id)
            spent += sizes[chunk_id]
        return picked


@dataclass(frozen=True)
class Verified:
    problems: list[str]  # one line per missing or corrupt chunk; empty: all good
    chunks_read: int
    chunks_total: int
    bytes_read: int  # raw bytes proven


def verify_chunks(
    store: Store,
    snapshots: list[Snapshot],
    sample: Sample | None = None,
    parallel: int = PARALLEL,
    more: list[tuple[str, Artifact]] = (),
) -> Verified:
    """Re-read the chunks of these snapshots and of `more` (where each is, what it holds: archived log pieces),
    all or a sample, in parallel, each proven by its id."""
    where: dict[str, str] = {}
    sizes: dict[str, int] = {}
    held = [
        (f"snapshot {snapshot.id}, artifact {item.name}", item)
        for snapshot in snapshots
        for item in snapshot.manifest.artifacts
    ]
    for place, artifact in [*held, *more]:
        for chunk_id, length in artifact.chunks:
            where.setdefault(chunk_id, place)
            sizes[chunk_id] = length
    chosen = sample.choose(sizes) if sample else list(sizes)

    def check(chunk_id: str) -> str | None:
        try:
            fetch_chunk(store, chunk_id, where[chunk_id])
        except IntegrityError as error:
            return str(error)
        return None

    names = ", ".join(snapshot.id for snapshot in snapshots[:3]) + (
        f" and {len(snapshots) - 3} more" if len(snapshots) > 3 else ""
    )
    with shared_lock(store, f"verify of snapshot {names}", say=print):
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="chunk-verify") as pool:
            problems = [problem for problem in pool.map(check, chosen) if problem]  # in stream order
    return Verified(problems, len(chosen), len(sizes), sum(sizes[chunk_id] for chunk_id in chosen))


def verify_snapshot(store: Store, snapshot: Snapshot) -> list[str]:
    """Re-read every chunk of a snapshot; one line per missing or corrupt chunk (empty: all good)."""
    return verify_chunks(store, [snapshot]).problems


def copy_snapshot(source: Store, snapshot: Snapshot, target: Store, stack: str, **changes: object) -> Snapshot:
    """Copy a snapshot into another store (a vanilla backup into a customer store), verifying every chunk. Into a
    store with another codec (an encrypted customer store) every chunk is re-keyed: named and sealed as that store
    names and seals its own, so it deduplicates with the customer's later backups."""
    where, prefix = f"snapshot {snapshot.id} in {source.location}", new_snapshot_prefix(stack)
    same_names = codec_of(source).fingerprint == codec_of(target, writing=True).fingerprint
    renamed: dict[str, str] = {}
    with shared_lock(target, f"copy of {where} as {prefix}", say=print) as lock:
        for chunk_id in sorted(snapshot.manifest.chunk_ids()):
            if same_names and target.exists(chunk_key(chunk_id)):
                renamed[chunk_id] = chunk_id
                continue
            stored, data = fetch_chunk(source, chunk_id, where)
            renamed[chunk_id] = chunk_id if same_names else codec_of(target).chunk_id(data)
            if same_names or not target.exists(chunk_key(renamed[chunk_id])):
                target.put(chunk_key(renamed[chunk_id]), stored)
        fields = snapshot.manifest.model_dump(exclude={"created_at", "tool_version", "format", "artifacts"})
        fields.update(stack=stack, **changes)
        artifacts = [
            artifact.model_copy(update={"chunks": [(renamed[chunk], length) for chunk, length in artifact.chunks]})
            for artifact in snapshot.manifest.artifacts
        ]
        manifest = Manifest(created_at=datetime.now(UTC).isoformat(timespec="seconds"), artifacts=artifacts, **fields)
        lock.check_held(f"snapshot {prefix}", map(chunk_key, manifest.chunk_ids()))
        target.put(f"{prefix}/{MANIFEST}", manifest.model_dump_json(indent=1).encode())
    return Snapshot(prefix=prefix, manifest=manifest)
