"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

import re
from typing import BinaryIO

from incarnate.datasources.database import Database, RowCounter
from incarnate.host import copy_from


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    return text.replace("'", "''")


# A statement whose rows are counted: a table's definition, or the start of an extended INSERT into it.
STATEMENT = re.compile(
    rb"^(?:CREATE TABLE `(?P<table>(?:[^`]|``)+)`|INSERT INTO `(?P<into>(?:[^`]|``)+)` VALUES ?)", re.MULTILINE
)
# A quoted string of mariadb-dump: quotes and backslashes inside are escaped with a backslash (a newline too).
QUOTED = re.compile(rb"'[^'\\]*(?:\\.[^'\\]*)*'")


def _tuples(text: bytes) -> int:
    """Rows in a piece of an extended INSERT (one line, or many joined by newlines): each "),(" or "),\\n(" between
    two rows, plus the first "(", once the quoted strings (which may hold anything) are taken out."""
    bare = QUOTED.sub(b"", text)
    return bare.count(b"),(") + bare.count(b"),\n(") + bare.lstrip().startswith(b"(")


def _statement_end(text: bytes, start: int, stop: int) -> int:
    """Just past the `;` that ends a line, the end of an extended INSERT, or -1. A newline inside a value is
    escaped, so such a `;` is never inside a string; looked for with a one-byte find, which the C library does at
    memory speed."""
    while (found := text.find(b";", start, stop)) >= 0:
        if text.startswith(b"\n", found + 1, stop):
            return found + 2
        start = found + 1
    return -1


class DumpRows(RowCounter):
    """mariadb-dump writes an extended INSERT either on one line or (MariaDB 10.11) one row a line after an
    `INSERT INTO ... VALUES` line; either way it ends with the first `;` at the end of a line. One row a line, the
    rows are the lines, counted without a copy; rows on one line pay for taking the quoted strings out."""

    statement = STATEMENT

    def __init__(self) -> None:
        super().__init__()
        self.one_row_a_line = False

    def begin(self, statement: re.Match[bytes], text: bytes, stop: int) -> int:
        name = (statement["table"] or statement["into"]).replace(b"``", b"`").decode()
        self.rows.setdefault(name, 0)
        position = statement.end()
        if statement["into"] is not None:
            self.table, self.one_row_a_line = name, text.startswith(b"\n", position, stop)
            position += self.one_row_a_line
        return position

    def count(self, text: bytes, position: int, stop: int) -> int:
        end = _statement_end(text, position, stop)
        until = stop if end < 0 else end
        self.rows[self.table] += (
            text.count(b"\n", position, until) if self.one_row_a_line else _tuples(text[position:until])
        )
        if end >= 0:
            self.table = None
        return until


class MariaDB(Database):
    engine = "mariadb"
    program = "mariadb-dump"

    def _sql(self, statement: str, what: str) -> str:
        return self.host.run(self._exec("mariadb", "--batch", "--skip-column-names", "-e", statement), what=what)

    def not_serving(self) -> str | None:
        # An initialisation server runs with networking off (the official image's entrypoint: --skip-networking).
        skip = self._sql("SELECT @@skip_networking", f"asking database {self.target}").strip()
        return None if skip == "0" else "its networking is off yet (the image's initialisation server)"

    def is_empty(self) -> bool:
        count = self._sql(
            f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{_literal(self.target)}'",
            f"counting tables of database {self.target}",
        )
        return int(count.strip() or 0) == 0

    def dump_command(self) -> tuple[str, ...]:
        return (
            self.program,
            "--single-transaction",
            "--routines",
            "--triggers",
            "--events",
            "--hex-blob",
            "--databases",
            self.target,
        )

    def load(self, source: BinaryIO) -> None:
        """The dump names its database (--databases), so the client needs none."""
        self.host.stream_in(self._exec("mariadb", interactive=True), copy_from(source), what="loading a database dump")

    def reset(self) -> None:
        name = _quoted(self.target)
        self._sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}", f"emptying database {self.target}")

    def row_counter(self) -> RowCounter:
        return DumpRows()

    def row_counts(self) -> dict[str, int]:
        """Exact row count of every table (information_schema's are estimates for InnoDB)."""
        tables = self._sql(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{_literal(self.target)}' "
            "ORDER BY table_name",
            f"listing tables of {self.target}",
        ).split()
        if not tables:
            return {}
        query = " UNION ALL ".join(
            f"SELECT '{table}', COUNT(*) FROM {_quoted(self.target)}.{_quoted(table)}" for table in tables
        )
        output = self._sql(query, f"counting rows of {self.target}")
        return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
