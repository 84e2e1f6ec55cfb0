"""A store in a local directory (or a mounted NFS path)."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from incarnate.errors import StoreError


class LocalStore:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.location = str(self.root)

    def _path(self, key: str) -> Path:
        relative = PurePosixPath(key)
        if relative.is_absolute() or ".." in relative.parts:
            raise StoreError(f"store {self.location}: key {key!r} would leave the store.")
        return self.root.joinpath(*relative.parts)

    @contextmanager
    def open_write(self, key: str) -> Iterator[BinaryIO]:
        """Write to a hidden temporary name, then rename: readers see all of it or nothing."""
        target = self._path(key)
        if target.exists():
            raise StoreError(f"store {self.location}: {key} exists already; stored objects are written once.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
            handle = open(partial, "xb")
        except OSError as error:
            raise StoreError(f"store {self.location}: cannot write {key} ({error.strerror}).") from None
        try:
            with handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)

    @contextmanager
    def open_read(self, key: str) -> Iterator[BinaryIO]:
        try:
            handle = open(self._path(key), "rb")
        except FileNotFoundError:
            raise StoreError(f"store {self.location}: {key} is missing.") from None
        except OSError as error:
            raise StoreError(f"store {self.location}: cannot read {key} ({error.strerror}).") from None
        with handle:
            yield handle

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def children(self, prefix: str) -> list[str]:
        """Names directly below a prefix, without temporary files; empty when it does not exist."""
        folder = self._path(prefix) if prefix else self.root
        if not self.root.is_dir():
            raise StoreError(f"store {self.location}: directory does not exist or is not mounted.")
        if not folder.is_dir():
            return []
        return sorted(entry.name for entry in folder.iterdir() if not entry.name.startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
