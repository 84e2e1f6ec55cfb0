"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

import re
from functools import cached_property
from pathlib import PurePosixPath
from typing import BinaryIO

from incarnate import binlog, log_archive
from incarnate.datasources.database import Database, RowCounter
from incarnate.errors import IntegrityError
from incarnate.host import copy_from
from incarnate.log_archive import LogFile


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    return text.replace("'", "''")


# A statement whose rows are counted: a table's definition, or the start of an extended INSERT into it; and where the
# binlog stood when the dump's transaction began (--master-data=2 writes it as a comment).
STATEMENT = re.compile(
    rb"^(?:CREATE TABLE `(?P<table>(?:[^`]|``)+)`|INSERT INTO `(?P<into>(?:[^`]|``)+)` VALUES ?"
    rb"|-- CHANGE MASTER TO MASTER_LOG_FILE='(?P<log_file>[^']+)', MASTER_LOG_POS=(?P<log_pos>\d+);)",
    re.MULTILINE,
)
LOG_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.\d+$")
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
        if statement["log_file"] is not None:
            self.log_start = (statement["log_file"].decode(), int(statement["log_pos"]))
            return statement.end()
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

    @cached_property
    def binlog_base(self) -> PurePosixPath | None:
        """The path of the server's binlog files without their number, when it writes a binlog that can be
        replayed onto a dump (row format); None when it does not (then its recovery point is the last backup)."""
        found = self._sql("SELECT @@log_bin, @@binlog_format, @@log_bin_basename", f"asking database {self.target}")
        enabled, form, base = (found.strip().split("\t") + ["", "", ""])[:3]
        return PurePosixPath(base) if enabled == "1" and form == "ROW" and base.startswith("/") else None

    def archiving(self) -> str | None:
        return None if self.binlog_base else "the server writes no binlog in row format (log_bin, binlog_format=ROW)"

    def log_files(self) -> list[LogFile] | None:
        if self.binlog_base is None:
            return None
        listed = self._sql("SHOW BINARY LOGS", f"listing the binlog of {self.target}")
        return [LogFile(name, int(size)) for name, size, *_ in map(str.split, listed.strip().splitlines())]

    def _log_path(self, name: str) -> str:
        if not LOG_NAME.match(name):
            raise IntegrityError(f"database {self.target}: {name!r} is not a binlog file name.")
        return str(self.binlog_base.parent / name)

    def read_log(self, name: str, offset: int, limit: int) -> bytes:
        return self._read_bytes(self._log_path(name), offset, limit, f"reading binlog {name} of {self.target}")

    def whole_events(self, name: str, data: bytes, offset: int) -> tuple[int, int | None, int | None]:
        return binlog.whole(data, offset)

    def cut_before(self, data: bytes, offset: int, second: int) -> tuple[int, int | None]:
        return binlog.cut_before(data, offset, second)

    def purge_logs_before(self, name: str) -> None:
        self._log_path(name)  # a checked name
        self._sql(f"PURGE BINARY LOGS TO '{_literal(name)}'", f"purging the archived binlog of {self.target}")

    def rotate_log(self) -> None:
        self._sql("FLUSH BINARY LOGS", f"closing the binlog file of {self.target}")

    def begin_history(self, history: int) -> None:
        """Start the server's binlog anew as history `history` (what it held before belongs to the restore)."""
        number = log_archive.first_number(history)
        self._sql(f"RESET MASTER TO {int(number)}", f"starting a new binlog numbering of {self.target}")

    def replay(self, data: bytes, start: int, what: str) -> None:
        """Apply a binlog file's events from byte `start` (mariadb-binlog reads it from stdin, mariadb runs them)."""
        self.host.pipe(
            self._exec(
                "mariadb-binlog", f"--start-position={max(int(start), len(binlog.MAGIC))}", "-", interactive=True
            ),
            self._exec("mariadb", interactive=True),
            data,
            what=what,
        )

    def dump_command(self) -> tuple[str, ...]:
        return (
            self.program,
            *(("--master-data=2",) if self.binlog_base else ()),
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
