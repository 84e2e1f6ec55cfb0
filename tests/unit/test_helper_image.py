"""The volume helper image is made from a static busybox: a dynamically linked one would not run in it."""

import struct

from incarnate.datasources.helper import is_static


def elf(wide: bool, program_types: list[int]) -> bytes:
    """A little-endian ELF header and program headers of the given types, at the offsets the format puts them."""
    header = bytearray(64 if wide else 52)
    header[:6] = b"\x7fELF" + bytes([2 if wide else 1, 1])
    entry = 56 if wide else 32
    if wide:
        struct.pack_into("<Q", header, 0x20, len(header))
        struct.pack_into("<HH", header, 0x36, entry, len(program_types))
    else:
        struct.pack_into("<I", header, 0x1C, len(header))
        struct.pack_into("<HH", header, 0x2A, entry, len(program_types))
    return bytes(header) + b"".join(struct.pack("<I", kind) + bytes(entry - 4) for kind in program_types)


def test_an_executable_that_asks_for_a_dynamic_loader_is_not_static():
    for wide in (True, False):
        assert is_static(elf(wide, [1, 1, 4]))
        assert not is_static(elf(wide, [6, 3, 1]))


def test_what_is_not_an_elf_executable_is_not_static():
    assert not is_static(b"#!/bin/sh\necho busybox\n")
    assert not is_static(b"")
