"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

import re
import struct
import zlib
from functools import cached_property
from pathlib import PurePosixPath
from typing import BinaryIO

from incarnate import binlog, log_archive
from incarnate.datasources import volume
from incarnate.datasources.database import Database, RowCounter
from incarnate.errors import HostError, IntegrityError
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


# mariadb-backup's xbstream: chunks of files, each a header (magic, flags, type, path length, path; a payload chunk
# then its length, offset in the file and CRC-32) and its bytes; an end chunk closes a file.
XBSTREAM = struct.Struct("<8sBcI")
XBSTREAM_PAYLOAD = struct.Struct("<QQI")
XBSTREAM_MAGIC = b"XBSTCK01"
BINLOG_INFO = b"xtrabackup_binlog_info"  # "file<TAB>position<TAB>GTID": where the binlog stood at the base
MAX_PATH, MAX_INFO = 4096, 4096
SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
# Run in a container of the server's own image, its data volume there and the server stopped: the base's files
# unpacked, then made consistent by the same mariadb-backup that took them (a fixed script: nothing of the stack's).
BASE_DIRECTORY = "/incarnate-base"
PUT_BASE = f"mbstream -x -C {BASE_DIRECTORY} && exec mariadb-backup --prepare --target-dir={BASE_DIRECTORY}"


class BaseInfo:
    """Walks mariadb-backup's xbstream as it streams past, chunk by chunk (a file's bytes are never read as a
    header: a row cannot pass for one), and reads where the server's binlog stood at the base."""

    base = "physical"

    def __init__(self, engine_version: str) -> None:
        self.engine_version = engine_version
        self.log_start: tuple[str, int] | None = None
        self._pending = bytearray()  # the header (and binlog position) being read
        self._skip = 0  # bytes of a file's payload still to pass by
        self._info = b""

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while True:
            if self._skip:
                taken = min(self._skip, len(view))
                self._skip, view = self._skip - taken, view[taken:]
                if self._skip:
                    return
            if missing := self._missing():
                if not view:
                    return
                taken = min(missing, len(view))
                self._pending += view[:taken]
                view = view[taken:]
                continue
            self._chunk()

    def _missing(self) -> int:
        """Bytes still needed before the pending chunk can be read (0: it can)."""
        pending = self._pending
        if len(pending) < XBSTREAM.size:
            return XBSTREAM.size - len(pending)
        magic, _, kind, path_length = XBSTREAM.unpack_from(pending)
        if magic != XBSTREAM_MAGIC or kind not in (b"P", b"E") or path_length > MAX_PATH:
            raise IntegrityError("the physical base is not an xbstream of mariadb-backup; not committed.")
        head = XBSTREAM.size + path_length + (XBSTREAM_PAYLOAD.size if kind == b"P" else 0)
        if len(pending) < head:
            return head - len(pending)
        if kind == b"P" and pending[XBSTREAM.size : XBSTREAM.size + path_length] == BINLOG_INFO:
            length = XBSTREAM_PAYLOAD.unpack_from(pending, head - XBSTREAM_PAYLOAD.size)[0]
            if length > MAX_INFO:
                raise IntegrityError(f"the physical base's {BINLOG_INFO.decode()} is {length} bytes; not committed.")
            return head + length - len(pending)
        return 0

    def _chunk(self) -> None:
        pending, self._pending = self._pending, bytearray()
        _, _, kind, path_length = XBSTREAM.unpack_from(pending)
        if kind == b"E":
            return
        start = XBSTREAM.size + path_length
        length, _, checksum = XBSTREAM_PAYLOAD.unpack_from(pending, start)
        if pending[XBSTREAM.size : start] != BINLOG_INFO:
            self._skip = length
            return
        payload = bytes(pending[start + XBSTREAM_PAYLOAD.size :])
        if zlib.crc32(payload) != checksum:
            raise IntegrityError(f"the physical base's {BINLOG_INFO.decode()} fails its checksum; not committed.")
        self._info += payload

    def result(self) -> None:
        if self._pending or self._skip:
            raise IntegrityError("the physical base ends inside a chunk of its xbstream; not committed.")
        if self._info:
            fields = self._info.decode(errors="replace").split("\t")
            if len(fields) < 2 or not LOG_NAME.match(fields[0]) or not fields[1].strip().isdigit():
                raise IntegrityError(
                    f"the physical base's {BINLOG_INFO.decode()} is not a binlog position; not committed."
                )
            self.log_start = (fields[0], int(fields[1]))
        return None


class MariaDB(Database):
    engine = "mariadb"
    physical_program = "mariadb-backup"

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

    @property
    def program(self) -> str:  # noqa: D102 - as the process list shows the backup's command
        return self.physical_program if self.physical else "mariadb-dump"

    @cached_property
    def engine_version(self) -> str:
        """Its major.minor: mariadb-backup prepares, and a server starts on, the files of the same one."""
        found = self._sql("SELECT VERSION()", f"asking database {self.target} its version").strip()
        return ".".join(found.split("-")[0].split(".")[:2])

    @cached_property
    def data_directory(self) -> str:
        return self._sql("SELECT @@datadir", f"asking database {self.target} its data directory").strip().rstrip("/")

    def other_databases(self) -> list[str]:
        listed = self._sql("SHOW DATABASES", f"listing the databases of service {self.service}").split()
        return [name for name in listed if name not in (self.target, *SYSTEM_DATABASES)]

    @cached_property
    def _orphan_mark(self) -> str:
        return f"--target-dir=/tmp/incarnate-base-{self.target}" if self.physical else self.target

    def _put_base(self, source: BinaryIO) -> None:
        """The xbstream unpacked into the emptied data volume and prepared, in a container of the server's image (the
        server is stopped), as the volume's owner: the server starts on consistent files."""
        host, data = self.host, self.data_volume
        image = host.run(["docker", "inspect", "--format", "{{.Image}}", self.container], what="finding its image")
        uid, gid = volume.owner(host, data)
        name = f"incarnate-base-{data}"
        host.run(["docker", "rm", "--force", name], what=f"removing what a killed restore left of {name}")
        command = [
            "docker", "run", "--rm", "--interactive", "--name", name, "--network", "none", "--user", f"{uid}:{gid}",
            "--volume", f"{data}:{BASE_DIRECTORY}", "--entrypoint", "sh", image.strip(), "-c", PUT_BASE,
        ]  # fmt: skip
        try:
            host.stream_in(command, copy_from(source), what=f"unpacking a physical base of {self.target}")
        except BaseException:
            try:  # a killed `docker run` leaves its container running: it must not write on under the reset
                host.run(["docker", "rm", "--force", name], what=f"removing {name}")
            except HostError:
                pass
            raise

    def dump_command(self) -> tuple[str, ...]:
        if self.physical:  # the whole server's files, with the redo log that makes them consistent when prepared
            return (self.program, "--backup", "--stream=xbstream", self._orphan_mark)
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
        if self._reset_replaced():
            return
        name = _quoted(self.target)
        self._sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}", f"emptying database {self.target}")

    def row_counter(self) -> RowCounter | BaseInfo:
        return BaseInfo(self.engine_version) if self.physical else DumpRows()

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
