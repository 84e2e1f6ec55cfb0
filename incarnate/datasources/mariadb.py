"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from incarnate.datasources.database import Database
from incarnate.host import copy_from


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _literal(text: str) -> str:
    return text.replace("'", "''")


class MariaDB(Database):
    engine = "mariadb"

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

    def row_counts(self) -> dict[str, int]:
        """Exact row count of every table (information_schema's are estimates for InnoDB)."""
        tables = self._sql(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{_literal(self.target)}' "
                           "ORDER BY table_name", f"listing tables of {self.target}").split()
        if not tables:
            return {}
        query = " UNION ALL ".join(f"SELECT '{table}', COUNT(*) FROM {_quoted(self.target)}.{_quoted(table)}" for table in tables)
        output = self._sql(query, f"counting rows of {self.target}")
        return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
