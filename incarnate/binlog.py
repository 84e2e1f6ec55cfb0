"""MariaDB's binary log, as far as archiving needs it: where its events begin and end, and when each was written.

A binlog file is the magic `\\xfebin` and then events, each with a 19-byte header: timestamp (seconds since the
epoch, UTC), type, server id, the event's whole length, the position after it, flags (all little-endian). Archiving
ships whole events only, so a piece of a file in the store always ends where an event ends; a recovery to a time
cuts the file at the first event written at or after that second (a transaction cut in two is rolled back by the
replay, as it was not committed before that time).
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIII H")  # timestamp, type, server id, length, next position, flags
ROTATE = 4  # the event that closes a file and names the next


@dataclass(frozen=True)
class Event:
    offset: int  # in the file
    timestamp: int  # seconds since the epoch, UTC, as the server's clock said
    type: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length


class BinlogError(ValueError):
    """Bytes that are not a binlog where one was expected."""


def events(data: bytes, offset: int) -> Iterator[Event]:
    """The whole events in `data`, which is a file's content from `offset` on (0: from its magic, else from where
    an event begins). A last event not yet written whole is left out."""
    position = 0
    if offset == 0:
        if len(data) < len(MAGIC):
            return
        if not data.startswith(MAGIC):
            raise BinlogError("it does not begin with the binlog magic")
        position = len(MAGIC)
    while position + HEADER.size <= len(data):
        timestamp, kind, _, length, _, _ = HEADER.unpack_from(data, position)
        if length < HEADER.size:
            raise BinlogError(f"the event at byte {offset + position} claims {length} bytes, less than its header")
        if position + length > len(data):
            return
        yield Event(offset + position, timestamp, kind, length)
        position += length


def whole(data: bytes, offset: int) -> tuple[int, int | None, int | None]:
    """How many bytes of `data` (a file's content from `offset`) are whole events, and the first and last of their
    timestamps (None without an event)."""
    end, first, last = offset + (len(MAGIC) if offset == 0 and len(data) >= len(MAGIC) else 0), None, None
    for event in events(data, offset):
        end, last = event.end, event.timestamp
        first = event.timestamp if first is None else first
    return end - offset, first, last


def cut_before(data: bytes, offset: int, second: int) -> tuple[int, int | None]:
    """Where to cut `data` (from `offset`) so it holds only events written before `second` (seconds since the
    epoch): its length, and the timestamp of the last event kept (None when none)."""
    end, last = offset + (len(MAGIC) if offset == 0 and len(data) >= len(MAGIC) else 0), None
    for event in events(data, offset):
        if event.timestamp >= second:
            break
        end, last = event.end, event.timestamp
    return end - offset, last
