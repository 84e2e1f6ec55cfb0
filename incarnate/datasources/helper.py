"""The helper image volumes are read, written and emptied with: made by incarnate on each engine from this machine's
static busybox (about 2 MB), never pulled. A stack's registry then needs nothing but its release's images, and no
vendor's or registry's image ever sees a customer's volume through incarnate's helper."""

import hashlib
import io
import struct
import subprocess
import tarfile
from contextlib import closing
from functools import cache
from pathlib import Path

import docker.errors

from incarnate.datasources.engine_api import engine_refusals
from incarnate.errors import HostError
from incarnate.host import Host

BUSYBOX = Path("/bin/busybox")
REPOSITORY = "incarnate-helper"
PT_INTERP = 3  # an ELF program header asking for a dynamic loader, which the helper image does not have


def is_static(binary: bytes) -> bool:
    """Whether an ELF executable runs without a dynamic loader (has no PT_INTERP program header)."""
    if binary[:4] != b"\x7fELF" or binary[4] not in (1, 2) or binary[5] not in (1, 2):
        return False
    order = "<" if binary[5] == 1 else ">"
    # e_phoff, e_phentsize and e_phnum sit at other offsets in 64-bit (class 2) and 32-bit ELF headers
    (offset,), (size, count) = (
        (struct.unpack_from(f"{order}Q", binary, 0x20), struct.unpack_from(f"{order}HH", binary, 0x36))
        if binary[4] == 2
        else (struct.unpack_from(f"{order}I", binary, 0x1C), struct.unpack_from(f"{order}HH", binary, 0x2A))
    )
    return all(struct.unpack_from(f"{order}I", binary, offset + index * size)[0] != PT_INTERP for index in range(count))


@cache
def _busybox(path: Path = BUSYBOX) -> bytes:
    try:
        binary = path.read_bytes()
    except OSError as error:
        raise HostError(
            f"incarnate makes its volume helper image from a static busybox, and {path} cannot be read on this machine "
            f"({error.strerror}): install Debian's busybox-static (`apt-get install busybox-static`)."
        ) from None
    if not is_static(binary):
        raise HostError(
            f"incarnate makes its volume helper image from a static busybox, and {path} on this machine is not "
            f"statically linked: install Debian's busybox-static (`apt-get install busybox-static`)."
        )
    return binary


def helper_image() -> str:
    """The helper image's name: its tag is the busybox's digest, so a changed busybox makes a new image."""
    return f"{REPOSITORY}:{hashlib.sha256(_busybox()).hexdigest()[:16]}"


def _root_filesystem(binary: bytes) -> bytes:
    """A tar of /bin/busybox and a link per applet (sh, find, tar, ...), as `busybox --install` would make."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True, check=True).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for folder in ("bin", "tmp"):
            entry = tarfile.TarInfo(folder)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            archive.addfile(entry)
        entry = tarfile.TarInfo("bin/busybox")
        entry.size, entry.mode = len(binary), 0o755
        archive.addfile(entry, io.BytesIO(binary))
        for applet in sorted(set(applets) - {"busybox"}):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    return buffer.getvalue()


def ensure_helper(host: Host, client: docker.DockerClient | None = None) -> str:
    """The helper image on the host's engine (through `client`, if one is open), imported there once; its name."""
    if client is None:
        with closing(host.client()) as opened:
            return ensure_helper(host, opened)
    image = helper_image()
    with engine_refusals(f"making the volume helper image on host {host.name}"):
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            repository, tag = image.split(":")
            client.api.import_image_from_data(
                _root_filesystem(_busybox()), repository=repository, tag=tag, changes=["ENV PATH=/bin"]
            )
    return image
