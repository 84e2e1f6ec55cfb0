"""MariaDB (and MySQL): consistent dumps with --single-transaction, run inside the database container."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from incarnate.host import Host, copy_from


def _sql(host: Host, container: str, statement: str, what: str) -> str:
    return host.run(["docker", "exec", container, "mariadb", "--batch", "--skip-column-names", "-e", statement], what=what)


def _quoted(database: str) -> str:
    return "`" + database.replace("`", "``") + "`"


def is_empty(host: Host, container: str, database: str) -> bool:
    """Empty means: the database has no tables (it may exist, created by the container's init)."""
    literal = database.replace("'", "''")
    count = _sql(host, container, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{literal}'",
                 f"counting tables of database {database}")
    return int(count.strip() or 0) == 0


@contextmanager
def dump(host: Host, container: str, database: str) -> Iterator[BinaryIO]:
    args = ["docker", "exec", container, "mariadb-dump", "--single-transaction", "--routines", "--triggers",
            "--events", "--hex-blob", "--databases", database]
    with host.stream_out(args, what=f"dumping database {database}") as stream:
        yield stream


def load(host: Host, container: str, source: BinaryIO, database: str) -> None:
    """The dump names its database (--databases), so `database` is only for the interface."""
    host.stream_in(["docker", "exec", "-i", container, "mariadb"], copy_from(source), what="loading a database dump")


def reset(host: Host, container: str, database: str) -> None:
    name = _quoted(database)
    _sql(host, container, f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}", f"emptying database {database}")


def row_counts(host: Host, container: str, database: str) -> dict[str, int]:
    """Exact row count of every table (information_schema's are estimates for InnoDB)."""
    literal = database.replace("'", "''")
    tables = _sql(host, container, f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{literal}' "
                  "ORDER BY table_name", f"listing tables of {database}").split()
    if not tables:
        return {}
    query = " UNION ALL ".join(f"SELECT '{table}', COUNT(*) FROM {_quoted(database)}.{_quoted(table)}" for table in tables)
    output = _sql(host, container, query, f"counting rows of {database}")
    return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
