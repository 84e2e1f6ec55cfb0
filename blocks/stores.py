"""Customer backup stores as Prefect blocks; each block's `get_store` gives the plain store.

Secrets are SecretStr: the UI shows them masked and no message ever contains them.
"""

from prefect.blocks.core import Block
from pydantic import Field, SecretStr

from blocks import load_saved
from incarnate.stores import Store
from incarnate.stores.local import LocalStore

# The SMB and Azure clients are imported where a store of theirs is opened: every run's process loads this module,
# and their SDKs (~0.15 s of imports) would delay each run's start, most of which use one kind of store or none.


class LocalDirectoryStore(Block):
    """Backups in a directory of the machine that runs the flows (also: a mounted NFS share)."""

    _block_type_name = "incarnate local directory store"
    _description = "A customer backup store in a local directory or a mounted NFS path."

    path: str = Field(description="Absolute path of the store's directory; it must exist (a mount point is checked).")

    def get_store(self) -> Store:
        return LocalStore(self.path)


class SmbShareStore(Block):
    """Backups on an SMB share, for on-premises stacks."""

    _block_type_name = "incarnate smb store"
    _description = "A customer backup store on an SMB share (server, share, folder, account)."

    server: str = Field(description="Host name or address of the SMB server.")
    share: str = Field(description="Share name.")
    path: str = Field(default="", description="Folder inside the share.")
    username: str
    password: SecretStr
    port: int = Field(default=445, ge=1, le=65535)

    def get_store(self) -> Store:
        from incarnate.stores.smb import SmbSettings, SmbStore

        return SmbStore(
            SmbSettings(self.server, self.share, self.path, self.username, self.password.get_secret_value(), self.port)
        )


class AzureBlobBackupStore(Block):
    """Backups in an Azure Blob container: one storage account per customer, write-once."""

    _block_type_name = "incarnate azure blob store"
    _description = (
        "A customer backup store in an Azure Blob container, with immutability where the account supports it."
    )

    account_url: str = Field(description="Blob endpoint, e.g. https://acme.blob.core.windows.net")
    account_name: str
    account_key: SecretStr
    container: str = Field(default="backups")
    max_concurrency: int = Field(
        default=4, ge=1, le=64, description="Connections per transfer (the SDK's default is 1)."
    )

    def get_store(self) -> Store:
        from incarnate.stores.azure import AzureBlobStore, AzureSettings

        return AzureBlobStore(
            AzureSettings(
                self.account_url,
                self.account_name,
                self.account_key.get_secret_value(),
                self.container,
                self.max_concurrency,
            )
        )


def load_store_block(slug: str, named: str = "backup.store.block") -> Store:
    """The store of a saved block named `block-type-slug/block-name` (stack.yaml's backup.store.block, or
    INCARNATE_RELEASES: `named` says which, for the error)."""
    return load_saved(slug, named).get_store()
