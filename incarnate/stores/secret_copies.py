"""A copy of each stack's secrets in its own encrypted backup store, so that the customer repo, the store and the
store's recovery passphrase recover a stack on a brand-new machine with a brand-new Prefect server:

    secrets/<stack>/<UTC time>-<random>.json    {"db_password": ...}, sealed under the store's key

Each change writes a new object (create-only, never overwritten: the store's write-once lock can keep them); the
newest is the copy. The vault (a Prefect Secret block) stays the source of truth: the copy is read only when the
vault has nothing for the stack. A store that is not encrypted never holds one: it would keep the secrets in the
clear."""

import json
import secrets
from datetime import UTC, datetime

from incarnate.encryption import PLAIN
from incarnate.errors import IntegrityError
from incarnate.stores import Store
from incarnate.stores.sealed import SealedStore

SECRETS = "secrets"


class StoreSecrets:
    """The stack secrets sealed into a backup store (a Vault, as `incarnate.secrets` uses one)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def sealed(self) -> bool:
        return isinstance(self.store, SealedStore) and self.store.codec(writing=True) is not PLAIN

    def where(self, stack: str) -> str:
        return f"the sealed copy in store {self.store.location} ({SECRETS}/{stack}/)"

    def load(self, stack: str) -> dict[str, str] | None:
        """The newest copy; None when there is none (or the store is not encrypted). One that cannot be opened is
        refused, never taken for none."""
        if not self.sealed():
            return None
        folder = f"{SECRETS}/{stack}"
        copies = sorted(key for key in self.store.list(folder) if key.startswith(f"{folder}/") and key.endswith("json"))
        if not copies:
            return None
        values = json.loads(self.store.get(copies[-1]))  # opened and authenticated, or IntegrityError
        if not isinstance(values, dict) or not all(isinstance(value, str) for value in values.values()):
            raise IntegrityError(f"store {self.store.location}: {copies[-1]} is not a copy of stack secrets.")
        return values

    def save(self, stack: str, values: dict[str, str]) -> None:
        """A new copy; nothing in a store that is not encrypted."""
        if not self.sealed():
            return
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        self.store.put(f"{SECRETS}/{stack}/{stamp}-{secrets.token_hex(4)}.json", json.dumps(values).encode())
