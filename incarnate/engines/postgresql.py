"""PostgreSQL: pg_dump (a consistent snapshot by itself) and psql, run inside the database container
as the postgres superuser over the local socket."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from incarnate.host import Host, copy_from


def _psql(database: str, *args: str) -> list[str]:
    return ["psql", "--username=postgres", f"--dbname={database}", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--quiet", *args]


def _exec(container: str, *command: str, interactive: bool = False) -> list[str]:
    return ["docker", "exec", *(["-i"] if interactive else []), "--user", "postgres", container, *command]


def is_empty(host: Host, container: str, database: str) -> bool:
    """Empty means: no tables in any schema of the database but the system ones."""
    query = ("SELECT count(*) FROM information_schema.tables "
             "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
    count = host.run(_exec(container, *_psql(database, "--tuples-only", "--no-align", "--command", query)),
                     what=f"counting tables of database {database}")
    return int(count.strip() or 0) == 0


@contextmanager
def dump(host: Host, container: str, database: str) -> Iterator[BinaryIO]:
    with host.stream_out(_exec(container, "pg_dump", "--username=postgres", database), what=f"dumping database {database}") as stream:
        yield stream


def load(host: Host, container: str, source: BinaryIO, database: str) -> None:
    host.stream_in(_exec(container, *_psql(database), interactive=True), copy_from(source), what=f"loading a dump into {database}")


def reset(host: Host, container: str, database: str) -> None:
    statements = ("DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION pg_database_owner; "
                  "GRANT USAGE ON SCHEMA public TO PUBLIC;")
    host.run(_exec(container, *_psql(database, "--command", statements)), what=f"emptying database {database}")


def row_counts(host: Host, container: str, database: str) -> dict[str, int]:
    """Exact row count of every table outside the system schemas."""
    listing = host.run(_exec(container, *_psql(database, "--tuples-only", "--no-align", "--command",
                                                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) FROM information_schema.tables "
                                                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")),
                       what=f"listing tables of {database}").split()
    if not listing:
        return {}
    query = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in listing)
    output = host.run(_exec(container, *_psql(database, "--tuples-only", "--no-align", "--field-separator=\t", "--command", query)),
                      what=f"counting rows of {database}")
    return {name: int(count) for name, count in (line.split("\t") for line in output.strip().splitlines())}
