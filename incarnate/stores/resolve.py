"""The stores a stack.yaml or this machine names without a saved block: a local directory (or a mounted share).
Saved store blocks are loaded by blocks/resolve.py, the one place configured names become things."""

from pathlib import Path

from incarnate import settings
from incarnate.config import LocalStoreTarget
from incarnate.private import private_dir
from incarnate.stores.local import LocalStore


def local_backup_store(target: LocalStoreTarget | None) -> LocalStore:
    """stack.yaml's local store, else the default one under INCARNATE_HOME (created private)."""
    if target is None:
        private_dir(settings.default_backup_path())
        return LocalStore(settings.default_backup_path())
    return LocalStore(target.path)


def local_release_store(where: str) -> LocalStore:
    """A release store that is a folder of this machine (or a mounted share), created private."""
    private_dir(Path(where))
    return LocalStore(where)
