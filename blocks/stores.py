"""Customer backup stores as Prefect blocks; each block's `get_store` gives the plain store."""

from prefect.blocks.core import Block
from pydantic import Field

from incarnate.errors import ConfigError
from incarnate.stores import Store
from incarnate.stores.local import LocalStore


class LocalDirectoryStore(Block):
    """Backups in a directory of the machine that runs the flows (also: a mounted NFS share)."""

    _block_type_name = "incarnate local directory store"
    _description = "A customer backup store in a local directory or a mounted NFS path."

    path: str = Field(description="Absolute path of the store's directory; it must exist (a mount point is checked).")

    def get_store(self) -> Store:
        return LocalStore(self.path)


def load_store_block(slug: str) -> Store:
    """The store of a saved block named `block-type-slug/block-name`, as stack.yaml's backup.store.block."""
    if "/" not in slug:
        raise ConfigError(f"backup.store.block {slug!r}: expected BLOCK-TYPE/NAME, e.g. incarnate-local-directory-store/acme.")
    try:
        block = Block.load(slug)
    except ValueError as error:
        raise ConfigError(f"backup.store.block {slug!r}: no such saved block ({error}).") from None
    return block.get_store()
