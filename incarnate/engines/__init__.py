"""Database engines, one module each with the same four functions, chosen by release.yaml's `engine`.

    is_empty(host, container, database) -> bool
    dump(host, container, database) -> context manager yielding the dump stream
    load(host, container, source, database) -> None
    reset(host, container, database) -> None   (back to empty after a failed load)
    row_counts(host, container, database) -> {table: rows}   (what a restore drill checks)
"""

from types import ModuleType

from incarnate.engines import mariadb, postgresql

ENGINES: dict[str, ModuleType] = {"mariadb": mariadb, "postgresql": postgresql}


def engine(name: str) -> ModuleType:
    return ENGINES[name]
