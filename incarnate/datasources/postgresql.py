"""PostgreSQL: pg_dump (a consistent snapshot by itself) and psql, run inside the database container
as the postgres superuser over the local socket."""

import json
import re
from collections.abc import Callable
from functools import cached_property
from typing import BinaryIO

from incarnate import settings
from incarnate.backup_format import Artifact
from incarnate.datasources import volume
from incarnate.datasources.database import Database, RowCounter
from incarnate.errors import IntegrityError, StageError
from incarnate.host import copy_from

USER_TABLES = "FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"


# A statement whose rows are counted: a table's definition, or the start of its rows.
STATEMENT = re.compile(rb"^(?:CREATE TABLE (?P<table>\S+) \($|COPY (?P<copy>\S+) \(.*\) FROM stdin;\n)", re.MULTILINE)
END_OF_COPY = b"\\.\n"  # the line that ends a COPY block: a backslash in a value is escaped, so no row is this line


class DumpRows(RowCounter):
    """pg_dump writes each table's rows as the lines between `COPY table (...) FROM stdin;` and `\\.`, one a row
    (newlines inside values are escaped); the table is named as quote_ident names it, schema first."""

    statement = STATEMENT

    def begin(self, statement: re.Match[bytes], text: bytes, stop: int) -> int:
        self.rows.setdefault((statement["table"] or statement["copy"]).decode(), 0)
        self.table = statement["copy"] and statement["copy"].decode()
        return statement.end()

    def count(self, text: bytes, position: int, stop: int) -> int:
        if text.startswith(END_OF_COPY, position, stop):
            end = position
        else:
            found = text.find(b"\n" + END_OF_COPY, position, stop)
            end = stop if found < 0 else found + 1
        self.rows[self.table] += text.count(b"\n", position, end)
        if end == stop:
            return stop
        self.table = None
        return end + len(END_OF_COPY)


WAL_SEGMENT = 16 << 20  # the size of a WAL file (initdb's default; a server with another one is refused)
# backup_label, the first file of pg_basebackup's tar: where the base's WAL begins (the replay of archived WAL too).
START = re.compile(rb"START WAL LOCATION: ([0-9A-F]+)/([0-9A-F]+) \(file ([0-9A-F]{24})\)")
LABEL_WITHIN = 1 << 20  # backup_label comes first: a stream without it in its first megabyte is no physical base


class BaseLabel:
    """Reads what a physical base says of itself as it streams past: where its WAL begins (its backup_label)."""

    base = "physical"

    def __init__(self, engine_version: str) -> None:
        self.engine_version = engine_version
        self.log_start: tuple[str, int] | None = None
        self._head = b""

    def feed(self, data: bytes) -> None:
        if self.log_start is not None or len(self._head) > LABEL_WITHIN:
            return
        self._head += data[:LABEL_WITHIN]
        if found := START.search(self._head):
            self.log_start = (found[3].decode(), int(found[2], 16) % WAL_SEGMENT)

    def result(self) -> None:
        if self.log_start is None:
            raise IntegrityError("the physical base has no backup_label where pg_basebackup writes it; not committed.")
        return None


class PostgreSQL(Database):
    engine = "postgresql"
    program = "pg_dump"
    physical_program = "pg_basebackup"
    exec_user = "postgres"
    _replaced = False  # a physical base was (maybe in part) extracted: a reset removes the server's files

    def _psql(self, *args: str) -> list[str]:
        return [
            "psql",
            "--username=postgres",
            f"--dbname={self.target}",
            "--no-psqlrc",
            "--set=ON_ERROR_STOP=1",
            "--quiet",
            *args,
        ]

    def _query(self, query: str, what: str) -> str:
        return self.host.run(
            self._exec(*self._psql("--tuples-only", "--no-align", "--field-separator=\t", "--command", query)),
            what=what,
        )

    def not_serving(self) -> str | None:
        # An initialisation server listens on no TCP address (the official image's, this project's pgdemo's).
        listening = self._query("SELECT current_setting('listen_addresses')", f"asking database {self.target}")
        return None if listening.strip() else "it listens on no TCP address yet (the image's initialisation server)"

    def is_empty(self) -> bool:
        """Empty means: no tables in any schema of the database but the system ones."""
        count = self._query(f"SELECT count(*) {USER_TABLES}", f"counting tables of database {self.target}")
        return int(count.strip() or 0) == 0

    def dump_command(self) -> tuple[str, ...]:
        if self.physical:  # the whole server's files as one tar, with the WAL that makes them consistent
            return (
                self.program,
                "--username=postgres",
                "--pgdata=-",
                "--format=tar",
                "--wal-method=fetch",
                "--checkpoint=fast",
                "--no-manifest",
                "--no-password",
                "--label",
                self.target,  # end_orphans finds a base of this database by its name among the arguments
            )
        return (self.program, "--username=postgres", self.target)

    @cached_property
    def major_version(self) -> str:
        number = self._query("SHOW server_version_num", f"asking database {self.target} its version").strip()
        return str(int(number) // 10000)

    @cached_property
    def _data_volume(self) -> str:
        """The volume that holds the server's data directory, as its root (a physical base replaces what it holds)."""
        directory = self._query("SHOW data_directory", f"asking database {self.target} its data directory").strip()
        mounts = json.loads(
            self.host.run(
                ["docker", "inspect", "--format", "{{json .Mounts}}", self.container],
                what=f"listing the volumes of service {self.service}",
            )
        )
        for mount in mounts or []:
            if mount.get("Destination") == directory and mount.get("Type") == "volume":
                return mount["Name"]
        raise StageError(
            f"stack {self.project.name}: the data directory {directory} of service {self.service} is not the root of "
            f"a volume of its own, which a physical base of database {self.target} is restored into; nothing was "
            f"loaded. Mount a volume there, or back the stack up with backup.base: logical."
        )

    def _other_databases(self) -> list[str]:
        listed = self._query(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY 1",
            f"listing the databases of service {self.service}",
        ).split()
        return [name for name in listed if name != self.target]

    def load_base(self, artifact: Artifact, source: BinaryIO) -> None:
        """The server's files replaced by the base's while it is stopped; it starts on them (recovering to the end
        of the base's WAL, as after a crash) and must answer as the server that stays."""
        if artifact.engine_version != self.major_version:
            raise IntegrityError(
                f"artifact {artifact.name} is a physical base of PostgreSQL {artifact.engine_version}, and service "
                f"{self.service} runs PostgreSQL {self.major_version}, which cannot start on those files; nothing was "
                f"loaded. Restore a logical backup across versions (backup.base: logical)."
            )
        if others := self._other_databases():
            raise IntegrityError(
                f"service {self.service} holds database(s) {', '.join(others)} beside {self.target}, and a physical "
                f"base replaces the whole server; nothing was loaded. Declare them in the release, or back the stack "
                f"up with backup.base: logical."
            )
        data = self._data_volume
        self._replaced = True
        self._restart(lambda: volume.extract(self.host, data, source))

    def _restart(self, while_stopped: Callable[[], None]) -> None:
        """The container stopped, `while_stopped` done to its data volume, the container started and serving."""
        host, what = self.host, f"service {self.service} of stack {self.project.name}"
        host.run(["docker", "stop", self.container], what=f"stopping {what}")
        volume.reset(host, self._data_volume)
        while_stopped()
        host.run(["docker", "start", self.container], what=f"starting {what}")
        self.wait_until_serving(settings.ready_seconds())

    def load(self, source: BinaryIO) -> None:
        self.host.stream_in(
            self._exec(*self._psql(), interactive=True), copy_from(source), what=f"loading a dump into {self.target}"
        )

    def reset(self) -> None:
        """Drop every schema that is_empty looks at (not only public), then give the database its empty public. After
        a physical base was loaded (maybe in part), the server's files are removed: its image initialises it anew."""
        if self._replaced:
            self._restart(lambda: None)
            return
        statements = (
            "DO $$ DECLARE name text; BEGIN FOR name IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN "
            "('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE "
            "'pg\\_temp\\_%' "
            "LOOP EXECUTE format('DROP SCHEMA %I CASCADE', name); END LOOP; END $$; "
            "CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;"
        )
        self.host.run(self._exec(*self._psql("--command", statements)), what=f"emptying database {self.target}")

    def row_counter(self) -> RowCounter | BaseLabel:
        return BaseLabel(self.major_version) if self.physical else DumpRows()

    def row_counts(self) -> dict[str, int]:
        """Exact row count of every table outside the system schemas."""
        listing = self._query(
            f"SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) {USER_TABLES} ORDER BY 1",
            f"listing tables of {self.target}",
        ).split()
        if not listing:
            return {}
        query = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in listing)
        output = self._query(query, f"counting rows of {self.target}")
        return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
