"""A customer's backup store with client-side encryption: every chunk and manifest sealed, chunk names keyed.

    keys/config.json        {"format", "store", "cipher", "chunk_ids", "key_check", "created_at"}: says the store
                            is encrypted and which key opens it; written create-only, last, once
    keys/<id>.json          the master key wrapped by a passphrase (see incarnate.encryption); one per passphrase

The master key lives in a vault (a Prefect Secret block `incarnate-store-key-<store>`, with its passphrase), so
flows never ask anyone; the key files let the store be opened from the passphrase alone when the vault is lost
(`incarnate key import`). A store with snapshots but no config was written before encryption and stays plain
("not encrypted"); an empty store is encrypted by the first run that writes to it, unless stack.yaml says
`backup.encrypt: false`. Locks, release files and the store config are never sealed: other runs read them.
"""

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from incarnate.encryption import (
    CHUNK_IDS,
    CIPHER,
    MAGIC,
    PLAIN,
    Codec,
    SealBroken,
    SealingCodec,
    WrongPassphrase,
    decode_key,
    encode_key,
    new_master_key,
    new_passphrase,
    unwrap,
    wrap,
)
from incarnate.errors import ConfigError, EncryptionLost, IntegrityError, ObjectMissing
from incarnate.secrets import Vault
from incarnate.stores import Store

CONFIG = "keys/config.json"
KEYS = "keys"
FORMAT = 1


def sealed_object(key: str) -> bool:
    """Chunks, manifests, archived log pieces and copies of stack secrets hold customer data (or say what it is), and
    the publication record of a release copy vouches for its files; everything else coordinates runs."""
    return (
        key.startswith(("chunks/", "secrets/", "logs/"))
        or (key.startswith(("backups/", "volumes/")) and key.endswith("/manifest.json"))
        or (key.startswith("releases/") and key.endswith("/publication.json"))
    )


def key_block(store_id: str) -> str:
    return f"incarnate-store-key-{store_id}"


def location_entry(location: str) -> str:
    """The vault's note that the store at `location` is encrypted: what deleting keys/ cannot take away."""
    return f"at-{hashlib.sha256(location.encode()).hexdigest()[:16]}"


class SealedStore:
    """A Store that seals what it keeps when the store is encrypted, and passes everything through when not.

    Which it is gets decided on first use and then kept: reading an empty store decides nothing, writing to it
    makes it encrypted (or, with `encrypt_new` off, plain)."""

    def __init__(self, raw: Store, vault: Callable[[], Vault], encrypt_new: bool = True) -> None:
        self.raw, self.location, self._vault, self.encrypt_new = raw, raw.location, vault, encrypt_new
        self._codec: Codec | None = None
        self._config: dict[str, Any] | None = None
        self._deciding = threading.Lock()
        self.announce: Callable[[str], None] = print

    # -- which codec ------------------------------------------------------------------------------------------------
    def codec(self, writing: bool = False) -> Codec:
        with self._deciding:
            if self._codec is None:
                self._codec = self._decide(writing)
            return self._codec or PLAIN

    def _read_config(self) -> dict[str, Any] | None:
        try:
            config = json.loads(self.raw.get(CONFIG))
        except ObjectMissing:
            return None
        except ValueError:
            raise IntegrityError(
                f"store {self.location}: {CONFIG} is not valid JSON; the store's encryption settings cannot be read."
            ) from None
        if not isinstance(config, dict) or config.get("format") != FORMAT or not isinstance(config.get("store"), str):
            raise IntegrityError(
                f"store {self.location}: {CONFIG} is not a format-{FORMAT} store config written by "
                f"incarnate; this version cannot open the store."
            )
        return config

    def _decide(self, writing: bool) -> Codec | None:
        """The codec once known; None while the store is empty and nobody writes (nothing to read anyway)."""
        config = self._read_config()
        if config is not None:
            self._config = config
            return self._open_with_vault(config)
        if self.raw.list("backups"):
            self._refuse_if_it_was_encrypted()
            return PLAIN  # written before encryption: stays readable and plain
        if not writing:
            return None
        if not self.encrypt_new:
            return PLAIN
        return self._initialise()

    def _refuse_if_it_was_encrypted(self) -> None:
        """A store with backups and no config was written before encryption, unless something says otherwise:
        then reading it as plain would trust what anyone wrote there, and writing would store data in the clear."""
        keys = [key for key in self.raw.list(KEYS) if key != CONFIG]
        remembered = self._vault().load(location_entry(self.location))
        manifests = [key for key in self.raw.list("backups") if key.endswith("/manifest.json")]
        evidence = (
            (keys and f"key files {', '.join(keys[:2])}")
            or (remembered and f"the vault notes store {remembered.get('store')} at this location")
            or (manifests and self.raw.get(manifests[-1]).startswith(MAGIC) and f"{manifests[-1]} is sealed")
        )
        if evidence:
            raise EncryptionLost(
                f"store {self.location}: {CONFIG} is missing, but the store was encrypted ({evidence}); refusing to "
                f"read or write it unencrypted. Put {CONFIG} back from a copy of the store, or recreate it from a "
                f"key file and the store's recovery passphrase with `incarnate key import CUSTOMER_REPO`. Nothing "
                f"was changed."
            )

    def _open_with_vault(self, config: dict[str, Any]) -> Codec:
        vault, name = self._vault(), config["store"]
        kept = vault.load(name)
        if kept is None or "master_key" not in kept:
            raise ConfigError(
                f"store {self.location} is encrypted and its key ({vault.where(name)}) is missing; recreate it from "
                f"the store's recovery passphrase with `incarnate key import CUSTOMER_REPO` (reads the passphrase on "
                f"stdin). Nothing was changed."
            )
        codec = SealingCodec(decode_key(kept["master_key"]))
        if codec.key_check() != config.get("key_check"):
            raise ConfigError(
                f"the key in {vault.where(name)} does not open store {self.location} (its key check differs); "
                f"recreate it with `incarnate key import CUSTOMER_REPO` from this store's recovery passphrase. "
                f"Nothing was changed."
            )
        if vault.load(location_entry(self.location)) is None:  # stores encrypted before the vault kept this note
            vault.save(location_entry(self.location), {"store": name})
        return codec

    def _initialise(self) -> Codec:
        """A new store: the key goes to the vault first, then a key file, then the config (create-only, last).
        Of two runs initialising one store at once, the one whose config lands wins; the other uses its key."""
        store_id, master, passphrase = secrets.token_hex(8), new_master_key(), new_passphrase()
        codec = SealingCodec(master)
        vault = self._vault()
        vault.save(store_id, {"master_key": encode_key(master), "passphrase": passphrase, "store": self.location})
        vault.save(location_entry(self.location), {"store": store_id})
        self.raw.put(f"{KEYS}/{store_id}-{secrets.token_hex(4)}.json", json.dumps(wrap(master, passphrase)).encode())
        config = {
            "format": FORMAT,
            "store": store_id,
            "cipher": CIPHER,
            "chunk_ids": CHUNK_IDS,
            "key_check": codec.key_check(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if not self.raw.put(CONFIG, json.dumps(config, indent=1).encode()):
            return self._decide(writing=True) or PLAIN  # another run initialised it first: use its key
        self._config = config
        self.announce(
            f"store {self.location}: new, encrypted ({CIPHER}); its key is in {vault.where(store_id)}. Print "
            f"its recovery passphrase once with `incarnate key export CUSTOMER_REPO` and keep it offline: "
            f"without that block or the passphrase these backups cannot be read."
        )
        return codec

    def describe(self) -> str:
        """For reports and `incarnate backups`: encrypted (with what, under which key) or not."""
        self.codec()
        if self._config is None:
            if self._codec is not None:
                return "not encrypted"
            return (
                "empty (encrypted by its first backup)"
                if self.encrypt_new
                else "empty (not encrypted: backup.encrypt is false)"
            )
        return (
            f"encrypted ({self._config['cipher']}, chunk names {self._config['chunk_ids']}; key "
            f"{key_block(self._config['store'])})"
        )

    def key_objects(self) -> list[str]:
        """What a write-once lock must also cover: without the key files, a lost vault means lost backups."""
        return [CONFIG, *(key for key in self.raw.list(KEYS) if key != CONFIG)] if self._config else []

    # -- the Store interface ----------------------------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> bool:
        return self.raw.put(key, self.codec(writing=True).seal(key, data) if sealed_object(key) else data)

    def get(self, key: str) -> bytes:
        stored = self.raw.get(key)
        if not sealed_object(key):
            return stored
        try:
            return self.codec().open(key, stored)
        except SealBroken as broken:
            raise IntegrityError(f"store {self.location}: {key} is corrupt ({broken}).") from None

    def exists(self, key: str) -> bool:
        return self.raw.exists(key)

    def list(self, prefix: str) -> list[str]:
        return self.raw.list(prefix)

    def delete(self, key: str) -> None:
        self.raw.delete(key)

    def lock_support(self) -> str | None:
        return self.raw.lock_support()

    def lock(self, key: str, until: datetime, mode: str = "locked") -> None:
        self.raw.lock(key, until, mode)

    def locked_until(self, key: str) -> datetime | None:
        return self.raw.locked_until(key)

    # -- recovery material: the passphrase on paper, and the way back from it -----------------------------------------
    def _store_id(self, wanted: str) -> str:
        """The encrypted store's id; ConfigError when the store has no key for what was `wanted`."""
        if not self.codec().encrypted or self._config is None:
            raise ConfigError(f"store {self.location} is {self.describe()}: it has no key {wanted}.")
        return self._config["store"]

    def recovery_material(self, again: bool = False) -> tuple[str, str]:
        """(store id, passphrase) to keep offline; given once, then only with `again`: it is meant for paper."""
        vault, name = self._vault(), self._store_id("to export")
        kept = vault.load(name) or {}
        if kept.get("exported_at") and not again:
            raise ConfigError(
                f"the recovery passphrase of store {self.location} was printed on {kept['exported_at']} "
                f"already; pass --again to print it once more."
            )
        vault.save(name, {**kept, "exported_at": datetime.now(UTC).isoformat(timespec="seconds")})
        return name, kept["passphrase"]

    def add_passphrase(self, passphrase: str) -> str:
        """Another key file for the same master key, opened by a passphrase the operator chose; the existing ones
        keep working (nothing is ever rewritten). The new key file's name."""
        if len(passphrase) < 12:
            raise ConfigError("a recovery passphrase needs at least 12 characters; nothing was written.")
        store_id = self._store_id("to add a passphrase to")
        master = decode_key((self._vault().load(store_id) or {})["master_key"])
        name = f"{KEYS}/{store_id}-{secrets.token_hex(4)}.json"
        self.raw.put(name, json.dumps(wrap(master, passphrase)).encode())
        return name

    def import_key(self, passphrase: str) -> str:
        """Recreate the vault's entry for an encrypted store from its passphrase alone; where it was put. A wrong
        passphrase writes nothing."""
        config = self._read_config()
        key_files = [key for key in self.raw.list(KEYS) if key != CONFIG]
        if config is None and not key_files:
            raise ConfigError(f"store {self.location} is not encrypted (it has no {CONFIG}); it needs no key.")
        for key in key_files:
            try:
                master = unwrap(json.loads(self.raw.get(key)), passphrase)
            except WrongPassphrase:
                continue
            if config is None:  # lost: everything in it follows from the key file's name and the key
                config = self._recreate_config(key, master)
            if SealingCodec(master).key_check() != config.get("key_check"):
                continue
            vault = self._vault()
            vault.save(
                config["store"],
                {
                    "master_key": encode_key(master),
                    "passphrase": passphrase,
                    "store": self.location,
                    "exported_at": "before it was imported",
                },
            )
            return vault.where(config["store"])
        raise ConfigError(f"the passphrase opens none of the key files of store {self.location}; nothing was written.")

    def _recreate_config(self, key_file: str, master: bytes) -> dict[str, Any]:
        """keys/config.json again, from a key file (`keys/<store id>-<n>.json`) the passphrase opened; create-only,
        so a config that appeared meanwhile is kept and read."""
        config = {
            "format": FORMAT,
            "store": key_file.removeprefix(f"{KEYS}/").rsplit("-", 1)[0],
            "cipher": CIPHER,
            "chunk_ids": CHUNK_IDS,
            "key_check": SealingCodec(master).key_check(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "recreated": "by incarnate key import",
        }
        self.raw.put(CONFIG, json.dumps(config, indent=1).encode())
        return self._read_config() or config


def encryption_of(store: Store) -> str:
    """What a report says of a store's encryption."""
    return store.describe() if isinstance(store, SealedStore) else "not encrypted"
