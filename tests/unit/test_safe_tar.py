"""Restore refuses archive entries that could write outside the target volume."""

import io
import tarfile

import pytest

from incarnate.errors import IntegrityError
from incarnate.datasources.volume import safe_tar


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
    source = archive((entry("./docs", tarfile.DIRTYPE), None),
                     (entry("./docs/a.txt"), b"hello"), (entry("./link", tarfile.SYMTYPE, "docs/a.txt"), None))
    sink = io.BytesIO()
    safe_tar(source, "files")(sink)
    sink.seek(0)
    with tarfile.open(fileobj=sink) as result:
        assert result.getnames() == ["./docs", "./docs/a.txt", "./link"]
        assert result.extractfile("./docs/a.txt").read() == b"hello"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (entry("/etc/passwd"), "has an absolute path"),
        (entry("./../../etc/cron.d/x"), "climbs out with '..'"),
        (entry("./dev/sda", tarfile.BLKTYPE), "is a device or FIFO file"),
        (entry("./tty", tarfile.CHRTYPE), "is a device or FIFO file"),
        (entry("./escape", tarfile.SYMTYPE, "/etc"), "is a link to '/etc' outside the volume"),
        (entry("./up", tarfile.SYMTYPE, "../../.."), "is a link to '../../..' outside the volume"),
        (entry("./hard", tarfile.LNKTYPE, "../secret"), "is a link to '../secret' outside the volume"),
    ],
)
def test_restore_refuses_archive_entry(bad, reason):
    payload = b"x" if bad.type == tarfile.REGTYPE else None
    source = archive((entry("./fine.txt"), b"ok"), (bad, payload))
    with pytest.raises(IntegrityError, match=rf"archive for volume files: entry '{bad.name}' {reason}; restore refused"):
        safe_tar(source, "files")(io.BytesIO())
