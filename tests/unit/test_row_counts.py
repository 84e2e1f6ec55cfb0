"""Rows per table counted from a dump as it streams past, in pieces cut anywhere: what the restore drill compares."""

import random

import pytest

from incarnate.datasources import row_differences
from incarnate.datasources.mariadb import DumpRows as MariaDBRows
from incarnate.datasources.postgresql import DumpRows as PostgreSQLRows

MARIADB_DUMP = (
    b"CREATE TABLE `records` (\n  `id` int\n);\n"
    b"INSERT INTO `records` VALUES (1,'a),(b','x'),(2,'it\\'s',NULL),(3,'\\\\','');\n"
    b"INSERT INTO `records` VALUES (4,'second statement','');\n"
    b"CREATE TABLE `odd``name` (x int);\nCREATE TABLE `empty` (x int);\n"
    b"INSERT INTO `odd``name` VALUES (1);\n"
    b"INSERT INTO `records` VALUES\n(5,'one row a line, as MariaDB 10.11 writes','x'),\n(6,'),(',''),\n(7,'\\n','');\n"
)
POSTGRESQL_DUMP = (
    b"CREATE TABLE public.records (\n    id integer\n);\nCREATE TABLE public.empty (\n);\n"
    b"COPY public.records (id, title) FROM stdin;\n1\ta),(b\n2\tb\\nc\n3\t\\N\n\\.\n"
)


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_mariadb_rows_are_counted_outside_quoted_strings(piece):
    counter = MariaDBRows()
    for start in range(0, len(MARIADB_DUMP), piece):
        counter.feed(MARIADB_DUMP[start : start + piece])
    assert counter.result() == {"empty": 0, "odd`name": 1, "records": 7}


@pytest.mark.parametrize("piece", [1, 5, 4096])
def test_postgresql_rows_are_the_lines_of_each_copy_block(piece):
    counter = PostgreSQLRows()
    for start in range(0, len(POSTGRESQL_DUMP), piece):
        counter.feed(POSTGRESQL_DUMP[start : start + piece])
    assert counter.result() == {"public.empty": 0, "public.records": 3}


def test_row_differences_name_each_table_that_differs():
    assert row_differences({"demo.a": 3, "demo.b": 1}, {"demo.a": 4, "demo.b": 1, "demo.c": 2}) == [
        "demo.a: 3 restored, 4 backed up",
        "demo.c: 0 restored, 2 backed up",
    ]


TRICKY = ["),(", ");", "x;", "\\n(", "it\\'s", "\\\\", "", "(", "\\\\.", "a),\\n(b"]


def mariadb_dump(rows: int, one_row_a_line: bool) -> bytes:
    """Statements of up to 100 rows each, the values built from strings that look like row separators."""
    statements = [b"CREATE TABLE `t` (\n  `id` int\n);\n"]
    for first in range(0, rows, 100):
        values = [f"({n},'{TRICKY[n % len(TRICKY)]}',0x{n:04x})".encode() for n in range(first, min(rows, first + 100))]
        statements.append(
            b"INSERT INTO `t` VALUES\n" + b",\n".join(values) + b";\n"
            if one_row_a_line
            else b"INSERT INTO `t` VALUES " + b",".join(values) + b";\n"
        )
    return b"".join(statements)


def postgresql_dump(rows: int) -> bytes:
    values = b"".join(f"{n}\t{TRICKY[n % len(TRICKY)]}\n".encode() for n in range(rows))
    return b"CREATE TABLE public.t (\n    id integer\n);\nCOPY public.t (id, v) FROM stdin;\n" + values + b"\\.\n\n"


@pytest.mark.parametrize("one_row_a_line", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_every_row_of_a_large_dump_cut_anywhere_is_counted_once(one_row_a_line, seed):
    pieces = random.Random(seed)
    for dump, counter, table in (
        (mariadb_dump(5000, one_row_a_line), MariaDBRows(), "t"),
        (postgresql_dump(5000), PostgreSQLRows(), "public.t"),
    ):
        start = 0
        while start < len(dump):
            size = pieces.choice([1, 2, 3, 17, 1000, 65536])
            counter.feed(dump[start : start + size])
            start += size
        assert counter.result() == {table: 5000}
