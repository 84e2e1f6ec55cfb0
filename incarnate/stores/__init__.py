"""Backup and release stores: a small, streaming key-value interface over a place to keep bytes.

Keys are slash-separated relative paths. A written object becomes visible only when its
writer closes without error, so a half-written artifact or manifest never exists.
"""

from contextlib import AbstractContextManager
from typing import BinaryIO, Protocol


class Store(Protocol):
    """What every store (local directory now; SMB and Azure later) offers."""

    location: str  # shown to the operator in messages, never with secrets

    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]: ...

    def exists(self, key: str) -> bool: ...

    def children(self, prefix: str) -> list[str]: ...

    def delete(self, key: str) -> None: ...
