"""A tar stream's layout followed as its bytes pass, to tell a whole archive from one the writer gave up on.

The engine's archive writer (what `docker cp` and a backup's volume read use) logs a file it cannot add and goes on;
when a file shrinks while it is read, every later entry and the end-of-archive marker are dropped, and the stream
still ends cleanly. Only the layout shows it: an archive is whole when it ends at tar's end marker, every header in
its place with a valid checksum. Only headers are looked at (one 512-byte block per entry); contents are skipped.
"""

BLOCK = 512
_PAX = b"x"  # a PAX extended header: its records may carry the next entry's true size (over 8 GiB)
_MAX_PAX = 1 << 20  # a PAX header's records are a few hundred bytes; more is not an archive the engine wrote


class TarLayoutError(ValueError):
    """The stream is not laid out as a tar archive at the offset named."""


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or base-256 when its first bit is set (GNU, for large values)."""
    if field[0] & 0x80:
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.replace(b"\0", b" ").strip()
    return int(text, 8) if text else 0


def _checksum_ok(header: bytes) -> bool:
    try:
        return _number(header[148:156]) == sum(header[:148]) + 8 * 32 + sum(header[156:])
    except ValueError:  # not a number: not a header
        return False


def _pax_size(records: bytes) -> int | None:
    """The `size` record of a PAX header's records (`LEN key=value\\n` each), None when it has none."""
    size, at = None, 0
    try:
        while at < len(records) and records[at : at + 1] != b"\0":
            space = records.index(b" ", at)
            length = int(records[at:space])
            if length <= space - at:  # a record is longer than its own length field; anything else would loop
                raise ValueError(length)
            key, _, value = records[space + 1 : at + length - 1].partition(b"=")
            if key == b"size":
                size = int(value)
            at += length
    except ValueError:
        raise TarLayoutError("a PAX header whose records cannot be read") from None
    return size


class TarLayout:
    """Feed it the stream's bytes in order; `ended` says whether what was fed so far ends a complete archive, and a
    feed raises TarLayoutError where the bytes stop being an archive."""

    def __init__(self) -> None:
        self.fed = 0  # bytes fed so far
        self.header_at = 0  # where the next header starts
        self._header = bytearray()  # a header's bytes when it spans two feeds
        self._pax: bytearray | None = None  # a PAX header's records while they pass
        self._pax_from = self._pax_until = 0  # where the PAX records still to collect start and end
        self._next_size: int | None = None  # the size a PAX header gave the entry after it
        self._zero_blocks = 0
        self.ended = False  # the end-of-archive marker (two zero blocks) was seen

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        base = self.fed
        self.fed += len(view)
        if self._pax is not None:
            self._collect_pax(view, base)
        while not self.ended:
            start = max(self.header_at - base, 0)
            if start >= len(view):
                return
            self._header += view[start : start + BLOCK - len(self._header)]
            if len(self._header) < BLOCK:
                return
            header = bytes(self._header)
            self._header.clear()
            self._read_header(header)
            if self._pax is not None:
                self._collect_pax(view, base)

    def _read_header(self, header: bytes) -> None:
        at = self.header_at
        self.header_at += BLOCK
        if header == bytes(BLOCK):
            self._zero_blocks += 1
            self.ended = self._zero_blocks == 2
            return
        if self._zero_blocks:
            raise TarLayoutError(f"a lone zero block before byte {at}")
        if not _checksum_ok(header):
            raise TarLayoutError(f"no valid tar header at byte {at}")
        try:
            size = _number(header[124:136]) if self._next_size is None else self._next_size
        except ValueError:
            raise TarLayoutError(f"a tar header without a size at byte {at}") from None
        self._next_size = None
        if header[156:157] == _PAX:
            if size > _MAX_PAX:
                raise TarLayoutError(f"a PAX header of {size} bytes at byte {at}")
            self._pax, self._pax_from, self._pax_until = bytearray(), self.header_at, self.header_at + size
        self.header_at += -(-size // BLOCK) * BLOCK

    def _collect_pax(self, view: memoryview, base: int) -> None:
        begin, end = max(self._pax_from - base, 0), min(self._pax_until - base, len(view))
        if begin < end:
            self._pax += view[begin:end]
            self._pax_from = base + end
        if self._pax_from >= self._pax_until:
            self._next_size = _pax_size(bytes(self._pax))
            self._pax = None
