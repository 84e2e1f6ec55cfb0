"""Which store a stack's backups go to (what stack.yaml names: a saved block, or a local path; else the default),
and which store releases are published to and read from (INCARNATE_RELEASES)."""

from collections.abc import Callable
from pathlib import Path

from incarnate import settings
from incarnate.config import BlockStoreTarget, StackConfig
from incarnate.private import private_dir
from incarnate.secrets import Vault
from incarnate.stores import Store
from incarnate.stores.local import LocalStore
from incarnate.stores.sealed import SealedStore


def _saved_block(slug: str, named: str) -> Store:
    from blocks.stores import load_store_block  # Prefect is needed only for saved blocks

    return load_store_block(slug, named)


def _key_vault() -> Vault:
    from blocks.secrets import PrefectSecretVault  # Prefect is needed only once a store turns out encrypted

    return PrefectSecretVault(prefix="incarnate-store-key-")


def raw_backup_store(config: StackConfig) -> Store:
    target = config.backup.store
    if isinstance(target, BlockStoreTarget):
        return _saved_block(target.block, "backup.store.block")
    if target is None:
        private_dir(settings.default_backup_path())
        return LocalStore(settings.default_backup_path())
    return LocalStore(target.path)


def backup_store(config: StackConfig, vault: Callable[[], Vault] = _key_vault) -> SealedStore:
    """The stack's store as its flows use it: sealed when encrypted (a new store is, unless backup.encrypt is false)."""
    return SealedStore(raw_backup_store(config), vault, encrypt_new=config.backup.encrypt)


def release_store() -> Store:
    """INCARNATE_RELEASES: an absolute path is a folder of this machine (or a mounted share), created private;
    anything else names a saved store block, e.g. incarnate-azure-blob-store/releases."""
    where = settings.releases()
    if where.startswith("/"):
        private_dir(Path(where))
        return LocalStore(where)
    return _saved_block(where, "INCARNATE_RELEASES")
