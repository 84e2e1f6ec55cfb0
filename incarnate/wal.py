"""PostgreSQL's write-ahead log as incarnate archives and replays it: file names, positions, timeline history files
and the commit times pg_waldump prints (pure; incarnate.datasources.postgresql runs the server's side).

A WAL file is named TTTTTTTTXXXXXXXXYYYYYYYY (hex): its timeline, then its segment number as two halves. A history
of incarnate's is a timeline (history h: timeline h + 1, so a server initdb made, on timeline 1, is history 0 and
never shipped, as a MariaDB binlog nobody renumbered)."""

import re
from datetime import UTC, datetime

SEGMENT = 16 << 20  # bytes of a WAL file: initdb's default, the only size incarnate archives
PER_HIGH = 0x100000000 // SEGMENT  # segments per "X" of a name (256 for 16 MiB)
NAME = re.compile(r"^[0-9A-F]{24}$")
COMMIT = re.compile(r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")


def is_wal(name: str) -> bool:
    return bool(NAME.match(name))


def timeline(name: str) -> int:
    return int(name[:8], 16)


def segment(name: str) -> int:
    return int(name[8:16], 16) * PER_HIGH + int(name[16:24], 16)


def history(name: str) -> int:
    return timeline(name) - 1


def timeline_of(history_number: int) -> int:
    return history_number + 1


def name_of(timeline_id: int, segment_number: int) -> str:
    return f"{timeline_id:08X}{segment_number // PER_HIGH:08X}{segment_number % PER_HIGH:08X}"


def lsn(name: str, offset: int) -> int:
    """The position `offset` bytes into WAL file `name`, as a log sequence number."""
    return segment(name) * SEGMENT + offset


def position(timeline_id: int, at: int) -> tuple[str, int]:
    """The WAL file of `timeline_id` that holds log sequence number `at`, and the byte in it."""
    return name_of(timeline_id, at // SEGMENT), at % SEGMENT


def lsn_text(at: int) -> str:
    return f"{at >> 32:X}/{at & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.strip().partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def history_file(switches: list[tuple[int, int]]) -> bytes:
    """A timeline history file: each timeline left, oldest first, with the position where the next one began."""
    return "".join(f"{parent}\t{lsn_text(at)}\tincarnate recovery\n" for parent, at in switches).encode()


def parse_history(text: str) -> list[tuple[int, int]]:
    """(timeline, where it was left) for every line of a timeline history file."""
    switches = []
    for line in text.splitlines():
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) >= 2 and fields[0].isdigit():
            switches.append((int(fields[0]), parse_lsn(fields[1])))
    return switches


def commit_times(waldump: str) -> tuple[int | None, int | None]:
    """The first and last transaction end in pg_waldump's output (run with TZ=UTC), whole seconds since the epoch."""
    found = [
        int(datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()) for match in COMMIT.finditer(waldump)
    ]
    return (found[0], found[-1]) if found else (None, None)
