"""A tar stream's layout followed as it passes: whole archives pass in any feed sizes, ones a writer gave up on fail."""

import io
import tarfile

import pytest

from incarnate.datasources.tar_layout import TarLayout, TarLayoutError


def tar(*files: tuple[str, bytes], format: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format) as out:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def laid_out(stream: bytes, piece: int) -> TarLayout:
    layout = TarLayout()
    for at in range(0, len(stream), piece):
        layout.feed(stream[at : at + piece])
    return layout


FILES = (("./a.txt", b"hello"), ("./" + "long/" * 40 + "name", b"x" * 3000), ("./ünïcode", b""), ("./b", bytes(1024)))


@pytest.mark.parametrize("piece", [1, 7, 512, 1000, 1 << 20])
@pytest.mark.parametrize("format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_a_whole_archive_ends_at_its_marker_whatever_the_feed_sizes(piece, format):
    files = FILES if format != tarfile.USTAR_FORMAT else FILES[:1] + FILES[2:]  # ustar cannot hold the long name
    layout = laid_out(tar(*files, format=format), piece)
    assert layout.ended


def test_an_archive_ending_right_after_its_marker_is_whole():
    # Go's writer, the engine's, ends at the two zero blocks; tarfile and GNU tar pad on to a 10 kB record.
    stream = tar(*FILES[:2])  # the last file's bytes are not zeros: the marker is found from the end
    marker = len(stream) - 1024
    while stream[marker - 512 : marker] == bytes(512):
        marker -= 512
    assert laid_out(stream[: marker + 1024], 4096).ended
    assert not laid_out(stream[: marker + 512], 4096).ended


def test_an_archive_cut_inside_a_file_or_before_its_marker_is_not_whole():
    stream = tar(*FILES)
    for cut in (600, 512 * 3 + 10, stream.index(b"x" * 3000) + 2999):
        assert not laid_out(stream[:cut], 1000).ended


def test_a_file_that_shrank_as_it_was_read_is_found():
    # What the engine's writer leaves: the header says 3000 bytes, 1000 came, then nothing (no later entry, no marker).
    stream = tar(("./shrinks", b"y" * 3000), ("./after", b"z"))
    shrunk = stream[: stream.index(b"y" * 3000) + 1000]
    assert not laid_out(shrunk, 4096).ended
    # A writer that went on after the short file: the next header is not where the sizes put it.
    with pytest.raises(TarLayoutError, match=r"^no valid tar header at byte 3584$"):
        laid_out(shrunk + b"y" * 5000, 4096)


def test_a_pax_size_record_gives_the_next_entrys_size():
    # Over 8 GiB a size goes into a PAX record; the ustar field may then say anything. Built small: the record says
    # 5, the ustar field 0 (its checksum mended).
    info = tarfile.TarInfo("./big")
    info.size = 5
    info.pax_headers = {"size": "5"}
    raw = bytearray(info.tobuf(tarfile.PAX_FORMAT))
    entry = len(raw) - 512
    raw[entry + 124 : entry + 136] = b"%011o\0" % 0
    raw[entry + 148 : entry + 156] = b"        "
    raw[entry + 148 : entry + 156] = b"%06o\0 " % sum(raw[entry : entry + 512])
    stream = bytes(raw) + b"hello".ljust(512, b"\0") + bytes(1024)
    assert laid_out(stream, 100).ended
    assert not laid_out(stream[: -1024 - 512 + 3], 100).ended


def test_a_lone_zero_block_between_entries_is_refused():
    stream = tar(("./a", b"1"), ("./b", b"2"))
    second = stream.index(b"./b")
    with pytest.raises(TarLayoutError, match="a lone zero block before byte"):
        laid_out(stream[:second] + bytes(512) + stream[second:], 512)
