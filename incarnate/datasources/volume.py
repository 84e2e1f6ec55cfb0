"""File volumes as tar streams: read by the engine from a helper container that is never started; restored through a
filter of their entries and unpacked by the engine into such a helper. The helper's image is incarnate's own
(helper.py), made on each engine, never pulled."""

import copy
import io
import tarfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from functools import cached_property, partial
from pathlib import PurePosixPath
from typing import BinaryIO, ClassVar

import docker.errors
import requests
import urllib3.exceptions

from incarnate import settings
from incarnate.backup_format import artifact_name
from incarnate.compose import ComposeProject
from incarnate.datasources.engine_api import engine_refusals, engine_url
from incarnate.datasources.helper import ensure_helper
from incarnate.datasources.tar_layout import TarLayout, TarLayoutError
from incarnate.errors import HostError, IntegrityError, StageError, tail
from incarnate.host import Host, stalled


def _helper(image: str, volume: str, mode: str, *command: str) -> list[str]:
    # --log-driver none: the default json-file driver would copy every byte of the stream into a log file, which
    # both doubles the disk writes and slows the read sevenfold (tests/unit/test_volume_helpers.py).
    return [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--log-driver",
        "none",
        "-v",
        f"{volume}:/data:{mode}",
        image,
        *command,
    ]


def is_empty(host: Host, volume: str) -> bool:
    listing = host.run(_helper(ensure_helper(host), volume, "ro", "ls", "-A", "/data"), what=f"listing volume {volume}")
    return listing.strip() == ""


class _EngineArchive(io.RawIOBase):
    """The engine's archive of a volume as it arrives, checked to be a whole tar archive when it ends. Reading stops
    with an error once `end` is called (a backup whose other artifact failed does not wait for the rest of a large
    volume), and when the engine gives no byte for the stall time (the response's read timeout)."""

    def __init__(self, response: requests.Response, what: str, host: str) -> None:
        self.response, self.what, self.host = response, what, host
        self.layout, self.ended = TarLayout(), threading.Event()

    def readable(self) -> bool:
        return True

    def end(self) -> None:
        self.ended.set()

    def readinto(self, buffer) -> int:
        if self.ended.is_set():
            raise StageError(f"{self.what} on host {self.host} was ended: another artifact of the backup failed.")
        try:
            count = self.response.raw.readinto(buffer)
            self.layout.feed(memoryview(buffer)[:count])
        except urllib3.exceptions.ReadTimeoutError:
            raise stalled(self.what, self.host, settings.stall_seconds()) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise HostError(f"{self.what} on host {self.host} failed: the engine's stream broke ({error}).") from None
        except TarLayoutError as error:  # a HostError: like a file that changed under tar, another attempt may pass
            raise HostError(
                f"{self.what} on host {self.host}: the engine's archive is damaged ({error}); nothing "
                f"was committed. Run the backup again."
            ) from None
        if count == 0 and not self.layout.ended:
            raise HostError(
                f"{self.what} on host {self.host}: the engine's archive ended before tar's end marker "
                f"(a file shrank or went away as it was read, and the engine dropped the rest); nothing "
                f"was committed. Run the backup again."
            )
        return count


@contextmanager
def archive(host: Host, volume: str) -> Iterator[_EngineArchive]:
    """The volume as a tar stream (entries `./name`, as `tar -C /data .` gives), written by the engine itself (its
    archive API, as `docker cp`) from a helper created with the volume read-only at /data and never started: no
    container process, no docker CLI, about half the CPU of `tar` in a `docker run` helper (README,
    bench/recovery_speed.py). A helper left by a killed run is removed by the next backup (`Volume.end_orphans`)."""
    what = f"archiving volume {volume}"
    where = f"{what} on host {host.name}"
    client = host.client()
    api = client.api
    try:
        with engine_refusals(where):
            helper = _create_helper(api, ensure_helper(host, client), volume, "archive", "ro")
        try:
            with engine_refusals(where):
                # docker-py's get_archive is this GET, but it turns off the read timeout that the stall needs.
                response = api.get(
                    engine_url(api, f"containers/{helper}/archive"),
                    params={"path": "/data/."},
                    headers={"Accept-Encoding": "identity"},
                    stream=True,
                    timeout=settings.stall_seconds(),
                )
            with response:
                if not response.ok:
                    raise HostError(f"{where} failed: {tail(response.text, 1)}.")
                yield _EngineArchive(response, what, host.name)
        finally:
            # One the engine failed to remove holds nothing but the volume, and the next backup's end_orphans takes it.
            with suppress(docker.errors.APIError, requests.exceptions.RequestException):
                api.remove_container(helper, force=True)
    finally:
        client.close()


def unsafe_reason(member: tarfile.TarInfo, symlinks: set[PurePosixPath]) -> str | None:
    """Why an archive entry must not be extracted into a volume, or None when it is safe. A symlink is restored as
    the symlink it is, an absolute one too (Debian's packages put them into app folders, and backup takes them): it
    is never followed, because no later entry may be written through it. `symlinks`: those seen so far."""
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "has an absolute path"
    if ".." in path.parts:
        return "climbs out with '..'"
    if member.ischr() or member.isblk():  # a FIFO holds no data and reaches nothing: it is kept
        return "is a device file"
    through = next((parent for parent in path.parents if parent in symlinks), None)
    if through is not None:
        return f"would be written through the symlink {str(through)!r}"
    if member.islnk():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or ".." in target.parts:
            return f"is a hard link to {member.linkname!r} outside the volume"
        if any(parent in symlinks for parent in target.parents):
            return f"is a hard link through the symlink to {member.linkname!r}"
    if member.issym() and not PurePosixPath(member.linkname).is_absolute():
        # The engine refuses a relative link that climbs out of the volume ("invalid symlink"); said here, first.
        depth = len(path.parent.parts)
        for part in PurePosixPath(member.linkname).parts:
            depth += -1 if part == ".." else 0 if part == "." else 1
            if depth < 0:
                return f"is a relative symlink to {member.linkname!r}, which climbs out of the volume"
    if member.issym():
        symlinks.add(path)
    else:
        symlinks.discard(path)  # an entry of the same name replaces the symlink
    return None


PIECE = 1 << 20  # what is handed on at once: tar's 512-byte headers and small files are joined up to this


def coalesced(parts: Iterable[bytes], size: int = PIECE) -> Iterator[bytes]:
    """The parts joined into pieces of at least `size` bytes (the last may be shorter); a part that large goes on as
    it is, uncopied."""
    piece = bytearray()
    for part in parts:
        if len(part) >= size:
            if piece:
                yield bytes(piece)
                piece.clear()
            yield part
            continue
        piece += part
        if len(piece) >= size:
            yield bytes(piece)
            piece.clear()
    if piece:
        yield bytes(piece)


def _content(archive: tarfile.TarFile, member: tarfile.TarInfo) -> BinaryIO | None:
    """Where a member's bytes are read: the archive's own stream, positioned at them, for a plain file (extractfile's
    reader copies every block twice more: 1 GB took 1.6 s instead of 0.2 s), extractfile for a sparse one (it fills
    the holes in)."""
    if not member.isfile():
        return None
    return archive.extractfile(member) if member.sparse is not None else archive.fileobj


def _as_emitted(member: tarfile.TarInfo, content: BinaryIO | None) -> tarfile.TarInfo:
    """The member as re-emitted: a header announces content only for a regular file, and a sparse file goes on as a
    plain one with its holes filled in (the engine's reader takes GNU sparse entries only in GNU headers)."""
    if content is not None and member.sparse is None:
        return member
    emitted = copy.copy(member)
    if content is None:
        emitted.size = 0
    else:
        emitted.type, emitted.sparse = tarfile.REGTYPE, None
    return emitted


def _entries(source: BinaryIO, volume: str) -> Iterator[bytes]:
    written = 0
    # 64 kB reads: tarfile's 10 kB default costs a Python call per 10 kB, and 1 MB copies the rest of the buffer at
    # every 512-byte header (bench: 1 GB of two files 0.8 s -> 0.19 s, 2000 small files 0.40 s -> 0.23 s).
    symlinks: set[PurePosixPath] = set()
    with tarfile.open(fileobj=source, mode="r|", bufsize=1 << 16) as archive:
        for member in archive:
            reason = unsafe_reason(member, symlinks)
            if reason:
                raise IntegrityError(f"archive for volume {volume}: entry {member.name!r} {reason}; restore refused.")
            content = _content(archive, member)
            member = _as_emitted(member, content)
            header = member.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")
            padding = bytes(-member.size % tarfile.BLOCKSIZE)
            yield header
            remaining = member.size
            while remaining:
                block = content.read(min(remaining, PIECE))
                if not block:
                    raise IntegrityError(
                        f"archive for volume {volume}: entry {member.name!r} ends early; restore refused."
                    )
                yield block
                remaining -= len(block)
            yield padding
            written += len(header) + member.size + len(padding)
    end = 2 * tarfile.BLOCKSIZE  # the end-of-archive marker, then padding to a whole record as tar writes
    yield bytes(end + -(written + end) % tarfile.RECORDSIZE)


def safe_entries(source: BinaryIO, volume: str) -> Iterator[bytes]:
    """The archive re-emitted entry by entry (PAX) in pieces of about PIECE bytes; the first unsafe entry is refused
    before any of its bytes is given."""
    return coalesced(_entries(source, volume))


def extract(host: Host, volume: str, source: BinaryIO) -> None:
    """The archive's safe entries unpacked into the volume by the engine itself (its archive API, as `docker cp`):
    into a helper container that is created with the volume at /data and never started. The bytes go from this
    process to the engine in one socket, not through a docker CLI, a container's stdin and a tar in it (README,
    bench/recovery_speed.py). The engine keeps numeric owners, modes and times, and skips the archive's root entry,
    as `tar --numeric-owner --same-permissions --no-overwrite-dir` did."""
    client = host.client()
    try:
        with engine_refusals(f"extracting into volume {volume} on host {host.name}"):
            helper = _extract_helper(client.api, ensure_helper(host, client), volume)
            try:
                client.api.put_archive(helper, "/data", safe_entries(source, volume))
            finally:
                client.api.remove_container(helper, force=True)
    finally:
        client.close()


def _create_helper(
    api: docker.APIClient, image: str, volume: str, role: str, mode: str, name: str | None = None
) -> str:
    """A helper container's id: created with the volume at /data and never started, labelled so that one a killed run
    left is found (`Volume.end_orphans`)."""
    return api.create_container(
        image,
        ["true"],
        name=name,
        network_disabled=True,
        labels={"incarnate.helper": role, "incarnate.volume": volume},
        host_config=api.create_host_config(binds=[f"{volume}:/data:{mode}"], network_mode="none"),
    )["Id"]


def _extract_helper(api: docker.APIClient, image: str, volume: str) -> str:
    """The helper's id. It has a name of its own per volume: a run killed while extracting leaves its helper behind
    (created, holding the volume), and the next extract removes that one instead of failing or leaving two."""
    name = f"incarnate-extract-{volume}"
    create = partial(_create_helper, api, image, volume, "extract", "rw", name)
    try:
        return create()
    except docker.errors.APIError as error:
        if error.status_code != 409:  # 409: the name is taken, by what a killed run left
            raise
    api.remove_container(name, force=True)
    return create()


def owner(host: Host, volume: str) -> tuple[int, int]:
    """Who owns the volume's root (numeric user and group)."""
    found = host.run(
        _helper(ensure_helper(host), volume, "ro", "stat", "-c", "%u %g", "/data"), what=f"reading volume {volume}"
    ).split()
    return int(found[0]), int(found[1])


def read_file(host: Host, volume: str, path: str) -> str:
    """A text file of the volume (`path` relative to its root, incarnate's own)."""
    return host.run(
        _helper(ensure_helper(host), volume, "ro", "cat", f"/data/{path}"), what=f"reading {path} of {volume}"
    )


def _tar_of(files: Iterable[tuple[str, bytes]], uid: int, gid: int) -> Iterator[bytes]:
    """A tar stream of the files (paths incarnate made, relative), each 0600, folders 0700, owned by uid:gid."""
    folders: set[str] = set()
    for path, content in files:
        for folder in reversed(PurePosixPath(path).parents[:-1]):
            if str(folder) not in folders:
                folders.add(str(folder))
                entry = tarfile.TarInfo(str(folder))
                entry.type, entry.mode, entry.uid, entry.gid = tarfile.DIRTYPE, 0o700, uid, gid
                yield entry.tobuf(tarfile.PAX_FORMAT)
        entry = tarfile.TarInfo(path)
        entry.size, entry.mode, entry.uid, entry.gid = len(content), 0o600, uid, gid
        yield entry.tobuf(tarfile.PAX_FORMAT) + content + bytes(-len(content) % tarfile.BLOCKSIZE)
    yield bytes(tarfile.RECORDSIZE)


def put_files(host: Host, volume: str, files: Iterable[tuple[str, bytes]]) -> None:
    """Files written into the volume (created or replaced), owned as its root is, by the engine (as extract)."""
    uid, gid = owner(host, volume)
    client = host.client()
    try:
        with engine_refusals(f"writing into volume {volume} on host {host.name}"):
            helper = _extract_helper(client.api, ensure_helper(host, client), volume)
            try:
                client.api.put_archive(helper, "/data", coalesced(_tar_of(files, uid, gid)))
            finally:
                client.api.remove_container(helper, force=True)
    finally:
        client.close()


def reset(host: Host, volume: str) -> None:
    host.run(
        _helper(
            ensure_helper(host),
            volume,
            "rw",
            "find",
            "/data",
            "-mindepth",
            "1",
            "-maxdepth",
            "1",
            "-exec",
            "rm",
            "-rf",
            "{}",
            "+",
        ),
        what=f"emptying volume {volume}",
    )


class Volume:
    """A Compose volume of the stack as a data source. A volume that does not exist yet is empty, and
    restoring into it creates it (with Compose's labels); backing up a missing volume is an error."""

    kind: ClassVar[str] = "volume"
    engine: ClassVar[None] = None
    program: ClassVar[str] = "archive helper"

    def __init__(self, project: ComposeProject, name: str) -> None:
        self.project, self.target = project, name
        self._reading: _EngineArchive | None = None

    @property
    def artifact(self) -> str:
        return artifact_name(self.kind, self.target)

    def _existing(self) -> str:
        volume = self.project.volume(self.target)
        if volume is None:
            raise StageError(
                f"stack {self.project.name}: volume {self.target} does not exist on host {self.project.host.name}."
            )
        return volume

    @cached_property
    def _restoring_into(self) -> str:
        return self.project.ensure_volume(self.target)

    def is_empty(self) -> bool:
        return is_empty(self.project.host, self._restoring_into)

    def wait_until_serving(self, seconds: float) -> None:
        return None  # a volume is there once it exists

    @contextmanager
    def dump(self) -> Iterator[BinaryIO]:
        with archive(self.project.host, self._existing()) as stream:
            self._reading = stream
            try:
                yield stream
            finally:
                self._reading = None

    def load(self, source: BinaryIO) -> None:
        extract(self.project.host, self._restoring_into, source)

    def reset(self) -> None:
        reset(self.project.host, self._restoring_into)

    def row_counter(self) -> None:
        return None

    def end_orphans(self) -> int:
        """End this process's read of the volume, if one runs, and remove the helpers of the volume that a killed run
        left (created, holding the volume)."""
        if reading := self._reading:
            reading.end()
        host, volume = self.project.host, self.project.volume(self.target)
        if volume is None:
            return 0
        found = host.run(
            ["docker", "ps", "--all", "--quiet", "--filter", f"label=incarnate.volume={volume}"],
            what=f"looking for helpers of volume {volume}",
        ).split()
        if found:
            host.run(["docker", "rm", "--force", *found], what=f"removing orphaned helpers of volume {volume}")
        return len(found)
