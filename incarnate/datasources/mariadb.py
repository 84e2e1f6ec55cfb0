"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import re

from incarnate.datasources.database import Database, RowCounter
from incarnate.host import copy_from


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    return text.replace("'", "''")


CREATE_TABLE = re.compile(rb"^CREATE TABLE `((?:[^`]|``)+)`")
INSERT = re.compile(rb"^INSERT INTO `((?:[^`]|``)+)` VALUES ?")
# A quoted string of mariadb-dump: quotes and backslashes inside are escaped with a backslash (a newline too).
QUOTED = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'")


def _tuples(text: bytes) -> int:
    """Rows in a piece of an extended INSERT (one line, or many joined by newlines): each "),(" or "),\\n(" between
    two rows, plus the first "(", once the quoted strings (which may hold anything) are taken out."""
    bare = QUOTED.sub(b"", text)
    return bare.count(b"),(") + bare.count(b"),\n(") + bare.lstrip().startswith(b"(")


class DumpRows(RowCounter):
    """mariadb-dump writes an extended INSERT either on one line or (MariaDB 10.11) one row a line after an
    `INSERT INTO ... VALUES` line, until the line that ends with `;`."""

    def __init__(self) -> None:
        super().__init__()
        self.inserting: str | None = None

    def lines(self, lines: list[bytes]) -> None:
        start = 0
        if self.inserting is not None:  # the rows of one statement are counted together: one pass, not one a row
            end = next((index for index, line in enumerate(lines) if line.endswith(b";")), len(lines) - 1)
            self.rows[self.inserting] += _tuples(b"\n".join(lines[:end + 1]))
            if lines and lines[end].endswith(b";"):
                self.inserting = None
            start = end + 1
        for position in range(start, len(lines)):
            line = lines[position]
            if self.inserting is not None:
                self.lines(lines[position:])
                return
            if line.startswith(b"INSERT INTO `"):
                table = INSERT.match(line)
                if table:
                    name = table[1].replace(b"``", b"`").decode()
                    self.rows[name] = self.rows.get(name, 0) + _tuples(line[table.end():])
                    if not line.endswith(b";"):
                        self.inserting = name
            elif line.startswith(b"CREATE TABLE `"):
                table = CREATE_TABLE.match(line)
                if table:
                    self.rows.setdefault(table[1].replace(b"``", b"`").decode(), 0)


class MariaDB(Database):
    engine = "mariadb"
    program = "mariadb-dump"

    def _sql(self, statement: str, what: str) -> str:
        return self.host.run(["docker", "exec", self.container, "mariadb", "--batch", "--skip-column-names", "-e", statement],
                             what=what)

    def is_empty(self) -> bool:
        count = self._sql(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{_literal(self.target)}'",
                          f"counting tables of database {self.target}")
        return int(count.strip() or 0) == 0

    @contextmanager
    def dump(self) -> Iterator[BinaryIO]:
        args = ["docker", "exec", self.container, "mariadb-dump", "--single-transaction", "--routines", "--triggers",
                "--events", "--hex-blob", "--databases", self.target]
        with self.host.stream_out(args, what=f"dumping database {self.target}") as stream:
            yield stream

    def load(self, source: BinaryIO) -> None:
        """The dump names its database (--databases), so the client needs none."""
        self.host.stream_in(["docker", "exec", "-i", self.container, "mariadb"], copy_from(source), what="loading a database dump")

    def reset(self) -> None:
        name = _quoted(self.target)
        self._sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}", f"emptying database {self.target}")

    def row_counter(self) -> RowCounter:
        return DumpRows()

    def row_counts(self) -> dict[str, int]:
        """Exact row count of every table (information_schema's are estimates for InnoDB)."""
        tables = self._sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{_literal(self.target)}' "
                           "ORDER BY table_name", f"listing tables of {self.target}").split()
        if not tables:
            return {}
        query = " UNION ALL ".join(f"SELECT '{table}', COUNT(*) FROM {_quoted(self.target)}.{_quoted(table)}" for table in tables)
        output = self._sql(query, f"counting rows of {self.target}")
        return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
