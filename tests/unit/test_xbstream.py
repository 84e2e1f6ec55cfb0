"""Where a MariaDB physical base says its binlog stood: read from mariadb-backup's xbstream chunk by chunk, so a
file's bytes (a customer's row) can never pass for the position."""

import struct
import zlib

import pytest

from incarnate.datasources.mariadb import BaseInfo
from incarnate.errors import IntegrityError


def chunk(path: bytes, payload: bytes, offset: int = 0, checksum: int | None = None) -> bytes:
    crc = zlib.crc32(payload) if checksum is None else checksum
    header = struct.pack("<8sBcI", b"XBSTCK01", 0, b"P", len(path)) + path
    return header + struct.pack("<QQI", len(payload), offset, crc) + payload


def end(path: bytes) -> bytes:
    return struct.pack("<8sBcI", b"XBSTCK01", 0, b"E", len(path)) + path


def read(stream: bytes, piece: int) -> BaseInfo:
    info = BaseInfo("10.11")
    for start in range(0, len(stream), piece):
        info.feed(stream[start : start + piece])
    info.result()
    return info


SPOOF = chunk(b"xtrabackup_binlog_info", b"mariadb-bin.000099\t4\t0-1-1\n")
STREAM = (
    chunk(b"demo/t.ibd", b"a row that looks like a chunk: " + SPOOF * 3)
    + end(b"demo/t.ibd")
    + chunk(b"xtrabackup_binlog_info", b"mariadb-bin.000002\t739\t0-1-2\n")
    + end(b"xtrabackup_binlog_info")
    + chunk(b"backup-my.cnf", b"[mysqld]\n")
)


@pytest.mark.parametrize("piece", [1, 5, 64, len(STREAM)])
def test_the_position_is_the_chunk_of_its_own_file_whatever_a_row_holds(piece):
    assert read(STREAM, piece).log_start == ("mariadb-bin.000002", 739)


def test_a_stream_without_a_binlog_position_has_none():
    assert read(chunk(b"ibdata1", bytes(100)), 7).log_start is None


@pytest.mark.parametrize(
    ("stream", "says"),
    [
        (STREAM[:-3], "ends inside a chunk"),
        (b"not an xbstream at all", "not an xbstream"),
        (chunk(b"xtrabackup_binlog_info", b"mariadb-bin.000002\t739\n", checksum=1), "fails its checksum"),
        (chunk(b"xtrabackup_binlog_info", b"../etc/passwd\t739\n"), "is not a binlog position"),
    ],
)
def test_a_damaged_or_foreign_stream_is_refused(stream, says):
    with pytest.raises(IntegrityError, match=says):
        read(stream, 3)
