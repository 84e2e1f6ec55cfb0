"""A volume's archive unpacked by the engine (restore's extract), against the real engine and registry."""

import io
import subprocess
import tarfile
import uuid

import pytest

from incarnate import settings
from incarnate.datasources.volume import extract, toolbox_image
from incarnate.errors import HostError
from incarnate.host import Host


@pytest.fixture
def volume():
    name = f"textract{uuid.uuid4().hex[:8]}"
    subprocess.run(["docker", "volume", "create", name], check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "rm", "--force", f"incarnate-extract-{name}"], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "--force", name], check=True, capture_output=True)


def archive() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        for name, kind, data, mode, owner in (("./docs", tarfile.DIRTYPE, None, 0o750, 1001),
                                              ("./docs/a.txt", tarfile.REGTYPE, b"hello", 0o640, 1234),
                                              ("./link", tarfile.SYMTYPE, None, 0o777, 0)):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.mtime = kind, mode, owner, owner + 1, 1_700_000_000
            if kind == tarfile.SYMTYPE:
                info.linkname = "docs/a.txt"
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def listing(volume: str) -> list[str]:
    return subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{volume}:/data:ro", toolbox_image(),
                           "sh", "-c", "cd /data && find . -mindepth 1 | sort | xargs stat -c '%n %u %g %a %Y' && cat link"],
                          check=True, capture_output=True, text=True).stdout.splitlines()


def helpers_of(volume: str) -> list[str]:
    return subprocess.run(["docker", "ps", "--all", "--quiet", "--filter", f"label=incarnate.volume={volume}"],
                          check=True, capture_output=True, text=True).stdout.split()


def test_the_engine_unpacks_with_numeric_owners_modes_and_times_and_removes_a_killed_runs_helper(volume):
    # What a run killed while extracting leaves: its helper, created, holding the volume.
    subprocess.run(["docker", "create", "--name", f"incarnate-extract-{volume}", "--label", f"incarnate.volume={volume}",
                    "--network", "none", "-v", f"{volume}:/data", toolbox_image(), "true"], check=True, capture_output=True)
    extract(Host(), volume, settings.registry(), archive())
    assert listing(volume) == ["./docs 1001 1002 750 1700000000", "./docs/a.txt 1234 1235 640 1700000000",
                               "./link 0 1 777 1700000000", "hello"]
    assert helpers_of(volume) == []


def test_an_engine_refusal_is_one_sentence_naming_the_volume_and_host_and_leaves_no_helper(volume):
    with pytest.raises(HostError) as refused:
        extract(Host(), volume, "127.0.0.1:1", archive())  # no such registry: the helper's image is not on the host
    message = str(refused.value)
    assert message.startswith(f"extracting into volume {volume} on host local failed: ") and message.endswith(".")
    assert "\n" not in message
    assert helpers_of(volume) == []
