"""File volumes as tar streams, read and written by a small helper container (the toolbox image)."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from incarnate import settings
from incarnate.host import Host

TOOLBOX_TAG = "1"


def toolbox_image(registry: str | None = None) -> str:
    return f"{registry or settings.registry()}/incarnate/toolbox:{TOOLBOX_TAG}"


def _helper(volume: str, mode: str, registry: str, *command: str, interactive: bool = False) -> list[str]:
    return ["docker", "run", "--rm", *(["-i"] if interactive else []), "--network", "none",
            "-v", f"{volume}:/data:{mode}", toolbox_image(registry), *command]


def is_empty(host: Host, volume: str, registry: str) -> bool:
    listing = host.run(_helper(volume, "ro", registry, "ls", "-A", "/data"), what=f"listing volume {volume}")
    return listing.strip() == ""


@contextmanager
def archive(host: Host, volume: str, registry: str) -> Iterator[BinaryIO]:
    command = _helper(volume, "ro", registry, "tar", "--create", "--numeric-owner", "--directory", "/data", "--file", "-", ".")
    with host.stream_out(command, what=f"archiving volume {volume}") as stream:
        yield stream


def extract(host: Host, volume: str, registry: str, source: BinaryIO) -> None:
    command = _helper(volume, "rw", registry, "tar", "--extract", "--numeric-owner", "--same-permissions",
                      "--directory", "/data", "--file", "-", interactive=True)
    host.stream_in(command, source, what=f"extracting into volume {volume}")


def reset(host: Host, volume: str, registry: str) -> None:
    host.run(_helper(volume, "rw", registry, "find", "/data", "-mindepth", "1", "-delete"), what=f"emptying volume {volume}")
