"""File volumes as tar streams, read and written by a small helper container (the toolbox image)."""

import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import PurePosixPath
from typing import BinaryIO, ClassVar

from incarnate import settings
from incarnate.backup_format import artifact_name
from incarnate.compose import ComposeProject
from incarnate.errors import IntegrityError, StageError
from incarnate.host import Host

TOOLBOX_TAG = "1"


def toolbox_image(registry: str | None = None) -> str:
    return f"{registry or settings.registry()}/incarnate/toolbox:{TOOLBOX_TAG}"


def pull_toolbox(host: Host, registry: str) -> None:
    """The image whose tar archives and extracts volumes, onto the host before any volume is read or written."""
    host.run(["docker", "pull", "--quiet", toolbox_image(registry)], what="pulling the toolbox image")


ARCHIVE_LABEL = "incarnate.helper=archive"  # marks the helper that archives a volume, so an orphaned one can be found


def _helper(volume: str, mode: str, registry: str, *command: str, interactive: bool = False,
            labels: tuple[str, ...] = ()) -> list[str]:
    # --log-driver none: the default json-file driver would copy every byte of the stream into a log file, which
    # both doubles the disk writes and slows the read sevenfold (tests/unit/test_volume_helpers.py).
    return ["docker", "run", "--rm", *(["-i"] if interactive else []), "--network", "none", "--log-driver", "none",
            *(arg for label in labels for arg in ("--label", label)),
            "-v", f"{volume}:/data:{mode}", toolbox_image(registry), *command]


def is_empty(host: Host, volume: str, registry: str) -> bool:
    listing = host.run(_helper(volume, "ro", registry, "ls", "-A", "/data"), what=f"listing volume {volume}")
    return listing.strip() == ""


@contextmanager
def archive(host: Host, volume: str, registry: str) -> Iterator[BinaryIO]:
    command = _helper(volume, "ro", registry, "tar", "--create", "--numeric-owner", "--directory", "/data", "--file", "-", ".",
                      labels=(ARCHIVE_LABEL, f"incarnate.volume={volume}"))
    with host.stream_out(command, what=f"archiving volume {volume}") as stream:
        yield stream


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why an archive entry must not be extracted into a volume, or None when it is safe."""
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "has an absolute path"
    if ".." in path.parts:
        return "climbs out with '..'"
    if member.isdev() or member.isfifo():
        return "is a device or FIFO file"
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or ".." in (target.parts if member.islnk() else (path.parent / target).parts):
            return f"is a link to {member.linkname!r} outside the volume"
    return None


def safe_tar(source: BinaryIO, volume: str) -> Callable[[BinaryIO], None]:
    """A feed that re-emits an archive entry by entry, refusing the first unsafe one before it is written."""

    def feed(sink: BinaryIO) -> None:
        with tarfile.open(fileobj=source, mode="r|") as archive, tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as out:
            for member in archive:
                reason = unsafe_reason(member)
                if reason:
                    raise IntegrityError(f"archive for volume {volume}: entry {member.name!r} {reason}; restore refused.")
                out.addfile(member, archive.extractfile(member) if member.isfile() else None)

    return feed


def extract(host: Host, volume: str, registry: str, source: BinaryIO) -> None:
    command = _helper(volume, "rw", registry, "tar", "--extract", "--numeric-owner", "--same-permissions",
                      "--no-overwrite-dir", "--directory", "/data", "--file", "-", interactive=True)
    host.stream_in(command, safe_tar(source, volume), what=f"extracting into volume {volume}")


def reset(host: Host, volume: str, registry: str) -> None:
    host.run(_helper(volume, "rw", registry, "find", "/data", "-mindepth", "1", "-delete"), what=f"emptying volume {volume}")


class Volume:
    """A Compose volume of the stack as a data source. A volume that does not exist yet is empty, and
    restoring into it creates it (with Compose's labels); backing up a missing volume is an error."""

    kind: ClassVar[str] = "volume"
    engine: ClassVar[None] = None
    program: ClassVar[str] = "archive helper"

    def __init__(self, project: ComposeProject, name: str, registry: str) -> None:
        self.project, self.target, self.registry = project, name, registry

    @property
    def artifact(self) -> str:
        return artifact_name(self.kind, self.target)

    def _existing(self) -> str:
        volume = self.project.volume(self.target)
        if volume is None:
            raise StageError(f"stack {self.project.name}: volume {self.target} does not exist on host {self.project.host.name}.")
        return volume

    @cached_property
    def _restoring_into(self) -> str:
        return self.project.ensure_volume(self.target)

    def is_empty(self) -> bool:
        return is_empty(self.project.host, self._restoring_into, self.registry)

    @contextmanager
    def dump(self) -> Iterator[BinaryIO]:
        with archive(self.project.host, self._existing(), self.registry) as stream:
            yield stream

    def load(self, source: BinaryIO) -> None:
        extract(self.project.host, self._restoring_into, self.registry, source)

    def reset(self) -> None:
        reset(self.project.host, self._restoring_into, self.registry)

    def row_counter(self) -> None:
        return None

    def end_orphans(self) -> int:
        """Remove archive helpers of this volume that still run (their run was killed, or gave up on them)."""
        host, volume = self.project.host, self.project.volume(self.target)
        if volume is None:
            return 0
        found = host.run(["docker", "ps", "--quiet", "--filter", f"label={ARCHIVE_LABEL}", "--filter", f"label=incarnate.volume={volume}"],
                         what=f"looking for archive helpers of volume {volume}").split()
        if found:
            host.run(["docker", "rm", "--force", *found], what=f"removing orphaned archive helpers of volume {volume}")
        return len(found)
