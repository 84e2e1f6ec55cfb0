"""A volume's archive read by the engine (a backup's archive) and unpacked by it (restore's extract), against the
real engine and registry."""

import io
import subprocess
import tarfile
import threading
import uuid
from pathlib import Path

import pytest

from incarnate.compose import ComposeProject
from incarnate.datasources.helper import ensure_helper
from incarnate.datasources.volume import Volume, extract
from incarnate.datasources.volume import archive as volume_archive
from incarnate.errors import HostError, StageError
from incarnate.host import Host
from tests.e2e.conftest import in_volume

PROJECT = "tvolumes"


@pytest.fixture
def volume():
    # Labelled as Compose labels a stack's volume `files`, so that a Volume of project PROJECT finds it.
    name = f"textract{uuid.uuid4().hex[:8]}"
    subprocess.run(
        [
            "docker",
            "volume",
            "create",
            "--label",
            f"com.docker.compose.project={PROJECT}-{name}",
            "--label",
            "com.docker.compose.volume=files",
            name,
        ],
        check=True,
        capture_output=True,
    )
    yield name
    subprocess.run(["docker", "rm", "--force", f"incarnate-extract-{name}"], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "--force", name], check=True, capture_output=True)


def archive() -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        for name, kind, data, mode, owner in (
            ("./docs", tarfile.DIRTYPE, None, 0o750, 1001),
            ("./docs/a.txt", tarfile.REGTYPE, b"hello", 0o640, 1234),
            ("./link", tarfile.SYMTYPE, None, 0o777, 0),
        ):
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
    return in_volume(
        volume, "cd /data && find . -mindepth 1 | sort | xargs stat -c '%n %u %g %a %Y' && cat link"
    ).splitlines()


def helpers_of(volume: str) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label=incarnate.volume={volume}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()


def test_the_engine_unpacks_with_numeric_owners_modes_and_times_and_removes_a_killed_runs_helper(volume):
    # What a run killed while extracting leaves: its helper, created, holding the volume.
    subprocess.run(
        [
            "docker",
            "create",
            "--name",
            f"incarnate-extract-{volume}",
            "--label",
            f"incarnate.volume={volume}",
            "--network",
            "none",
            "-v",
            f"{volume}:/data",
            ensure_helper(Host()),
            "true",
        ],
        check=True,
        capture_output=True,
    )
    extract(Host(), volume, archive())
    assert listing(volume) == [
        "./docs 1001 1002 750 1700000000",
        "./docs/a.txt 1234 1235 640 1700000000",
        "./link 0 1 777 1700000000",
        "hello",
    ]
    assert helpers_of(volume) == []


def test_an_engine_refusal_is_one_sentence_naming_the_volume_and_host_and_leaves_no_helper(volume):
    with pytest.raises(HostError) as refused:
        extract(Host(), f"{volume}!", archive())  # a name the engine refuses
    message = str(refused.value)
    assert message.startswith(f"extracting into volume {volume}! on host local failed: ") and message.endswith(".")
    assert "\n" not in message
    assert helpers_of(volume) == []


def test_a_volume_reads_back_as_a_whole_archive_with_owners_modes_and_times_and_leaves_no_helper(volume):
    extract(Host(), volume, archive())
    with volume_archive(Host(), volume) as stream:
        read_back = stream.read()
    with tarfile.open(fileobj=io.BytesIO(read_back), mode="r:") as back:
        entries = {member.name: member for member in back}
        assert sorted(entries) == [".", "./docs", "./docs/a.txt", "./link"]  # as `tar -C /data .` names them
        text = entries["./docs/a.txt"]
        assert (text.uid, text.gid, text.mode & 0o7777, text.mtime) == (1234, 1235, 0o640, 1_700_000_000)
        assert back.extractfile(text).read() == b"hello"
        assert entries["./link"].linkname == "docs/a.txt"
    assert helpers_of(volume) == []


def test_a_read_the_backup_ends_stops_at_once_and_end_orphans_removes_what_a_killed_run_left(volume, tmp_path: Path):
    in_volume(volume, "head -c 209715200 /dev/urandom > /data/big")
    source = Volume(ComposeProject(Host(), f"{PROJECT}-{volume}", tmp_path), "files")
    read, failed, started = [0], [], threading.Event()

    def backing_up() -> None:  # as a backup's volume thread reads while its database thread fails
        try:
            with source.dump() as stream:
                while block := stream.read(1 << 20):
                    read[0] += len(block)
                    started.set()
        except StageError as error:
            failed.append(str(error))
        finally:
            started.set()

    reader = threading.Thread(target=backing_up)
    reader.start()
    assert started.wait(60)
    assert source.end_orphans() <= 1  # what the failing thread calls: this read is ended, its helper removed
    reader.join(60)
    assert failed == [f"archiving volume {volume} on host local was ended: another artifact of the backup failed."]
    assert read[0] < 200 << 20
    assert helpers_of(volume) == []

    # A run killed while reading leaves its helper, created and holding the volume: the next backup removes it.
    subprocess.run(
        [
            "docker",
            "create",
            "--label",
            "incarnate.helper=archive",
            "--label",
            f"incarnate.volume={volume}",
            "--network",
            "none",
            "-v",
            f"{volume}:/data:ro",
            ensure_helper(Host()),
            "true",
        ],
        check=True,
        capture_output=True,
    )
    assert source.end_orphans() == 1
    assert helpers_of(volume) == []


def test_an_engine_refusal_to_archive_is_one_sentence_naming_the_volume_and_host(volume):
    with pytest.raises(HostError) as refused:
        with volume_archive(Host(), f"{volume}!"):  # a name the engine refuses
            pass
    message = str(refused.value)
    assert message.startswith(f"archiving volume {volume}! on host local failed: ") and message.endswith(".")
    assert "\n" not in message
    assert helpers_of(volume) == []


def read_changing(volume: str, change: str) -> list[tuple[str, int]]:
    """The volume's archive, with `change` run in it once 20 MB of a 200 MB file were read; its entries."""
    in_volume(volume, "head -c 200000000 /dev/zero > /data/a && echo z > /data/zz")
    read, changed = bytearray(), False
    with volume_archive(Host(), volume) as stream:
        while block := stream.read(1 << 16):
            read += block
            if len(read) > 20_000_000 and not changed:
                in_volume(volume, change)  # the engine waits meanwhile: it is mid-file
                changed = True
    with tarfile.open(fileobj=io.BytesIO(read)) as back:
        return [(member.name, member.size) for member in back]


def test_a_file_that_grows_as_it_is_read_is_kept_at_its_size_and_one_that_shrinks_fails_the_read(volume):
    # The engine's writer copies what the header announced; a later file that vanishes is left out, as tar would.
    assert read_changing(volume, "head -c 1000 /dev/zero >> /data/a") == [(".", 0), ("./a", 200_000_000), ("./zz", 2)]
    # A shrinking file makes the engine drop the rest of the archive and end it cleanly: only its layout tells.
    with pytest.raises(
        HostError,
        match=r"^archiving volume \w+ on host local: the engine's archive ended before tar's "
        r"end marker \(a file shrank",
    ):
        read_changing(volume, "truncate -s 1000 /data/a")
    assert helpers_of(volume) == []


def test_every_kind_of_entry_a_volume_can_hold_goes_through_backup_and_restore_as_it_was(volume):
    """What Debian's packaging leaves in an app's folder (absolute symlinks into /usr/share) and what apps make
    (relative symlinks, FIFOs, hard links) is backed up by the engine, and restored as it was: links as links."""
    in_volume(
        volume,
        "cd /data && mkdir conf && echo page > page.txt && ln page.txt hard.txt && mkfifo queue"
        " && ln -s /usr/share/dokuwiki/lib lib && ln -s ../page.txt conf/up && ln -s page.txt same",
    )
    with volume_archive(Host(), volume) as stream:
        backed_up = stream.read()
    fresh = f"{volume}-restored"
    try:
        extract(Host(), fresh, io.BytesIO(backed_up))
        restored = in_volume(
            fresh,
            "cd /data && find . | sort && for link in lib conf/up same; do readlink $link; done"
            " && stat -c '%h %F' hard.txt queue",
        ).splitlines()
    finally:
        subprocess.run(["docker", "volume", "rm", "--force", fresh], capture_output=True)
    assert restored == [
        ".",
        "./conf",
        "./conf/up",
        "./hard.txt",
        "./lib",
        "./page.txt",
        "./queue",
        "./same",
        "/usr/share/dokuwiki/lib",
        "../page.txt",
        "page.txt",
        "2 regular file",
        "1 fifo",
    ]
