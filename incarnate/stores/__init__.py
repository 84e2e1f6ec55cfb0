"""Backup and release stores: a small key-value interface over a place that keeps bytes.

Keys are slash-separated relative paths. Objects are small (a chunk of at most a few MiB,
a manifest, a release file), written once and never overwritten: `put` creates, or
reports that the key exists. A written object appears whole or not at all.

Write-once storage: `lock` asks the server to keep an object immutable until a time;
`lock_support` says honestly whether the server does (Azure with version-level
immutability) or not (a directory, an SMB share, Azurite).
"""

from datetime import datetime
from typing import Protocol


class Store(Protocol):
    location: str  # shown to operators in messages: never contains a secret

    def put(self, key: str, data: bytes) -> bool:
        """Create `key`; False (and nothing written) when it exists already."""

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectMissing when there is none."""

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[str]:
        """Every key below `prefix` (recursively), sorted; empty when there is none."""

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing one is not an error."""

    def lock_support(self) -> str | None:
        """None when the server enforces `lock`; else why the data is not locked by the server."""

    def lock(self, key: str, until: datetime, mode: str = "locked") -> None:
        """Keep the object immutable until `until` (extend only); nothing where unsupported. Mode `locked`: nobody
        can shorten or remove the protection; `unlocked`: the account's key holder can."""

    def locked_until(self, key: str) -> datetime | None:
        """Until when the server keeps the object immutable; None when it is not locked."""


class Unlocked:
    """For stores without server-side immutability: they say so and never pretend."""

    reason = "this kind of store has no server-side immutability"

    def lock_support(self) -> str | None:
        return self.reason

    def lock(self, key: str, until: datetime, mode: str = "locked") -> None:
        return None

    def locked_until(self, key: str) -> datetime | None:
        return None


LOCK_MODES = {
    "locked": "locked policy: nobody, not even the account's owner, can shorten or remove it",
    "unlocked": "unlocked policy: whoever holds the account key can remove it",
}


def lock_description(store: Store, lock_days: int, mode: str = "locked") -> str:
    """What protects the stored objects, as the store says it: never a lock it does not enforce."""
    missing = store.lock_support()
    if missing is not None:
        return f"not locked by the server ({missing})"
    return (
        f"locked by the server for {lock_days} days ({LOCK_MODES[mode]})"
        if lock_days
        else "not locked (stack.yaml sets no lock_days)"
    )
