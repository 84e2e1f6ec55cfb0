"""PostgreSQL: pg_dump (a consistent snapshot by itself) and psql, run inside the database container
as the postgres superuser over the local socket."""

import re
from typing import BinaryIO

from incarnate.datasources.database import Database, RowCounter
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


class PostgreSQL(Database):
    engine = "postgresql"
    program = "pg_dump"
    exec_user = "postgres"

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
        return (self.program, "--username=postgres", self.target)

    def load(self, source: BinaryIO) -> None:
        self.host.stream_in(
            self._exec(*self._psql(), interactive=True), copy_from(source), what=f"loading a dump into {self.target}"
        )

    def reset(self) -> None:
        """Drop every schema that is_empty looks at (not only public), then give the database its empty public."""
        statements = (
            "DO $$ DECLARE name text; BEGIN FOR name IN SELECT nspname FROM pg_namespace WHERE nspname NOT IN "
            "('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE "
            "'pg\\_temp\\_%' "
            "LOOP EXECUTE format('DROP SCHEMA %I CASCADE', name); END LOOP; END $$; "
            "CREATE SCHEMA public AUTHORIZATION pg_database_owner; GRANT USAGE ON SCHEMA public TO PUBLIC;"
        )
        self.host.run(self._exec(*self._psql("--command", statements)), what=f"emptying database {self.target}")

    def row_counter(self) -> RowCounter:
        return DumpRows()

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
