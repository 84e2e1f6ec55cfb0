"""Restore refuses archive entries that could write outside the target volume."""

import io
import subprocess
import tarfile

import pytest

from incarnate.datasources.volume import safe_entries
from incarnate.errors import IntegrityError


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as out:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
    buffer.seek(0)
    return buffer


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def test_safe_archive_passes_through_unchanged_in_content():
    source = archive(
        (entry("./docs", tarfile.DIRTYPE), None),
        (entry("./docs/a.txt"), b"hello"),
        (entry("./link", tarfile.SYMTYPE, "docs/a.txt"), None),
    )
    with tarfile.open(fileobj=io.BytesIO(b"".join(safe_entries(source, "files")))) as result:
        assert result.getnames() == ["./docs", "./docs/a.txt", "./link"]
        assert result.extractfile("./docs/a.txt").read() == b"hello"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (entry("/etc/passwd"), "has an absolute path"),
        (entry("./../../etc/cron.d/x"), "climbs out with '..'"),
        (entry("./dev/sda", tarfile.BLKTYPE), "is a device file"),
        (entry("./tty", tarfile.CHRTYPE), "is a device file"),
        (entry("./hard", tarfile.LNKTYPE, "../secret"), "is a hard link to '../secret' outside the volume"),
        (entry("./hard", tarfile.LNKTYPE, "/etc/shadow"), "is a hard link to '/etc/shadow' outside the volume"),
        (
            entry("./up", tarfile.SYMTYPE, "../../.."),
            "is a relative symlink to '../../..', which climbs out of the volume",
        ),
        (
            entry("./a/b", tarfile.SYMTYPE, "../../x"),
            "is a relative symlink to '../../x', which climbs out of the volume",
        ),
    ],
)
def test_restore_refuses_archive_entry(bad, reason):
    payload = b"x" if bad.type == tarfile.REGTYPE else None
    source = archive((entry("./fine.txt"), b"ok"), (bad, payload))
    with pytest.raises(
        IntegrityError, match=rf"archive for volume files: entry '{bad.name}' {reason}; restore refused"
    ):
        b"".join(safe_entries(source, "files"))


@pytest.mark.parametrize(
    "kept",
    [
        entry("./share", tarfile.SYMTYPE, "/usr/share/dokuwiki/lib"),  # what Debian's packages put in app folders
        entry("./conf/up", tarfile.SYMTYPE, "../fine.txt"),
        entry("./conf/local.php", tarfile.SYMTYPE, "/etc/dokuwiki/local.php"),
        entry("./queue", tarfile.FIFOTYPE),
        entry("./same", tarfile.LNKTYPE, "./fine.txt"),
        entry("./to-link", tarfile.LNKTYPE, "./share"),  # a hard link to the symlink itself, not through it
    ],
)
def test_restore_keeps_every_entry_backup_takes_a_symlink_as_the_symlink_it_is(kept):
    """Whatever a backup of a volume holds restores, links as links: a symlink's target is never followed."""
    source = archive(
        (entry("./fine.txt"), b"ok"),
        (entry("./conf", tarfile.DIRTYPE), None),
        (entry("./share", tarfile.SYMTYPE, "/usr/share/app"), None),
        (kept, None),
    )
    with tarfile.open(fileobj=io.BytesIO(b"".join(safe_entries(source, "files")))) as result:
        restored = result.getmember(kept.name)
        assert (restored.type, restored.linkname) == (kept.type, kept.linkname)


@pytest.mark.parametrize(
    ("through", "reason"),
    [
        (entry("./share/evil.php"), "would be written through the symlink 'share'"),
        (entry("./share/sub", tarfile.DIRTYPE), "would be written through the symlink 'share'"),
        (entry("./share/x", tarfile.SYMTYPE, "/"), "would be written through the symlink 'share'"),
        (entry("./hard", tarfile.LNKTYPE, "./share/passwd"), "is a hard link through the symlink to './share/passwd'"),
    ],
)
def test_restore_never_writes_an_entry_through_a_symlink(through, reason):
    source = archive((entry("./share", tarfile.SYMTYPE, "/etc"), None), (through, b"x" if through.isfile() else None))
    with pytest.raises(IntegrityError, match=rf"entry '{through.name}' {reason}; restore refused"):
        b"".join(safe_entries(source, "files"))


def test_an_entry_of_the_same_name_replaces_a_symlink_and_may_then_hold_entries():
    source = archive(
        (entry("./data", tarfile.SYMTYPE, "/etc"), None),
        (entry("./data", tarfile.DIRTYPE), None),
        (entry("./data/file"), b"inside"),
    )
    with tarfile.open(fileobj=io.BytesIO(b"".join(safe_entries(source, "files")))) as result:
        assert result.extractfile("./data/file").read() == b"inside"


def test_safe_archive_is_what_tarfile_itself_writes_byte_for_byte():
    """Large files cross the piece size, small ones and headers are joined: the stream is still exactly the archive
    tarfile's own writer makes from the same entries (what the helper's `tar -x` and the engine were given before)."""
    members = [
        (entry("./big"), bytes(range(256)) * 9000),
        (entry("./dir", tarfile.DIRTYPE), None),
        *((entry(f"./dir/small{number}"), b"s" * number) for number in range(300)),
        (entry("./dir/hard", tarfile.LNKTYPE, "./big"), None),
        (entry("./empty"), b""),
    ]
    source = archive(*members)
    expected = io.BytesIO()
    with (
        tarfile.open(fileobj=archive(*members), mode="r|") as reading,
        tarfile.open(fileobj=expected, mode="w|", format=tarfile.PAX_FORMAT) as writing,
    ):
        for member in reading:
            writing.addfile(member, reading.extractfile(member) if member.isfile() else None)
    pieces = list(safe_entries(source, "files"))
    assert b"".join(pieces) == expected.getvalue()
    assert len(pieces) <= 5  # 600 headers and small files were joined, the large one went on in 1 MB blocks


def test_a_sparse_file_goes_on_as_a_plain_file_with_its_holes_filled(tmp_path):
    """GNU tar's sparse entries (`tar -S`): the engine reads them only in GNU headers, so they are re-emitted as the
    regular file they stand for, byte for byte."""
    folder = tmp_path / "volume"
    folder.mkdir()
    with open(folder / "sparse", "wb") as file:
        file.write(b"A" * 5000)
        file.seek(3 << 20)
        file.write(b"B" * 100)
    subprocess.run(
        ["tar", "--create", "--sparse", "--file", str(tmp_path / "sparse.tar"), "--directory", str(folder), "."],
        check=True,
    )
    with (
        open(tmp_path / "sparse.tar", "rb") as source,
        tarfile.open(fileobj=io.BytesIO(b"".join(safe_entries(source, "files")))) as result,
    ):
        member = result.getmember("./sparse")
        assert member.type == tarfile.REGTYPE and member.sparse is None
        assert result.extractfile(member).read() == (folder / "sparse").read_bytes()
