"""The backup format: a snapshot is a folder of compressed artifacts and a manifest written last.

    backups/<stack>/<UTC timestamp>-<id>/manifest.json
    backups/<stack>/<UTC timestamp>-<id>/<artifact files>

A folder without manifest.json is not a snapshot (an interrupted backup), so listing,
restoring and copying only ever see complete snapshots.
"""

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import BinaryIO, Literal

import zstandard
from pydantic import BaseModel, ConfigDict

from incarnate import __version__
from incarnate.errors import IntegrityError, StoreError
from incarnate.stores import Store

MANIFEST = "manifest.json"
FORMAT = 1
BLOCK = 1 << 20


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str  # file name inside the snapshot folder
    kind: Literal["database", "volume"]
    target: str  # database name or Compose volume name
    engine: str | None = None  # database engine (mariadb); None for volumes
    compression: Literal["zstd"] = "zstd"
    size: int  # stored (compressed) bytes
    sha256: str  # of the stored bytes: verifiable without decompressing
    raw_size: int
    raw_sha256: str


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT
    stack: str
    product: str
    release: str
    schema_version: int
    config_commit: str | None
    origin: Literal["vanilla", "backup"]
    created_at: str
    tool_version: str = __version__
    artifacts: list[Artifact]

    def artifact(self, name: str) -> Artifact:
        return next(artifact for artifact in self.artifacts if artifact.name == name)


class Snapshot(BaseModel):
    """A complete snapshot: where it is and what its manifest says."""

    model_config = ConfigDict(frozen=True)

    prefix: str  # e.g. backups/acme/20261125T020000Z-1a2b3c
    manifest: Manifest

    @property
    def id(self) -> str:
        return self.prefix.rsplit("/", 1)[-1]


def new_snapshot_id(now: datetime | None = None) -> str:
    """Sortable by time, unique even for two backups in the same second."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def stack_prefix(stack: str) -> str:
    return f"backups/{stack}"


def new_snapshot_prefix(stack: str) -> str:
    return f"{stack_prefix(stack)}/{new_snapshot_id()}"


def read_manifest(store: Store, prefix: str) -> Manifest:
    with store.open_read(f"{prefix}/{MANIFEST}") as handle:
        raw = handle.read()
    try:
        return Manifest.model_validate_json(raw)
    except ValueError as error:
        raise IntegrityError(f"store {store.location}: {prefix}/{MANIFEST} is not a valid manifest ({error.__class__.__name__}).") from None


def list_snapshots(store: Store, stack: str) -> list[Snapshot]:
    """Complete snapshots of a stack, oldest first."""
    base = stack_prefix(stack)
    found = []
    for name in store.children(base):
        prefix = f"{base}/{name}"
        if store.exists(f"{prefix}/{MANIFEST}"):
            found.append(Snapshot(prefix=prefix, manifest=read_manifest(store, prefix)))
    return found


def find_snapshot(store: Store, stack: str, snapshot_id: str | None = None) -> Snapshot | None:
    """The named snapshot, or the newest one; None when the stack has none."""
    snapshots = list_snapshots(store, stack)
    if snapshot_id is None:
        return snapshots[-1] if snapshots else None
    for snapshot in snapshots:
        if snapshot.id == snapshot_id:
            return snapshot
    raise StoreError(f"store {store.location}: stack {stack} has no complete snapshot {snapshot_id}.")


class _HashingWriter:
    """Counts and hashes what passes into a file-like sink."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink, self.digest, self.size = sink, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.sink.write(data)

    def flush(self) -> None:
        self.sink.flush()


class SnapshotWriter:
    """Writes artifacts one by one, then the manifest; without `commit` no snapshot exists."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.artifacts: list[Artifact] = []

    def add(self, name: str, kind: str, target: str, engine: str | None, source: BinaryIO) -> Artifact:
        """Compress and store a raw stream, hashing both sides; memory stays at one block."""
        raw_digest, raw_size = hashlib.sha256(), 0
        with self.store.open_write(f"{self.prefix}/{name}") as handle:
            stored = _HashingWriter(handle)
            compressor = zstandard.ZstdCompressor(level=3).stream_writer(stored, closefd=False)
            while block := source.read(BLOCK):
                raw_digest.update(block)
                raw_size += len(block)
                compressor.write(block)
            compressor.close()
        artifact = Artifact(
            name=name, kind=kind, target=target, engine=engine, size=stored.size,
            sha256=stored.digest.hexdigest(), raw_size=raw_size, raw_sha256=raw_digest.hexdigest(),
        )
        self.artifacts.append(artifact)
        return artifact

    def copy_stored(self, artifact: Artifact, source: BinaryIO, source_name: str) -> None:
        """Copy an artifact's stored bytes from another snapshot, verifying them on the way."""
        with self.store.open_write(f"{self.prefix}/{artifact.name}") as handle:
            stored = _HashingWriter(handle)
            while block := source.read(BLOCK):
                stored.write(block)
            if stored.digest.hexdigest() != artifact.sha256:
                raise IntegrityError(
                    f"artifact {artifact.name} of {source_name}: checksum mismatch "
                    f"(manifest {artifact.sha256[:12]}…, stored {stored.digest.hexdigest()[:12]}…)."
                )
        self.artifacts.append(artifact)

    def commit(self, **fields: object) -> Snapshot:
        """Write the manifest, which makes the snapshot exist."""
        manifest = Manifest(artifacts=self.artifacts, created_at=datetime.now(UTC).isoformat(timespec="seconds"), **fields)
        with self.store.open_write(f"{self.prefix}/{MANIFEST}") as handle:
            handle.write(manifest.model_dump_json(indent=2).encode())
        return Snapshot(prefix=self.prefix, manifest=manifest)

    def abandon(self) -> None:
        """Remove what an unfinished snapshot wrote; without a manifest it was never visible."""
        for artifact in self.artifacts:
            self.store.delete(f"{self.prefix}/{artifact.name}")


@contextmanager
def writing_snapshot(store: Store, prefix: str) -> Iterator[SnapshotWriter]:
    """A writer for a new snapshot at `prefix`; on any error what it wrote is removed again."""
    writer = SnapshotWriter(store, prefix)
    try:
        yield writer
    except BaseException:
        writer.abandon()
        raise


class _HashingReader:
    def __init__(self, source: BinaryIO) -> None:
        self.source, self.digest, self.size = source, hashlib.sha256(), 0

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(BLOCK):
            pass


def restore_artifact(store: Store, snapshot: Snapshot, artifact: Artifact, consume: Callable[[BinaryIO], None]) -> None:
    """Feed an artifact's raw stream to `consume`, and prove afterwards it was what the manifest says.

    Checksums are checked on the stored bytes as they stream. Whatever goes wrong while
    consuming, the rest is read to tell corruption (IntegrityError naming the artifact)
    apart from a failure of the consumer, which is re-raised as it was.
    """
    where = f"artifact {artifact.name} of snapshot {snapshot.id} in {store.location}"
    with store.open_read(f"{snapshot.prefix}/{artifact.name}") as handle:
        stored = _HashingReader(handle)
        failure: BaseException | None = None
        try:
            with zstandard.ZstdDecompressor().stream_reader(stored, closefd=False) as raw:
                consume(raw)
        except Exception as error:  # decided below, once every byte has been hashed
            failure = error
        stored.drain()
    actual = stored.digest.hexdigest()
    if actual != artifact.sha256 or stored.size != artifact.size:
        raise IntegrityError(
            f"{where}: checksum mismatch (manifest {artifact.sha256[:12]}… {artifact.size} bytes, "
            f"stored {actual[:12]}… {stored.size} bytes); restore refused."
        ) from failure
    if failure is not None:
        raise failure


def copy_snapshot(source: Store, snapshot: Snapshot, target: Store, stack: str, **changes: object) -> Snapshot:
    """Copy a complete snapshot into another store (e.g. a vanilla backup into a customer store)."""
    with writing_snapshot(target, new_snapshot_prefix(stack)) as writer:
        for artifact in snapshot.manifest.artifacts:
            with source.open_read(f"{snapshot.prefix}/{artifact.name}") as handle:
                writer.copy_stored(artifact, handle, f"snapshot {snapshot.id} in {source.location}")
        fields = snapshot.manifest.model_dump(exclude={"artifacts", "created_at", "tool_version", "format"})
        fields.update(stack=stack, **changes)
        return writer.commit(**fields)
