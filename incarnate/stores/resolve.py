"""Which store a stack's backups go to: what stack.yaml names (a saved block, or a local path), or the default."""

from incarnate import settings
from incarnate.config import BlockStoreTarget, StackConfig
from incarnate.private import private_dir
from incarnate.stores import Store
from incarnate.stores.local import LocalStore


def backup_store(config: StackConfig) -> Store:
    target = config.backup.store
    if isinstance(target, BlockStoreTarget):
        from blocks.stores import load_store_block  # Prefect is needed only for saved blocks

        return load_store_block(target.block)
    if target is None:
        private_dir(settings.default_backup_path())
        return LocalStore(settings.default_backup_path())
    return LocalStore(target.path)
